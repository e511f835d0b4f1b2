#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs
# formatting and lint checks, unit and in-process tests, a bounded fuzz run, the
# end-to-end suite against the real binary with real clients (curl, ffmpeg, openssl), and
# the web UI in headless Chromium.
# Nothing is skipped silently: a missing tool is installed or the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") ;;
  -h | --help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; echo "usage: $0 (no arguments; about 30-45 minutes)"; exit 0 ;;
  *) echo "usage: $0 (no arguments; it runs the whole suite)" >&2; exit 2 ;;
esac
# Where cargo builds (CARGO_TARGET_DIR when set): the e2e suite runs the binary built there.
target=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$target"

say() { printf '\n=== %s\n' "$*"; }

# --- tools -------------------------------------------------------------------------------
need_apt=()
# avahi-daemon, avahi-browse and dbus-daemon: the discovery tests (tests/e2e/test_peers_discovery.py)
# resolve the nodes with avahi inside a network namespace. faketime (libfaketime): a node whose
# clock runs 10 years ahead (tests/e2e/test_replication_faults.py).
for tool in curl:curl jq:jq ffmpeg:ffmpeg ffprobe:ffmpeg openssl:openssl unzip:unzip unshare:util-linux setpriv:util-linux mount:mount ip:iproute2 mkfs.ext4:e2fsprogs e2fsck:e2fsprogs chromium:chromium avahi-daemon:avahi-daemon avahi-browse:avahi-utils dbus-daemon:dbus faketime:faketime; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool#*:}")
done
# The fault-injecting FUSE media root (tests/e2e/faultfs.py, fusepy over libfuse2; fusermount
# unmounts it).
command -v fusermount >/dev/null 2>&1 || command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
"${PYTHON:-python3}" -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("fuse") else 1)' 2>/dev/null || need_apt+=(libfuse2)
# Debian's own python3 has no pip until python3-pip is installed.
"${PYTHON:-python3}" -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# A font, so the UI screenshots (target/ui-screenshots/) show text.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ "${#need_apt[@]}" -gt 0 ]; then
  say "installing: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # A freshly installed avahi-daemon starts on a systemd host and announces the machine on
  # its LAN; the tests run their own inside network namespaces.
  if [[ " ${need_apt[*]} " == *" avahi-daemon "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now avahi-daemon.service avahi-daemon.socket >/dev/null 2>&1 || true
  fi
fi
PY=${PYTHON:-python3}
# Debian's own python3 refuses installs into the system site (PEP 668:
# "externally-managed-environment"); a pyenv or venv python takes the plain install.
pip_install() {
  "$PY" -m pip install -q "$@" 2>/dev/null || "$PY" -m pip install -q --break-system-packages "$@"
}
need_pip=()
"$PY" -c 'import pytest' 2>/dev/null || need_pip+=(pytest)
"$PY" -c 'import tusclient' 2>/dev/null || need_pip+=(tuspy)  # the tus client (tests/e2e/test_tus.py)
"$PY" -c 'import zeroconf' 2>/dev/null || need_pip+=(zeroconf)  # mDNS browsing and fake announcements (tests/e2e/test_peers_discovery.py)
"$PY" -c 'import h2' 2>/dev/null || need_pip+=(h2)  # an HTTP/2 client for the abuse tests (tests/e2e/test_abuse_conn.py)
"$PY" -c 'import fuse' 2>/dev/null || need_pip+=(fusepy==3.0.1)  # the fault-injecting FUSE media root (tests/e2e/faultfs.py)
# Drives Debian's chromium (tests/ui); Playwright's own browser download is never used.
"$PY" -c 'import playwright' 2>/dev/null || need_pip+=(playwright)
if [ "${#need_pip[@]}" -gt 0 ]; then
  say "installing: ${need_pip[*]}"
  pip_install "${need_pip[@]}"
fi

# Garage, the S3-compatible object store the S3 backend tests run against (a test tool only,
# never linked; AGPL). Pinned, built once into a cache that survives between runs; a failed
# install fails the run.
GARAGE_VERSION=2.5.0
garage_root="${STREAMHUB_TOOLS:-$HOME/.cache/streamhub-tools}/garage-$GARAGE_VERSION"
if ! "$garage_root/bin/garage" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
  say "installing garage $GARAGE_VERSION into $garage_root (a cold build takes about 11 minutes on 2 cores)"
  cargo install garage --version "$GARAGE_VERSION" --locked --no-default-features \
    --features bundled-libs,sqlite --root "$garage_root"
fi
export GARAGE_BIN="$garage_root/bin/garage"

# --- static checks -----------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

# --- unit + in-process tests ---------------------------------------------------------------
say "cargo test"
cargo test --quiet 2>&1 | tee "$target/cargo-test.log"
grep -q "test result: ok" "$target/cargo-test.log"

# --- fuzzing (bounded) --------------------------------------------------------------------
say "fuzz: range parser, path validation, SubRip converter, Markdown sanitiser and peer messages (${FUZZ_SECONDS:=20} s each)"
scripts/fuzz.sh "$FUZZ_SECONDS"

# --- end to end ---------------------------------------------------------------------------
cargo build --quiet
bin="$target/debug/streamhub"
say "packaging: systemd units, install script, Yocto layer"
STREAMHUB_BIN="$bin" scripts/check-packaging.sh
say "end-to-end suite (real binary, curl, ffmpeg, openssl)"
STREAMHUB_BIN="$bin" "$PY" -m pytest -q -p no:cacheprovider tests/e2e
say "web UI in headless Chromium (network namespace, non-loopback address)"
STREAMHUB_BIN="$bin" PYTHON="$PY" tests/ui/run.sh

say "all tests passed"
