#!/usr/bin/env bash
# A/B of two streamhub builds on 64 KiB random ranges (issue 17's hot path), interleaved:
#   scripts/bench/ab-ranges.sh BEFORE_BIN AFTER_BIN [WORK_DIR] [ROUNDS]
# For each round and build: wrk -t2 -c32 -d10s with random_range.lua against a 256 MiB
# file on loopback; prints req/s and the server's CPU per request (utime+stime from
# /proc/<pid>/stat over the run, divided by the requests wrk counted: robust where the
# machine has no hardware counters). Needs wrk and bc. Loopback only, ports 25101/25102.
set -euo pipefail
before=$(realpath "$1") after=$(realpath "$2")
work=${3:-target/ab-ranges} rounds=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work/media"
head -c $((256 << 20)) /dev/urandom >"$work/media/f.bin"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
start() { # name bin port
    mkdir -p "$work/$1"
    STREAMHUB_QUOTAS_MIN_FREE_BYTES=0 "$2" serve --listen "127.0.0.1:$3" --no-discovery \
        --media-root "$work/media" --data-dir "$work/$1/data" >"$work/$1/out" 2>"$work/$1/err" &
    pids+=($!)
    echo $! >"$work/$1/pid"
}
start before "$before" 25101
start after "$after" 25102
for port in 25101 25102; do
    for _ in $(seq 50); do
        curl -fs -o /dev/null -r 0-65535 "http://127.0.0.1:$port/media/f.bin" && break
        sleep 0.2
    done
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
echo "round build req/s requests cpu_us_per_request"
for round in $(seq "$rounds"); do
    for who in before after; do
        port=$([[ $who == before ]] && echo 25101 || echo 25102)
        pid=$(cat "$work/$who/pid")
        c0=$(cpu "$pid")
        out=$(BENCH_FILE_SIZE=$((256 << 20)) wrk -t2 -c32 -d10s -s "$here/random_range.lua" \
            "http://127.0.0.1:$port/media/f.bin")
        c1=$(cpu "$pid")
        if grep -q "Non-2xx" <<<"$out"; then echo "$who: non-206 answers" >&2; exit 1; fi
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        printf '%s %s %s %s %.1f\n' "$round" "$who" "$rps" "$reqs" \
            "$(bc -l <<<"($c1 - $c0) * 1000000 / $tck / $reqs")"
    done
done
