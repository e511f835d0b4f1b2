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
for target in range media_path srt markdown; do
  echo "fuzzing $target for ${secs}s"
  cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=1024 2>&1 | tail -n 3
done
