#!/usr/bin/env bash
# The HTTP/2 zero-window attack of issue 12 against a release build, with RSS before, during
# and after: 250 h2c connections x 64 streams of GET /media/big.bin from 127.0.0.3, each with
# SETTINGS_INITIAL_WINDOW_SIZE=0 and nothing read, for 20 s; meanwhile a client on 127.0.0.2
# times /healthz and a 64 KiB range. Loopback only.
#   scripts/abuse/h2-zero-window.sh [BIN] [label] [VAR=value...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/streamhub}; L=${2:-$(basename "$BIN")}; shift $(( $# < 2 ? $# : 2 ))
D=$(mktemp -d /tmp/streamhub-abuse.XXXXXX); P=18901
mkdir -p "$D/media" "$D/data"; head -c 200M /dev/urandom > "$D/media/big.bin"
env STREAMHUB_SERVER_LISTEN=127.0.0.1:$P STREAMHUB_SERVER_TLS_LISTEN= STREAMHUB_SERVER_DATA_DIR="$D/data" \
  STREAMHUB_STORAGE_MEDIA_ROOT="$D/media" "$@" "$BIN" serve --no-discovery > "$D/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:$P/healthz >/dev/null && break; sleep 0.2; done
rss() { awk '/VmRSS/{print $2}' /proc/$pid/status; }
sleep 2; idle=$(rss)
python3 scripts/abuse/h2zero.py 127.0.0.1 $P /media/big.bin 250 64 20 127.0.0.3 > /dev/null &
atk=$!
sleep 8
worst=0
for i in $(seq 5); do
  t=$(curl -s --interface 127.0.0.2 -o /dev/null -w "%{time_total}" -m 5 http://127.0.0.1:$P/healthz)
  r=$(curl -s --interface 127.0.0.2 -o /dev/null -w "%{time_total}" -m 5 -r $((i*65536))-$((i*65536+65535)) http://127.0.0.1:$P/media/big.bin)
  worst=$(python3 -c "print(max($worst, $t, $r))")
done
during=$(rss); wait $atk
sleep 10; a10=$(rss); sleep 50; a60=$(rss)
echo "$L: idle ${idle} kB, during ${during} kB, 10 s after ${a10} kB, 60 s after ${a60} kB; other client worst ${worst} s"
