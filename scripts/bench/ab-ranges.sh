#!/usr/bin/env bash
# Issue 17's hot path, side by side: 64 KiB random ranges against several servers, interleaved.
#   scripts/bench/ab-ranges.sh [-r ROUNDS] [-d WORK_DIR] [-l RANGE_LEN] SERVER...
# SERVER is one of
#   PATH/TO/streamhub   a streamhub build (any number of them: A/B of two builds)
#   nginx               nginx 1.x, 2 workers, sendfile on, tcp_nopush off (the reference;
#                       scripts/bench/nginx.conf explains tcp_nopush on loopback)
#   ceiling=PATH        the minimal hyper server (examples/hyper_ceiling.rs, built with
#                       `cargo build --release --example hyper_ceiling`): what hyper and tokio
#                       can do at best, from memory
#   ceiling-read=PATH   the same server opening and reading the file per request (pread into a
#                       new buffer, then writev): the least a server without sendfile must do
#   ceiling-sendfile=PATH  the same server opening the file per request and sending the range
#                       with sendfile(2): what hyper gains from zero-copy, as nginx sends
#   ceiling-read-once=PATH, ceiling-sendfile-once=PATH  the same two with the file opened once
#                       at start (a cache of open files): only the read or sendfile per request
#   ceiling-guarded=PATH  the sendfile server opening the file per request as streamhub must:
#                       the root by path, its device checked, the file beneath it, statx, and
#                       two cachestat checks (what streamhub's guarantees cost a bare server)
# For each round and server: wrk -t2 -c32 -d10s with random_range.lua against a 256 MiB file on
# loopback (streamhub at log level warn, nginx with access_log off, as in bench.sh); prints
# req/s and the server's CPU per request (utime+stime from /proc over the run, divided by the
# requests wrk counted: works where the VM has no hardware counters), then the medians. Needs wrk, bc and (for nginx) nginx. Loopback only, ports 25101 and up.
set -euo pipefail
rounds=3 work=target/ab-ranges len=65536
while getopts r:d:l: opt; do
    case $opt in
    r) rounds=$OPTARG ;;
    d) work=$OPTARG ;;
    l) len=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
(($#)) || { echo "usage: $0 [-r ROUNDS] [-d WORK_DIR] [-l RANGE_LEN] SERVER..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work/media"
work=$(realpath "$work")
size=$((256 << 20))
head -c "$size" /dev/urandom >"$work/media/f.bin"
pids=() names=() ports=() cpupids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT

start_nginx() { # dir port
    mkdir -p "$1/logs" "$1/tmp"
    cat >"$1/nginx.conf" <<EOF
$( ((EUID == 0)) && echo "user root;")
daemon off;
worker_processes 2;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $1/tmp;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$2;
        location /media/ { alias $work/media/; }
    }
}
EOF
    nginx -p "$1" -c "$1/nginx.conf" -e "$1/logs/error.log" >"$1/out" 2>&1 &
}

i=0
for server in "$@"; do
    i=$((i + 1))
    port=$((25100 + i)) dir="$work/s$i"
    mkdir -p "$dir"
    case $server in
    nginx)
        start_nginx "$dir" "$port"
        name=nginx
        ;;
    ceiling=*)
        "${server#ceiling=}" "$work/media/f.bin" "127.0.0.1:$port" >"$dir/out" 2>&1 &
        name=ceiling
        ;;
    ceiling-read=*)
        "${server#ceiling-read=}" "$work/media/f.bin" "127.0.0.1:$port" --read >"$dir/out" 2>&1 &
        name=ceiling-read
        ;;
    ceiling-sendfile=*)
        "${server#ceiling-sendfile=}" "$work/media/f.bin" "127.0.0.1:$port" --sendfile >"$dir/out" 2>&1 &
        name=ceiling-sendfile
        ;;
    ceiling-read-once=*)
        "${server#ceiling-read-once=}" "$work/media/f.bin" "127.0.0.1:$port" --read --open-once >"$dir/out" 2>&1 &
        name=ceiling-read-once
        ;;
    ceiling-guarded=*)
        "${server#ceiling-guarded=}" "$work/media/f.bin" "127.0.0.1:$port" --sendfile --guarded >"$dir/out" 2>&1 &
        name=ceiling-guarded
        ;;
    ceiling-sendfile-once=*)
        "${server#ceiling-sendfile-once=}" "$work/media/f.bin" "127.0.0.1:$port" --sendfile --open-once >"$dir/out" 2>&1 &
        name=ceiling-sendfile-once
        ;;
    *)
        STREAMHUB_LOG_LEVEL=warn STREAMHUB_QUOTAS_MIN_FREE_BYTES=0 "$(realpath "$server")" serve --listen "127.0.0.1:$port" \
            --no-discovery --media-root "$work/media" --data-dir "$dir/data" >"$dir/out" 2>&1 &
        # target/release/streamhub is named by its checkout, a copied binary by its file name.
        name=$(basename "$server")
        [[ $name == streamhub ]] && name=$(basename "$(dirname "$(dirname "$(dirname "$(realpath "$server")")")")")
        name="sh$i:$name"
        ;;
    esac
    pids+=($!) names+=("$name") ports+=("$port")
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do
        curl -fs -o /dev/null -r 0-65535 "http://127.0.0.1:$port/media/f.bin" && break
        sleep 0.2
    done
done
# nginx's CPU is its workers' (children of the master).
for k in "${!pids[@]}"; do
    kids=""
    [[ ${names[$k]} == nginx ]] && kids=$(pgrep -P "${pids[$k]}" | tr '\n' ' ' || true)
    cpupids+=("${pids[$k]} $kids")
done
cpu() {
    local t=0 p
    for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
tck=$(getconf CLK_TCK)
declare -A all_rps all_cpu
echo "round server req/s requests cpu_us_per_request"
for round in $(seq "$rounds"); do
    for k in "${!pids[@]}"; do
        c0=$(cpu "${cpupids[$k]}")
        out=$(BENCH_FILE_SIZE=$size BENCH_RANGE_LEN=$len wrk -t2 -c32 -d10s -s "$here/random_range.lua" \
            "http://127.0.0.1:${ports[$k]}/media/f.bin")
        c1=$(cpu "${cpupids[$k]}")
        if grep -q "Non-2xx" <<<"$out"; then echo "${names[$k]}: non-206 answers" >&2; exit 1; fi
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        us=$(bc -l <<<"($c1 - $c0) * 1000000 / $tck / $reqs")
        printf '%s %s %s %s %.1f\n' "$round" "${names[$k]}" "$rps" "$reqs" "$us"
        all_rps[$k]+="$rps " all_cpu[$k]+="$us "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median server req/s cpu_us_per_request"
for k in "${!pids[@]}"; do
    printf 'median %s %s %.1f\n' "${names[$k]}" "$(median <<<"${all_rps[$k]}")" "$(median <<<"${all_cpu[$k]}")"
done
