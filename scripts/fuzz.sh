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
  cargo fuzz run "$target" "${corpus[@]}" -- -max_total_time="$secs" -rss_limit_mb=1024 2>&1 | tail -n 3
done
