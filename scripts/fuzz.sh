#!/usr/bin/env bash
# Runs each cargo-fuzz target for N seconds (default 60). cargo-fuzz needs nightly-only
# compiler flags (sanitizers); the stable toolchain accepts them with RUSTC_BOOTSTRAP=1, so
# no second toolchain is needed. Installs cargo-fuzz when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
targets=(range media_path srt markdown peer_messages)
# Built before the timed runs, and said so: the first (sanitizer) build of the crate takes
# minutes with no output. Cargo's own output only when the build fails.
echo "building fuzz targets (first run: several minutes)"
if ! log=$(cargo fuzz build 2>&1); then
  printf '%s\n' "$log" | tail -n 40
  echo "fuzz: the build failed" >&2
  exit 1
fi
for target in "${targets[@]}"; do
  echo "fuzzing $target for ${secs}s"
  # fuzz/seeds/<target> (committed) holds inputs mutation cannot find in seconds, e.g. a
  # revision whose id is the SHA-256 of its content; new finds go to fuzz/corpus/<target>.
  corpus=()
  if [ -d "fuzz/seeds/$target" ]; then
    mkdir -p "fuzz/corpus/$target"
    corpus=("fuzz/corpus/$target" "fuzz/seeds/$target")
  fi
  # The whole output goes to a log; a crash is then shown in full (the panic message, the
  # input as base64 to reproduce it with), not as the last lines of a backtrace.
  log="target/fuzz-logs/$target.log"
  mkdir -p target/fuzz-logs
  if cargo fuzz run "$target" "${corpus[@]}" -- -max_total_time="$secs" -rss_limit_mb=1024 >"$log" 2>&1; then
    tail -n 3 "$log"
  else
    echo "fuzz: $target failed; its output ($log), first the panic or sanitizer report:" >&2
    grep -n -m 5 -A 12 "panicked at\|ERROR: \(libFuzzer\|AddressSanitizer\)" "$log" >&2 || true
    echo "--- the last 60 lines:" >&2
    tail -n 60 "$log" >&2
    for a in fuzz/artifacts/"$target"/*; do
      [ -f "$a" ] || continue
      echo "--- $a as base64 (save it with base64 -d and run: cargo fuzz run $target <file>):" >&2
      base64 -w 0 "$a" | head -c 20000 >&2
      echo >&2
    done
    exit 1
  fi
done
