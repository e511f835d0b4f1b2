#!/usr/bin/env bash
# Benchmark streamhub against nginx serving the same file, on loopback only.
#
#   ./scripts/bench.sh           the comparison with nginx, then notes, uploads, library
#   ./scripts/bench.sh --profile the same, then where streamhub's time goes (perf record -g, the
#                                cpu-clock event, while wrk runs the 64 KiB ranges and while
#                                curl downloads the file over HTTPS): <bench dir>/profile-*.txt
#                                (perf report, top symbols) and their heads in results.md
#   ./scripts/bench.sh streaming only the comparison with nginx (steps 1-4 and the memory below), not notes,
#                                uploads, library, start-up and the hung mount (about 5 minutes)
#   ./scripts/bench.sh abuse     issue 12's attacks (scripts/bench/abuse.py): another client's
#                                p99, peak RSS and RSS 60 s after each (about 6 minutes)
#   ./scripts/bench.sh soak      the 30-minute mixed-traffic soak (tests/e2e/test_soak.py with
#                                SOAK_SECONDS=${BENCH_SOAK_SECONDS:-1800}) on the release build
#   ./scripts/bench.sh netmount  the media root on a FUSE share that hangs (scripts/bench/netmount.py;
#                                root, /dev/fuse, fusepy): /healthz, notes and login latency with
#                                200 media reads hung, 503 once storage's threads are stuck,
#                                recovery time (about 30 s; also a step of the default run)
#   ./scripts/bench.sh s3        the S3 backend on a local Garage (scripts/bench/s3.py; GARAGE_BIN,
#                                or the Garage that scripts/test.sh caches): a ${BENCH_S3_FILE_MIB:-1024} MiB
#                                GET and seeks through streamhub vs straight from Garage, a
#                                ${BENCH_S3_UPLOAD_MIB:-4096} MiB upload vs curl -T to Garage, RSS growth
#                                during it (about 5 minutes after the build)
#   ./scripts/bench.sh sync      replication on a 3-node cluster in network namespaces
#                                (scripts/bench/sync_bench.py, scripts/netns-cluster.sh; root,
#                                nft): edit-to-visible-everywhere p50/p95, initial sync of
#                                ${BENCH_SYNC_NOTES:-10000} notes, bytes per edit, idle traffic
#                                per peer, RSS per node (about 4 minutes after the build)
#
# What it does (about 10 minutes once built, the streaming part about 5; see docs/PERFORMANCE.md):
#   - installs nginx, wrk, curl, procps, openssl, nghttp2-client (h2load) with apt-get if any
#     is missing (as root, or with sudo); python3 runs the TTFB, notes and upload clients;
#   - builds `cargo build --release` (skipped when STREAMHUB_BIN is set);
#   - prepares <bench dir> (default target/bench): a 1 GiB file of random data,
#     a self-signed EC certificate (SAN localhost, 127.0.0.1) used by both servers;
#   - starts nginx (config template scripts/bench/nginx.conf) and streamhub,
#     both on 127.0.0.1 only, both HTTP and HTTPS;
#   - measures, for both servers, interleaved:
#       1. one 1 GiB download over HTTP, 5 runs: median and worst  (curl %{speed_download})
#       2. one 1 GiB download over HTTPS/1.1, 5 runs: median and worst   (curl --cacert)
#       3. wrk -t2 -c32 -d10s, 64 KiB Range at random offsets (scripts/bench/random_range.lua),
#          median of 3; nginx's figure comes from its tcp_nopush-off server (with tcp_nopush on,
#          64 KiB responses stall ~40 ms on loopback; that figure is reported on its own row);
#          the same against examples/hyper_ceiling.rs, hyper serving the ranges from memory
#          and, with --read, reading them from the file per request, and with --sendfile,
#          sending them per request with sendfile(2) as nginx does, and with --sendfile
#          --open-once from a file opened at start (the ceilings: what any hyper server can
#          do here, with and without the copy nginx's sendfile avoids and the open per request),
#          and with --sendfile --guarded opening it per request as streamhub's guarantees need
#          (the root by path and its device, the file beneath it, two cachestat checks);
#          and h2load over HTTP/2 + TLS, one 64 KiB range (h2load has no random ranges)
#       4. time to first byte of an open-ended seek (bytes=N-) with 50 players seeking and
#          streaming (scripts/bench/ttfb.py): p50 and p99, 2 runs of 10 s
#     then memory (VmRSS): idle after start, and with 200 concurrent slow streams
#     (curl --limit-rate 200k) after ~5 s of streaming, over HTTP and over HTTPS;
#   - prints a markdown table and writes it to <bench dir>/results.md.
#
# Environment (all optional):
#   STREAMHUB_BIN        use this binary instead of building target/release/streamhub
#   BENCH_DIR            work/output directory            (default <repo>/target/bench)
#   BENCH_FILE_MIB       size of the test file in MiB     (default 1024)
#   BENCH_RUNS           runs per download measurement    (default 5)
#   BENCH_WRK_RUNS       runs of each wrk/h2load measurement (default 3)
#   BENCH_TTFB_RUNS      runs of the seek TTFB measurement (default 2)
#   BENCH_WRK_DURATION   wrk duration per run             (default 10s)
#   BENCH_SLOW_STREAMS   concurrent slow streams          (default 200)
#   BENCH_SLOW_RATE      curl --limit-rate of each stream (default 200k)
#   BENCH_PORT_BASE      first port tried for nginx       (default 18480)
#   BENCH_TIME_LIMIT     seconds after the build before the run is aborted (default 900)
#   BENCH_SKIP_STREAMHUB=1  nginx column only (to check the harness itself)
#   BENCH_NOTES          generated notes for the notes benchmark (default 100000)
#   BENCH_UPLOAD_MIB     size of the upload benchmark's file (default 4096)
#   BENCH_LIBRARY_FILES  files in the library benchmark's tree (default 100000)
#   BENCH_ABUSE_SECONDS  how long each attack of `bench.sh abuse` lasts (default 20)
#   BENCH_SOAK_SECONDS   how long `bench.sh soak` runs (default 1800)
#   BENCH_SYNC_NOTES     notes seeded on node 1 for `bench.sh sync` (default 10000)
#   BENCH_SYNC_EDITS     edits timed by `bench.sh sync` (default 100)
#   BENCH_SYNC_IDLE_SECS idle period over which `bench.sh sync` counts traffic (default 120)
#
# No address other than 127.0.0.1 is ever used (`sync`: only the namespaces' private 10.77.0.0/24). All processes started here are
# stopped on exit, including on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_SRC="$ROOT/scripts/bench"
BENCH_DIR=${BENCH_DIR:-"$ROOT/target/bench"}
FILE_MIB=${BENCH_FILE_MIB:-1024}
RUNS=${BENCH_RUNS:-5}
WRK_RUNS=${BENCH_WRK_RUNS:-3}
STREAMING_ONLY=0
WRK_DURATION=${BENCH_WRK_DURATION:-10s}
SLOW_STREAMS=${BENCH_SLOW_STREAMS:-200}
SLOW_RATE=${BENCH_SLOW_RATE:-200k}
PORT_BASE=${BENCH_PORT_BASE:-18480}
TIME_LIMIT=${BENCH_TIME_LIMIT:-900}
SKIP_SH=${BENCH_SKIP_STREAMHUB:-0}
SH_BIN_OVERRIDE=${STREAMHUB_BIN:-}

HOST=127.0.0.1
FILE_SIZE=$((FILE_MIB * 1024 * 1024))
if ((FILE_MIB % 1024 == 0)); then FILE_LABEL="$((FILE_MIB / 1024)) GiB"; else FILE_LABEL="$FILE_MIB MiB"; fi
MEDIA_DIR="$BENCH_DIR/media"
FILE_NAME="bench-${FILE_MIB}M.bin"
FILE_PATH="$MEDIA_DIR/$FILE_NAME"
TLS_DIR="$BENCH_DIR/tls"
CERT="$TLS_DIR/cert.pem"
KEY="$TLS_DIR/key.pem"
NGX_PREFIX="$BENCH_DIR/nginx"
SH_DATA="$BENCH_DIR/data"
SH_CONF="$BENCH_DIR/streamhub.toml"
RESULTS="$BENCH_DIR/results.md"

NGX_PID="" NGX_WORKERS="" SH_PID="" WATCHDOG_PID=""
NGX_HTTP_PORT="" NGX_HTTPS_PORT="" NGX_RANGE_PORT="" SH_HTTP_PORT="" SH_HTTPS_PORT=""
SLOW_PIDS=()
TTFB_RUNS=${BENCH_TTFB_RUNS:-2}
CEIL_PORT="" CEIL_READ_PORT="" CEIL_SF_PORT="" CEIL_SF1_PORT="" CEIL_GD_PORT="" CEIL_PIDS=()
WARNINGS=()
declare -A RES=()      # RES[<metric>.<server>] = "v1 v2 v3" (FAIL for a failed run)
declare -A INFO=()
STARTUP=""              # output of scripts/bench/startup.py
NOTES=""                # output of the notes benchmarks
NETMOUNT=""             # output of scripts/bench/netmount.py

log()  { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }
warn() { log "WARNING: $*"; WARNINGS+=("$*"); }

PROFILE=0              # --profile: perf profiles of streamhub (profile_streamhub)
PROFILES=""

# ---------------------------------------------------------------- cleanup ---
stop_pid() { # pid signal grace_seconds
    local pid=$1 sig=$2 grace=$3 i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

kill_slow_clients() {
    ((${#SLOW_PIDS[@]})) || return 0
    kill -TERM "${SLOW_PIDS[@]}" 2>/dev/null || true
    wait "${SLOW_PIDS[@]}" 2>/dev/null || true
    SLOW_PIDS=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    kill_slow_clients
    local c
    for c in "${CEIL_PIDS[@]}"; do stop_pid "$c" TERM 2; done
    if [[ -n $SH_PID ]]; then stop_pid "$SH_PID" TERM 5; SH_PID=""; fi
    if [[ -n $NGX_PID ]]; then
        stop_pid "$NGX_PID" QUIT 5
        local w
        for w in $NGX_WORKERS; do kill -0 "$w" 2>/dev/null && kill -KILL "$w" 2>/dev/null; done
        NGX_PID=""
    fi
    if [[ -n $WATCHDOG_PID ]]; then
        kill -TERM "$WATCHDOG_PID" 2>/dev/null || true
        wait "$WATCHDOG_PID" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ----------------------------------------------------------- dependencies ---
install_deps() {
    local -a pkgs=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v pgrep >/dev/null 2>&1 || pkgs+=(procps)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    command -v h2load >/dev/null 2>&1 || pkgs+=(nghttp2-client)
    ((PROFILE == 0)) || command -v perf >/dev/null 2>&1 || pkgs+=(linux-perf)
    ((${#pkgs[@]})) || return 0
    log "installing: ${pkgs[*]}"
    local sudo=""
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install ${pkgs[*]}"
        sudo="sudo"
    fi
    # Keep the nginx package from starting its system service on 0.0.0.0:80.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && made_policy=1
    fi
    local ok=0
    $sudo apt-get update -qq || true
    if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; then
        ok=1
    elif [[ " ${pkgs[*]} " == *" nginx-light "* ]]; then
        pkgs=("${pkgs[@]/nginx-light/nginx}")
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" && ok=1
    fi
    ((made_policy)) && $sudo rm -f "$policy"
    ((ok)) || die "apt-get install ${pkgs[*]} failed"
}

# ---------------------------------------------------------------- helpers ---
# true if any IPv4/IPv6 socket on this host uses local port $1 (any state)
port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v h="$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# number of ESTABLISHED server-side sockets on local port $1
established() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v h="$hex" 'FNR > 1 && $4 == "01" && substr($2, length($2) - 4) == h { n++ } END { print n + 0 }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

pick_ports() { # count -> prints that many free ports >= PORT_BASE
    local p=$PORT_BASE found=()
    while ((${#found[@]} < $1 && p < PORT_BASE + 1000)); do
        port_in_use "$p" || found+=("$p")
        p=$((p + 1))
    done
    ((${#found[@]} == $1)) || die "no $1 free loopback ports from $PORT_BASE"
    echo "${found[@]}"
}

rss_kb() { awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

nginx_rss_kb() { # master + workers
    local total=0 p
    for p in $NGX_PID $(pgrep -P "$NGX_PID" 2>/dev/null || true); do
        total=$((total + $(rss_kb "$p")))
    done
    echo "$total"
}

sh_rss_kb() { rss_kb "$SH_PID"; }

jfield() { # json key: one value of a one-line JSON object, n/a if missing
    python3 -c 'import json, sys
try: print(json.loads(sys.argv[1]).get(sys.argv[2], "n/a"))
except ValueError: print("n/a")' "$1" "$2"
}

kb_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

median() { # numbers...; FAIL if any is not a number, n/a if none
    local v
    (($#)) || { echo n/a; return; }
    for v in "$@"; do [[ $v =~ ^[0-9.]+$ ]] || { echo FAIL; return; }; done
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

add_run() { RES[$1.$2]="${RES[$1.$2]:-}${RES[$1.$2]:+ }$3"; }

wait_http() { # url pid what
    local url=$1 pid=$2 what=$3 i
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$what exited during startup"
        if curl -s -o /dev/null --max-time 1 -I "$url"; then return 0; fi
        sleep 0.1
    done
    die "$what did not answer on $url within 20 s"
}

tls_info() { # port -> "TLSv1.3, TLS_AES_256_GCM_SHA384"
    timeout 5 openssl s_client -connect "$HOST:$1" -servername localhost </dev/null 2>/dev/null |
        awk -F', ' '/^New, / { sub(/^Cipher is /, "", $3); print $2 ", " $3; exit }' || true
}

# ------------------------------------------------------------------ setup ---
prepare_files() {
    mkdir -p "$MEDIA_DIR" "$TLS_DIR" "$SH_DATA" "$NGX_PREFIX/logs" "$NGX_PREFIX/tmp"
    # keep the big file and logs out of git whatever the repo's ignore rules are
    [[ -e $BENCH_DIR/.gitignore ]] || printf '*\n' >"$BENCH_DIR/.gitignore"
    if [[ -f $FILE_PATH && $(stat -c %s "$FILE_PATH") -eq $FILE_SIZE ]]; then
        log "reusing $FILE_PATH"
    else
        log "creating $FILE_PATH ($FILE_MIB MiB of random data)"
        head -c "$FILE_SIZE" /dev/urandom >"$FILE_PATH.tmp"
        mv "$FILE_PATH.tmp" "$FILE_PATH"
    fi
    if [[ -s $CERT && -s $KEY ]] && openssl x509 -in "$CERT" -noout -checkend 86400 >/dev/null 2>&1; then
        log "reusing certificate $CERT"
    else
        log "creating self-signed EC certificate"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$KEY" -out "$CERT" -days 30 -subj "/CN=localhost" \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 ||
            die "openssl could not create the certificate"
    fi
    chmod 600 "$KEY"
}

start_nginx() {
    local ports conf="$NGX_PREFIX/nginx.conf" nginx_bin temp="" m userline="" eflag=()
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
    ports=$(pick_ports 3)
    read -r NGX_HTTP_PORT NGX_HTTPS_PORT NGX_RANGE_PORT <<<"$ports"
    temp="client_body_temp_path $NGX_PREFIX/tmp/body;"
    for m in proxy fastcgi uwsgi scgi; do
        "$nginx_bin" -V 2>&1 | grep -q -- "--without-http_${m}_module" ||
            temp+=" ${m}_temp_path $NGX_PREFIX/tmp/$m;"
    done
    ((EUID == 0)) && userline="user root;"
    sed -e "s|@USER_LINE@|$userline|" -e "s|@PREFIX@|$NGX_PREFIX|g" -e "s|@TEMP_PATHS@|$temp|" \
        -e "s|@MEDIA_DIR@|$MEDIA_DIR|g" -e "s|@HTTP_PORT@|$NGX_HTTP_PORT|g" \
        -e "s|@HTTPS_PORT@|$NGX_HTTPS_PORT|g" -e "s|@RANGE_PORT@|$NGX_RANGE_PORT|g" -e "s|@CERT@|$CERT|g" -e "s|@KEY@|$KEY|g" \
        "$BENCH_SRC/nginx.conf" >"$conf"
    # -e (nginx >= 1.19.5) keeps nginx from opening the system error log before reading $conf
    "$nginx_bin" -h 2>&1 | grep -q -- '-e filename' && eflag=(-e "$NGX_PREFIX/logs/error.log")
    "$nginx_bin" -t -q -p "$NGX_PREFIX" -c "$conf" "${eflag[@]}" || die "nginx -t rejected $conf"
    "$nginx_bin" -p "$NGX_PREFIX" -c "$conf" "${eflag[@]}" >>"$NGX_PREFIX/logs/stdout.log" 2>&1 &
    NGX_PID=$!
    wait_http "http://$HOST:$NGX_HTTP_PORT/media/$FILE_NAME" "$NGX_PID" nginx
    NGX_WORKERS=$(pgrep -P "$NGX_PID" | tr '\n' ' ' || true)
    log "nginx pid $NGX_PID (workers: $NGX_WORKERS) http :$NGX_HTTP_PORT https :$NGX_HTTPS_PORT http/tcp_nopush-off :$NGX_RANGE_PORT"
}

build_streamhub() {
    if [[ -n $SH_BIN_OVERRIDE ]]; then
        SH_BIN=$SH_BIN_OVERRIDE
        log "using STREAMHUB_BIN=$SH_BIN (no build)"
    else
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
        SH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/streamhub"
    fi
    [[ -x $SH_BIN ]] || die "streamhub binary not found: $SH_BIN"
}

start_streamhub() {
    local out="$BENCH_DIR/streamhub.stdout" err="$BENCH_DIR/streamhub.stderr" i line
    local -a unset_env=()
    cat >"$SH_CONF" <<EOF
# written by scripts/bench.sh
[server]
tls_cert = "$CERT"
tls_key = "$KEY"
shutdown_grace_secs = 2

[log]
level = "warn"
EOF
    # streamhub rejects unknown STREAMHUB_* variables (STREAMHUB_BIN is one): hide them all.
    for v in ${!STREAMHUB_@}; do unset_env+=(-u "$v"); done
    : >"$out"
    env "${unset_env[@]}" "$SH_BIN" serve --config "$SH_CONF" \
        --listen "$HOST:0" --tls-listen "$HOST:0" \
        --media-root "$MEDIA_DIR" --data-dir "$SH_DATA" --no-discovery >"$out" 2>"$err" &
    SH_PID=$!
    for ((i = 0; i < 300; i++)); do
        if [[ -z $SH_HTTP_PORT ]]; then
            line=$(grep -m1 '^listening on http://' "$out" || true)
            [[ -n $line ]] && SH_HTTP_PORT=${line##*:}
        fi
        if [[ -z $SH_HTTPS_PORT ]]; then
            line=$(grep -m1 '^listening on https://' "$out" || true)
            [[ -n $line ]] && SH_HTTPS_PORT=${line##*:}
        fi
        [[ -n $SH_HTTP_PORT && -n $SH_HTTPS_PORT ]] && break
        if ! kill -0 "$SH_PID" 2>/dev/null; then
            sed 's/^/  streamhub stderr: /' "$err" >&2 || true
            SH_PID=""
            die "streamhub exited during startup"
        fi
        sleep 0.1
    done
    [[ $SH_HTTP_PORT =~ ^[0-9]+$ && $SH_HTTPS_PORT =~ ^[0-9]+$ ]] ||
        die "streamhub did not print both 'listening on' lines within 30 s (stdout: $(tr '\n' ' ' <"$out"))"
    grep -q "^listening on http://$HOST:" "$out" || die "streamhub is not listening on $HOST"
    wait_http "http://$HOST:$SH_HTTP_PORT/media/$FILE_NAME" "$SH_PID" streamhub
    log "streamhub pid $SH_PID http :$SH_HTTP_PORT https :$SH_HTTPS_PORT"
}

# ------------------------------------------------------------ sanity checks ---
check_server() { # name http_port https_port
    local name=$1 hp=$2 sp=$3 start end got code len tmp
    tmp=$(mktemp "$BENCH_DIR/range.XXXXXX")
    len=$(curl -s -I --max-time 5 "http://$HOST:$hp/media/$FILE_NAME" |
        awk 'tolower($1) == "content-length:" { gsub(/\r/, "", $2); print $2 }')
    [[ $len == "$FILE_SIZE" ]] || warn "$name: HEAD Content-Length '$len' != $FILE_SIZE"
    start=$(((RANDOM * 32768 + RANDOM) % (FILE_SIZE - 65536)))
    end=$((start + 65535))
    code=$(curl -s --max-time 5 -r "$start-$end" -o "$tmp" -w '%{http_code}' "http://$HOST:$hp/media/$FILE_NAME" || true)
    [[ $code == 206 ]] || warn "$name: Range request answered $code, expected 206"
    if ! dd if="$FILE_PATH" bs=65536 iflag=skip_bytes,count_bytes skip="$start" count=65536 status=none | cmp -s - "$tmp"; then
        warn "$name: Range bytes=$start-$end body differs from the file"
    fi
    code=$(curl -s --max-time 5 --http1.1 --cacert "$CERT" -I -o /dev/null -w '%{http_code}' \
        "https://$HOST:$sp/media/$FILE_NAME" || true)
    [[ $code == 200 ]] || warn "$name: HTTPS HEAD answered '$code' (certificate or TLS problem?)"
    rm -f "$tmp"
    INFO[tls.$name]=$(tls_info "$sp")
}

# ------------------------------------------------------------ measurements ---
curl_speed() { # url [curl args...] -> MiB/s or FAIL
    local url=$1 out code size speed
    shift
    out=$(curl -s -o /dev/null --max-time 60 "$@" -w '%{http_code} %{size_download} %{speed_download}' "$url" || true)
    read -r code size speed <<<"$out"
    if [[ $code != 200 || $size != "$FILE_SIZE" ]]; then
        warn "download $url: status '$code', $size bytes of $FILE_SIZE"
        echo FAIL
        return
    fi
    awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }'
}

wrk_run() { # name port -> adds wrk_rps / wrk_mibs runs
    local name=$1 port=$2 out rps xfer non2xx sockerr lat
    out=$(BENCH_FILE_SIZE=$FILE_SIZE BENCH_RANGE_LEN=65536 \
        wrk -t2 -c32 -d"$WRK_DURATION" --timeout 5s -s "$BENCH_SRC/random_range.lua" \
        "http://$HOST:$port/media/$FILE_NAME" 2>&1 || true)
    printf '%s\n' "--- $name" "$out" >>"$BENCH_DIR/wrk.log"
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    xfer=$(awk '/^Transfer\/sec:/ {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v)
        f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1 / 1024 : 1 / 1048576
        printf "%.1f", v * f }' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    lat=$(awk '$1 == "Latency" { print $2; exit }' <<<"$out")
    sockerr=$(grep -m1 'Socket errors:' <<<"$out" || true)
    [[ -n $sockerr ]] && warn "$name wrk: $sockerr"
    if [[ -n $non2xx && $non2xx != 0 ]]; then
        warn "$name wrk: $non2xx non-2xx/3xx responses - run counted as FAIL"
        rps=FAIL xfer=FAIL
    fi
    [[ -n $rps ]] || { warn "$name wrk: no result (see $BENCH_DIR/wrk.log)"; rps=FAIL xfer=FAIL; }
    # a server ignoring Range would send the whole file: bytes/request must be ~64 KiB
    if [[ $rps != FAIL ]] && awk -v r="$rps" -v x="$xfer" 'BEGIN { exit !(r > 0 && x * 1048576 / r > 2 * 65536) }'; then
        warn "$name wrk: $(awk -v r="$rps" -v x="$xfer" 'BEGIN { printf "%.0f", x * 1048576 / r }') bytes/request - Range not honoured? run counted as FAIL"
        rps=FAIL xfer=FAIL
    fi
    add_run wrk_rps "$name" "$rps"
    add_run wrk_mibs "$name" "$xfer"
    INFO[wrk_non2xx.$name]="${INFO[wrk_non2xx.$name]:-}${INFO[wrk_non2xx.$name]:+ }${non2xx:-0}"
    INFO[wrk_lat.$name]="${INFO[wrk_lat.$name]:-}${INFO[wrk_lat.$name]:+ }${lat:-?}"
    log "  $name wrk: $rps req/s, $xfer MiB/s, mean latency ${lat:-?}, non-2xx: ${non2xx:-0}"
}


# The examples the run uses, built before the time limit starts and before anything is
# measured (a first build takes minutes on a small box, and would run beside a server).
build_examples() {
    [[ $SKIP_SH == 1 ]] && return
    local -a ex=(--example hyper_ceiling)
    if ((STREAMING_ONLY == 0)); then
        ex+=(--example notes_bench)
        [[ -f $ROOT/examples/library_bench.rs ]] && ex+=(--example library_bench)
    fi
    log "cargo build --release ${ex[*]}"
    (cd "$ROOT" && cargo build --release --quiet "${ex[@]}") ||
        warn "the examples did not build: their rows will be missing"
}

# examples/hyper_ceiling.rs on the benchmark file: from memory, reading per request,
# sending per request with sendfile(2), and sending with sendfile from a file opened once.
start_ceilings() {
    [[ $SKIP_SH == 1 ]] && return
    local bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/hyper_ceiling" ports
    # Built by build_examples, before the time limit.
    [[ -x $bin ]] || { warn "the hyper ceiling did not build: no ceiling rows"; return; }
    ports=$(pick_ports 5)
    read -r CEIL_PORT CEIL_READ_PORT CEIL_SF_PORT CEIL_SF1_PORT CEIL_GD_PORT <<<"$ports"
    "$bin" "$FILE_PATH" "$HOST:$CEIL_PORT" >"$BENCH_DIR/ceiling.log" 2>&1 &
    CEIL_PIDS+=($!)
    "$bin" "$FILE_PATH" "$HOST:$CEIL_READ_PORT" --read >"$BENCH_DIR/ceiling-read.log" 2>&1 &
    CEIL_PIDS+=($!)
    "$bin" "$FILE_PATH" "$HOST:$CEIL_SF_PORT" --sendfile >"$BENCH_DIR/ceiling-sendfile.log" 2>&1 &
    CEIL_PIDS+=($!)
    "$bin" "$FILE_PATH" "$HOST:$CEIL_SF1_PORT" --sendfile --open-once >"$BENCH_DIR/ceiling-sendfile-once.log" 2>&1 &
    CEIL_PIDS+=($!)
    "$bin" "$FILE_PATH" "$HOST:$CEIL_GD_PORT" --sendfile --guarded >"$BENCH_DIR/ceiling-guarded.log" 2>&1 &
    CEIL_PIDS+=($!)
    wait_http "http://$HOST:$CEIL_PORT/media/x" "${CEIL_PIDS[0]}" "hyper ceiling"
    wait_http "http://$HOST:$CEIL_READ_PORT/media/x" "${CEIL_PIDS[1]}" "hyper ceiling (read)"
    wait_http "http://$HOST:$CEIL_SF_PORT/media/x" "${CEIL_PIDS[2]}" "hyper ceiling (sendfile)"
    wait_http "http://$HOST:$CEIL_SF1_PORT/media/x" "${CEIL_PIDS[3]}" "hyper ceiling (sendfile, file opened once)"
    wait_http "http://$HOST:$CEIL_GD_PORT/media/x" "${CEIL_PIDS[4]}" "hyper ceiling (sendfile, guarded open)"
}

stop_ceilings() {
    local p
    for p in "${CEIL_PIDS[@]}"; do stop_pid "$p" TERM 2; done
    CEIL_PIDS=()
}

h2load_run() { # name https_port -> adds h2_rps runs
    local name=$1 port=$2 out rps
    out=$(h2load -n 20000 -c 8 -m 8 -t 1 -H "range: bytes=1048576-1114111" \
        "https://$HOST:$port/media/$FILE_NAME" 2>&1) || true
    printf '%s\n' "--- h2load $name" "$out" >>"$BENCH_DIR/wrk.log"
    rps=$(awk '/^finished in/ { gsub(/,/, ""); print $4 }' <<<"$out")
    grep -q 'status codes: 0 2xx' <<<"$out" && rps=""
    grep -q 'Application protocol: h2' <<<"$out" || rps=""
    [[ -n $rps ]] || { warn "$name h2load: no HTTP/2 result (see $BENCH_DIR/wrk.log)"; rps=FAIL; }
    add_run h2_rps "$name" "$rps"
    log "  $name h2load: $rps req/s"
}

ttfb_run() { # name http_port -> adds ttfb_p50 / ttfb_p99 runs
    local name=$1 port=$2 out
    out=$(python3 "$BENCH_SRC/ttfb.py" "http://$HOST:$port/media/$FILE_NAME" "$FILE_SIZE" 50 10 2>&1) ||
        out='{}'
    printf '%s\n' "--- ttfb $name" "$out" >>"$BENCH_DIR/wrk.log"
    if [[ $(jfield "$out" errors) != 0 ]]; then
        warn "$name ttfb: $(jfield "$out" errors) errors, first: $(jfield "$out" first_error)"
        add_run ttfb_p50 "$name" FAIL
        add_run ttfb_p99 "$name" FAIL
        return
    fi
    add_run ttfb_p50 "$name" "$(jfield "$out" p50_ms)"
    add_run ttfb_p99 "$name" "$(jfield "$out" p99_ms)"
    log "  $name: TTFB p50 $(jfield "$out" p50_ms) ms, p99 $(jfield "$out" p99_ms) ms ($(jfield "$out" count) seeks)"
}

# The worst of the interleaved runs: min over runs of streamhub_i / nginx_i.
worst_ratio() { # metric
    local -a n s
    read -r -a n <<<"${RES[$1.nginx]:-}"
    read -r -a s <<<"${RES[$1.streamhub]:-}"
    local i out=""
    for i in "${!n[@]}"; do
        [[ ${n[$i]} =~ ^[0-9.]+$ && ${s[$i]:-} =~ ^[0-9.]+$ ]] || { echo "-"; return; }
        out+="$(awk -v a="${n[$i]}" -v b="${s[$i]}" 'BEGIN { if (a > 0) printf "%.3f", b / a; else print 0 }') "
    done
    [[ -n $out ]] || { echo "-"; return; }
    tr ' ' '\n' <<<"$out" | grep . | sort -g | head -1 | awk '{ printf "%.2f", $1 }'
}

worst_vs_median() { # metric server reference -> server's worst run / reference's median
    local -a runs
    read -r -a runs <<<"${RES[$1.$2]:-}"
    ((${#runs[@]})) || { echo "-"; return; }
    local med worst
    # shellcheck disable=SC2086
    med=$(median ${RES[$1.$3]:-})
    worst=$(printf '%s\n' "${runs[@]}" | sort -g | head -1)
    [[ $med =~ ^[0-9.]+$ ]] || { echo "-"; return; }
    # A failed download (FAIL) is the worst run there can be.
    [[ $worst =~ ^[0-9.]+$ ]] || { echo "0.00"; return; }
    awk -v a="$med" -v b="$worst" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "-" }'
}

slow_streams() { # name url port rss_function metric [curl args...]
    local name=$1 url=$2 port=$3 rssfn=$4 metric=$5 i n=0 rss
    shift 5
    log "  $name: starting $SLOW_STREAMS slow streams ($SLOW_RATE each) on $url"
    for ((i = 0; i < SLOW_STREAMS; i++)); do
        curl -s -o /dev/null --limit-rate "$SLOW_RATE" --max-time 120 "$@" "$url" &
        SLOW_PIDS+=($!)
    done
    for ((i = 0; i < 150; i++)); do
        n=$(established "$port")
        ((n >= SLOW_STREAMS)) && break
        sleep 0.1
    done
    ((n >= SLOW_STREAMS)) || warn "$name: only $n of $SLOW_STREAMS streams connected after 15 s"
    sleep 5
    n=$(established "$port")
    rss=$($rssfn)
    kill_slow_clients
    ((n >= SLOW_STREAMS)) || warn "$name: $n of $SLOW_STREAMS streams still open after 5 s"
    add_run "$metric" "$name" "$(kb_to_mib "$rss")"
    INFO[$metric.streams.$name]=$n
    log "  $name: RSS $(kb_to_mib "$rss") MiB with $n open streams"
    # let the server notice the closed connections before the next measurement
    for ((i = 0; i < 50; i++)); do
        (($(established "$port") == 0)) && break
        sleep 0.1
    done
}

# ----------------------------------------------------------------- report ---
fmt() { # value decimals
    [[ $1 == FAIL || $1 == n/a ]] && { echo "$1"; return; }
    awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'
}

ratio() {
    [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] || { echo "-"; return; }
    awk -v n="$1" -v s="$2" 'BEGIN { if (n > 0) printf "%.2f", s / n; else print "-" }'
}

write_report() {
    local -a rows=(
        "http_mibs|Single stream, $FILE_LABEL over HTTP (MiB/s)|1"
        "https_mibs|Single stream, $FILE_LABEL over HTTPS/1.1 (MiB/s)|1"
        "wrk_rps|64 KiB random ranges, wrk -t2 -c32 ${WRK_DURATION} (requests/s)|0"
        "wrk_mibs|64 KiB random ranges, wrk -t2 -c32 ${WRK_DURATION} (transfer MiB/s)|1"
        "wrk_rps_cork|64 KiB random ranges, req/s, nginx with tcp_nopush on (loopback stall, see notes)|0"
        "h2_rps|one 64 KiB range, HTTP/2 over TLS, h2load -c8 -m8 (requests/s)|0"
        "ttfb_p50|seek time to first byte, 50 players, p50 (ms)|1"
        "ttfb_p99|seek time to first byte, 50 players, p99 (ms)|1"
        "rss_idle|RSS idle after start (MiB)|1"
        "rss_slow_http|RSS with $SLOW_STREAMS slow HTTP streams (MiB)|1"
        "rss_slow_https|RSS with $SLOW_STREAMS slow HTTPS streams (MiB)|1"
    )
    local row key label dec n s sh_ver commit cpu
    local -A MED=()
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    # the tcp_nopush-on row compares streamhub's range runs with nginx's tcp_nopush on server
    [[ -n ${RES[wrk_rps.nginx_cork]:-} ]] && RES[wrk_rps_cork.nginx]=${RES[wrk_rps.nginx_cork]}
    [[ -n ${RES[wrk_rps.streamhub]:-} ]] && RES[wrk_rps_cork.streamhub]=${RES[wrk_rps.streamhub]}
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
    git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || commit+=" (+ uncommitted changes)"
    {
        echo "## streamhub vs nginx — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "| metric | nginx | streamhub | ratio streamhub/nginx |"
        echo "| --- | ---: | ---: | ---: |"
        for row in "${rows[@]}"; do
            IFS='|' read -r key label dec <<<"$row"
            # shellcheck disable=SC2086
            n=$(median ${RES[$key.nginx]:-})
            if [[ $SKIP_SH == 1 ]]; then s=n/a; else
                # shellcheck disable=SC2086
                s=$(median ${RES[$key.streamhub]:-})
            fi
            MED[$key.nginx]=$n MED[$key.streamhub]=$s
            echo "| $label | $(fmt "$n" "$dec") | $(fmt "$s" "$dec") | $(ratio "$n" "$s") |"
        done
        echo
        echo "Download rows: median of $RUNS runs, range rows of $WRK_RUNS, TTFB rows of $TTFB_RUNS; nginx and streamhub interleaved. RSS rows: VmRSS"
        echo "from /proc (nginx: master + 2 workers), slow streams sampled after ~5 s of streaming."
        echo "nginx serves whole files with sendfile + tcp_nopush on; the 64 KiB range rows use its"
        echo "tcp_nopush off server, because with tcp_nopush on each 64 KiB response stalls ~40 ms"
        echo "on loopback (MTU 65536, delayed ACK); that figure is the tcp_nopush on row."
        echo
        echo "Runs (nginx / streamhub):"
        echo
        for row in "${rows[@]}"; do
            IFS='|' read -r key label dec <<<"$row"
            echo "- $label: ${RES[$key.nginx]:-n/a} / ${RES[$key.streamhub]:-n/a}"
        done
        echo "- wrk non-2xx/3xx responses per run: ${INFO[wrk_non2xx.nginx]:-n/a} / ${INFO[wrk_non2xx.streamhub]:-n/a} (nginx tcp_nopush on: ${INFO[wrk_non2xx.nginx_cork]:-n/a})"
        echo "- wrk mean latency per run: ${INFO[wrk_lat.nginx]:-n/a} / ${INFO[wrk_lat.streamhub]:-n/a} (nginx tcp_nopush on: ${INFO[wrk_lat.nginx_cork]:-n/a})"
        echo "- open streams when RSS was sampled (HTTP, HTTPS): nginx ${INFO[rss_slow_http.streams.nginx]:-n/a}, ${INFO[rss_slow_https.streams.nginx]:-n/a}; streamhub ${INFO[rss_slow_http.streams.streamhub]:-n/a}, ${INFO[rss_slow_https.streams.streamhub]:-n/a}"
        echo "- streamhub peak RSS over the whole run (VmHWM): ${INFO[sh_hwm]:-n/a} MiB"
        echo "- TLS negotiated by curl/OpenSSL: nginx ${INFO[tls.nginx]:-n/a}; streamhub ${INFO[tls.streamhub]:-n/a}"
        echo "- worst download run against nginx's median (the target): HTTP $(worst_vs_median http_mibs streamhub nginx), HTTPS $(worst_vs_median https_mibs streamhub nginx); nginx's own worst run against its median: HTTP $(worst_vs_median http_mibs nginx nginx), HTTPS $(worst_vs_median https_mibs nginx nginx)"
        echo "- worst download run, streamhub/nginx of the same round (reported; carries both servers' noise): HTTP $(worst_ratio http_mibs), HTTPS $(worst_ratio https_mibs)"
        # shellcheck disable=SC2086
        echo "- 64 KiB ranges, hyper ceilings (examples/hyper_ceiling.rs), req/s: from memory $(median ${RES[wrk_rps.ceiling]:-}) (runs ${RES[wrk_rps.ceiling]:-n/a}), reading the file per request $(median ${RES[wrk_rps.ceiling_read]:-}) (runs ${RES[wrk_rps.ceiling_read]:-n/a}), sending it per request with sendfile $(median ${RES[wrk_rps.ceiling_sendfile]:-}) (runs ${RES[wrk_rps.ceiling_sendfile]:-n/a}), with sendfile from a file opened once $(median ${RES[wrk_rps.ceiling_sendfile_once]:-}) (runs ${RES[wrk_rps.ceiling_sendfile_once]:-n/a}), with sendfile and streamhub's guarded open $(median ${RES[wrk_rps.ceiling_guarded]:-}) (runs ${RES[wrk_rps.ceiling_guarded]:-n/a}); nginx $(median ${RES[wrk_rps.nginx]:-})"
        echo
        if [[ $SKIP_SH != 1 ]]; then
            echo "Targets:"
            echo
            target_line "throughput HTTP ≥ 1.0× nginx (median)" "$(ratio "${MED[http_mibs.nginx]}" "${MED[http_mibs.streamhub]}")" ">=" 1.0
            target_line "throughput HTTP: worst run ≥ 0.9× nginx's median" "$(worst_vs_median http_mibs streamhub nginx)" ">=" 0.9
            target_line "throughput HTTPS ≥ 1.0× nginx (median)" "$(ratio "${MED[https_mibs.nginx]}" "${MED[https_mibs.streamhub]}")" ">=" 1.0
            target_line "throughput HTTPS: worst run ≥ 0.9× nginx's median" "$(worst_vs_median https_mibs streamhub nginx)" ">=" 0.9
            target_line "64 KiB range requests/s ≥ 1.0× nginx" "$(ratio "${MED[wrk_rps.nginx]}" "${MED[wrk_rps.streamhub]}")" ">=" 1.0
            target_line "seek TTFB p99 with 50 players ≤ 1.0× nginx's" "$(ratio "${MED[ttfb_p99.nginx]}" "${MED[ttfb_p99.streamhub]}")" "<=" 1.0
            echo "- (reported) HTTP/2 over TLS, 64 KiB range, streamhub/nginx: $(ratio "${MED[h2_rps.nginx]}" "${MED[h2_rps.streamhub]}")"
            target_line "idle RSS ≤ 10 MiB" "$(fmt "${MED[rss_idle.streamhub]}" 1)" "<=" 10
            target_line "RSS with $SLOW_STREAMS slow HTTP streams ≤ 1.0× nginx's" "$(ratio "${MED[rss_slow_http.nginx]}" "${MED[rss_slow_http.streamhub]}")" "<=" 1.0
            target_line "RSS with $SLOW_STREAMS slow HTTPS streams ≤ 1.0× nginx's" "$(ratio "${MED[rss_slow_https.nginx]}" "${MED[rss_slow_https.streamhub]}")" "<=" 1.0
            if [[ $STREAMING_ONLY == 0 ]]; then
                target_line "warm start to READY=1 ≤ 150 ms" "$(sed -n 's/^warm start.*: //p' <<<"$STARTUP")" "<=" 150
                target_line "stripped binary ≤ 10 MiB" "$(sed -n 's/^binary size stripped.*: //p' <<<"$STARTUP")" "<=" 10
                target_line "PUT upload ≥ 0.9× dd" "$(jfield "$UPLOADS" put_vs_dd)" ">=" 0.9
                target_line "tus upload (one PATCH) ≥ 0.9× dd" "$(jfield "$UPLOADS" tus_curl_vs_dd)" ">=" 0.9
                target_line "RSS growth during a $BENCH_UPLOAD_MIB MiB PUT ≤ 16 MiB" "$(jfield "$UPLOADS" put_rss_growth_mib)" "<=" 16
                target_line "RSS growth during a $BENCH_UPLOAD_MIB MiB tus upload ≤ 16 MiB" "$(jfield "$UPLOADS" tus_curl_rss_growth_mib)" "<=" 16
                target_line "library search p95 at $BENCH_LIBRARY_FILES files ≤ 20 ms" "$(jfield "${LIBRARY:-}" search_p95_ms)" "<=" 20
                target_line "notes and /healthz while the media mount hangs ≤ 1000 ms" "$(sed -n 's/^slowest .* (ms): //p' <<<"${NETMOUNT:-}")" "<=" 1000
                target_line "notes search p95 at $BENCH_NOTES notes ≤ 5 ms" "$(sed -n 's/^search p95 (ms): //p' <<<"$NOTES")" "<=" 5
                echo
                echo "Start-up (scripts/bench/startup.py):"
                echo
                sed 's/^/- /' <<<"$STARTUP"
                echo
                echo "Notes (scripts/bench/notes_http.py against the running server; examples/notes_bench.rs):"
                echo
                sed 's/^/- /' <<<"$NOTES"
                echo
                echo "Uploads (scripts/bench/uploads.py against the running server; ratios against dd to the same disk):"
                echo
                echo "- $UPLOADS"
                echo
                if [[ -n ${LIBRARY:-} ]]; then
                    echo "Library (examples/library_bench.rs):"
                    echo
                    sed 's/^/- /' <<<"$LIBRARY"
                    echo
                fi
                if [[ -n ${NETMOUNT:-} ]]; then
                    echo "Hung media mount (scripts/bench/netmount.py):"
                    echo
                    echo "$NETMOUNT"
                    echo
                fi
            fi
        fi
        echo "Machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
        echo "Software: $(nginx -v 2>&1 | head -1); $(rustc -V 2>/dev/null || echo 'rustc n/a'); $(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }'); $(curl --version | head -1 | awk '{ print "curl " $2, $5 }')"
        echo "streamhub: ${SH_BIN:-n/a} (built $(date -u -r "${SH_BIN:-/nonexistent}" '+%F %T UTC' 2>/dev/null || echo n/a); git $commit)"
        echo "Command: ./scripts/bench.sh$( ((STREAMING_ONLY)) && echo " streaming")${SH_BIN_OVERRIDE:+ (STREAMHUB_BIN=$SH_BIN_OVERRIDE)}; file ${FILE_MIB} MiB of random data; loopback 127.0.0.1 only"
        if ((${#WARNINGS[@]})); then
            echo
            echo "Warnings:"
            printf -- '- %s\n' "${WARNINGS[@]}"
        fi
    } >"$RESULTS.tmp"
    mv "$RESULTS.tmp" "$RESULTS"
}

target_line() { # text value op limit
    local verdict
    if [[ ! $2 =~ ^[0-9.]+$ ]]; then
        verdict="NOT MEASURED"
    elif awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { exit !((op == ">=") ? v >= l : v <= l) }'; then
        verdict="met"
    else
        verdict="NOT met"
    fi
    echo "- $1: $2 → $verdict"
}

# ------------------------------------------------------------------- main ---
# The robustness benchmarks: no nginx, one streamhub, loopback only (127.0.0.2 and .3 too);
# and `sync`: three streamhubs in network namespaces.
robustness() {
    build_streamhub
    python3 -c 'import h2, pytest' 2>/dev/null || pip install -q h2 pytest 2>/dev/null ||
        pip install -q --break-system-packages h2 pytest
    mkdir -p "$BENCH_DIR"
    local work
    work=$(mktemp -d "$BENCH_DIR/$1.XXXXXX")
    case $1 in
        abuse) python3 "$BENCH_SRC/abuse.py" "$SH_BIN" "$work" "${BENCH_ABUSE_SECONDS:-20}" | tee "$BENCH_DIR/abuse.md" ;;
        soak) (cd "$ROOT/tests/e2e" && STREAMHUB_BIN="$SH_BIN" SOAK_SECONDS="${BENCH_SOAK_SECONDS:-1800}" \
            python3 -m pytest -q -s -p no:cacheprovider --basetemp "$work" test_soak.py) | tee "$BENCH_DIR/soak.log" ;;
        sync) python3 "$BENCH_SRC/sync_bench.py" "$SH_BIN" "$work" | tee "$BENCH_DIR/sync.md" ;;
        netmount) netmount_bench "$work" | tee "$BENCH_DIR/netmount.md" ;;
        s3) s3_bench "$work" | tee "$BENCH_DIR/s3.md" ;;
    esac
    rm -rf "$work"
}

# The hung-mount measurement (scripts/bench/netmount.py): needs root and /dev/fuse.
netmount_bench() { # work dir
    ((EUID == 0)) && [[ -e /dev/fuse ]] || { echo "needs root and /dev/fuse" >&2; return 1; }
    python3 -c 'import fuse' 2>/dev/null || pip install -q fusepy==3.0.1 2>/dev/null ||
        pip install -q --break-system-packages fusepy==3.0.1
    python3 "$BENCH_SRC/netmount.py" "$SH_BIN" "$1" 200 20
}

# The S3 backend against the same Garage directly (scripts/bench/s3.py).
s3_bench() { # work dir
    local garage=${GARAGE_BIN:-${STREAMHUB_TOOLS:-$HOME/.cache/streamhub-tools}/garage-2.5.0/bin/garage}
    [[ -x $garage ]] || { echo "no Garage at $garage: run ./scripts/test.sh once (it installs it) or set GARAGE_BIN" >&2; return 1; }
    # nginx is the relaying reference of the S3 rows: installed as for the default run.
    install_deps
    GARAGE_BIN=$garage python3 "$BENCH_SRC/s3.py" "$SH_BIN" "$1" "${BENCH_S3_FILE_MIB:-1024}" \
        "${BENCH_S3_UPLOAD_MIB:-4096}" "${BENCH_RUNS_S3:-5}"
}

# Where streamhub's time goes under a load: `perf record -g` (cpu-clock, so it works where
# the machine has no hardware counters) on the service for one run of the load; the report's
# top symbols go to profile-<name>.txt and their first lines to the results.
profile_streamhub() { # name load-command...
    local name=$1 out="$BENCH_DIR/profile-$1.txt" data="$BENCH_DIR/perf-$1.data"
    shift
    perf record -e cpu-clock -F 999 -g -p "$SH_PID" -o "$data" -- sleep 600 2>/dev/null &
    local perf_pid=$!
    sleep 0.5
    "$@" >/dev/null 2>&1 || warn "profile $name: the load failed"
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    {
        echo "# perf report --no-children --sort dso,sym (cpu-clock, -F 999, -g) of streamhub under: $name"
        perf report -i "$data" --no-children --sort dso,sym --percent-limit 0.5 --stdio 2>/dev/null |
            grep -E '^ +[0-9]'
    } >"$out"
    PROFILES+=$'\n'"Profile \`$name\` (top 12 of $out):"$'\n''```'$'\n'"$(sed -n 2,13p "$out")"$'\n''```'
    log "profile $name: $out"
}

main() {
    local run servers=(nginx) t0
    if [[ ${1:-} == --profile ]]; then
        PROFILE=1
        shift
    fi
    case ${1:-} in
        abuse | soak | netmount | s3) robustness "$1"; return ;;
        sync)
            ((EUID == 0)) || die "bench.sh sync needs root (network namespaces)"
            command -v nft >/dev/null 2>&1 || {
                log "installing: nftables (byte counters on the cluster's bridge)"
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables ||
                    die "apt-get install nftables failed"
            }
            robustness sync
            return
            ;;
        streaming) STREAMING_ONLY=1 ;;
        "") ;;
        *) die "unknown benchmark '$1' (none, streaming, abuse, soak, netmount, s3 or sync)" ;;
    esac
    install_deps
    [[ $SKIP_SH == 1 ]] || build_streamhub
    build_examples

    t0=$SECONDS
    (
        sp=""
        trap 'kill "$sp" 2>/dev/null; exit 0' TERM
        sleep "$TIME_LIMIT" &
        sp=$!
        wait "$sp"
        echo "[bench] time limit of $TIME_LIMIT s reached, aborting" >&2
        kill -TERM $$
    ) &
    WATCHDOG_PID=$!

    prepare_files
    : >"$BENCH_DIR/wrk.log"
    start_nginx
    INFO[nginx_idle]=$(nginx_rss_kb)
    add_run rss_idle nginx "$(kb_to_mib "${INFO[nginx_idle]}")"
    if [[ $SKIP_SH != 1 ]]; then
        start_streamhub
        sleep 1 # let the runtime settle before the idle sample
        add_run rss_idle streamhub "$(kb_to_mib "$(sh_rss_kb)")"
        servers+=(streamhub)
    fi
    log "idle RSS: nginx ${RES[rss_idle.nginx]} MiB, streamhub ${RES[rss_idle.streamhub]:-n/a} MiB"
    # Idle RSS depends on the hot code being linked together (docs/ARCHITECTURE.md, "code
    # layout"): say when the list no longer matches the binary.
    [[ $SKIP_SH == 1 ]] || log "$("$ROOT/scripts/hot-symbols.sh" --check "$SH_BIN" 2>&1 | tr '\n' ' ')"

    check_server nginx "$NGX_HTTP_PORT" "$NGX_HTTPS_PORT"
    [[ $SKIP_SH == 1 ]] || check_server streamhub "$SH_HTTP_PORT" "$SH_HTTPS_PORT"

    local name hp sp
    rounds() { # runs function kind: the function on every server (name, its port), runs times
        local n=$1 fn=$2 kind=$3 r s
        for ((r = 1; r <= n; r++)); do
            for s in "${servers[@]}"; do "$fn" "$s" "$(port_of "$s" "$kind")"; done
        done
    }
    port_of() { # name kind
        case $1.$2 in
            nginx.http) echo "$NGX_HTTP_PORT" ;; nginx.https) echo "$NGX_HTTPS_PORT" ;;
            streamhub.http) echo "$SH_HTTP_PORT" ;; streamhub.https) echo "$SH_HTTPS_PORT" ;;
        esac
    }

    log "1/5 single-stream HTTP download of $FILE_MIB MiB, $RUNS runs (after one unmeasured run each)"
    # nginx's first download after its start was 0.24-0.29x of its median in three runs in a
    # row (streamhub, second in each round, never had it): one unmeasured download per server
    # first, so the first round measures the servers, not their warm-up.
    for name in "${servers[@]}"; do
        curl_speed "http://$HOST:$(port_of "$name" http)/media/$FILE_NAME" >/dev/null
    done
    for ((run = 1; run <= RUNS; run++)); do
        for name in "${servers[@]}"; do
            hp=$(port_of "$name" http)
            add_run http_mibs "$name" "$(curl_speed "http://$HOST:$hp/media/$FILE_NAME")"
        done
    done
    log "  nginx: ${RES[http_mibs.nginx]}  streamhub: ${RES[http_mibs.streamhub]:-n/a} (MiB/s)"

    log "2/5 single-stream HTTPS download of $FILE_MIB MiB, $RUNS runs"
    for ((run = 1; run <= RUNS; run++)); do
        for name in "${servers[@]}"; do
            sp=$(port_of "$name" https)
            add_run https_mibs "$name" "$(curl_speed "https://$HOST:$sp/media/$FILE_NAME" --http1.1 --cacert "$CERT")"
        done
    done
    log "  nginx: ${RES[https_mibs.nginx]}  streamhub: ${RES[https_mibs.streamhub]:-n/a} (MiB/s)"

    log "3/5 wrk random 64 KiB ranges, $WRK_RUNS runs of $WRK_DURATION (and the hyper ceilings)"
    start_ceilings
    for ((run = 1; run <= WRK_RUNS; run++)); do
        wrk_run nginx "$NGX_RANGE_PORT"
        [[ $SKIP_SH == 1 ]] || wrk_run streamhub "$SH_HTTP_PORT"
        wrk_run nginx_cork "$NGX_HTTP_PORT"
        [[ -z $CEIL_PORT ]] || wrk_run ceiling "$CEIL_PORT"
        [[ -z $CEIL_READ_PORT ]] || wrk_run ceiling_read "$CEIL_READ_PORT"
        [[ -z $CEIL_SF_PORT ]] || wrk_run ceiling_sendfile "$CEIL_SF_PORT"
        [[ -z $CEIL_SF1_PORT ]] || wrk_run ceiling_sendfile_once "$CEIL_SF1_PORT"
        [[ -z $CEIL_GD_PORT ]] || wrk_run ceiling_guarded "$CEIL_GD_PORT"
    done
    stop_ceilings
    log "  h2load, HTTP/2 over TLS, one 64 KiB range, $WRK_RUNS runs"
    rounds "$WRK_RUNS" h2load_run https

    log "4/5 time to first byte of a seek, 50 players, $TTFB_RUNS runs of 10 s"
    rounds "$TTFB_RUNS" ttfb_run http

    log "5/5 memory with $SLOW_STREAMS slow streams"
    for name in "${servers[@]}"; do
        local fn=nginx_rss_kb
        [[ $name == streamhub ]] && fn=sh_rss_kb
        hp=$(port_of "$name" http)
        sp=$(port_of "$name" https)
        slow_streams "$name" "http://$HOST:$hp/media/$FILE_NAME" "$hp" "$fn" rss_slow_http
        slow_streams "$name" "https://$HOST:$sp/media/$FILE_NAME" "$sp" "$fn" rss_slow_https --http1.1 --cacert "$CERT"
    done
    [[ $SKIP_SH == 1 ]] || INFO[sh_hwm]=$(kb_to_mib "$(hwm_kb "$SH_PID")")

    if [[ $SKIP_SH != 1 && $STREAMING_ONLY == 0 ]]; then
        log "start-to-READY (sd_notify) and binary size"
        STARTUP=$(python3 "$(dirname "$0")/bench/startup.py" "$SH_BIN" "$BENCH_DIR/startup" 10)
        echo "$STARTUP"
        log "notes: ${BENCH_NOTES:=100000} generated notes (search latency, size), HTTP create rate"
        cargo build --release --quiet --example notes_bench
        NOTES=$(python3 "$(dirname "$0")/bench/notes_http.py" "$SH_BIN" "$SH_DATA" "$(port_of streamhub http)" 5)
        NOTES+=$'\n'$("${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/notes_bench" "$BENCH_DIR/notes" "$BENCH_NOTES" 2000)
        echo "$NOTES"
        log "uploads: ${BENCH_UPLOAD_MIB:=4096} MiB with PUT, tus (curl, tuspy) and dd"
        python3 -c 'import tusclient' 2>/dev/null || pip install -q tuspy 2>/dev/null ||
            pip install -q --break-system-packages tuspy
        UPLOADS=$(python3 "$(dirname "$0")/bench/uploads.py" "$SH_BIN" "$SH_DATA" "$MEDIA_DIR" \
            "$(port_of streamhub http)" "$SH_PID" "$BENCH_UPLOAD_MIB" 2) ||
            warn "the upload benchmark failed (see above)"
        echo "$UPLOADS"
        if [[ -f $ROOT/examples/library_bench.rs ]]; then
            log "library: ${BENCH_LIBRARY_FILES:=100000} files (scan, rescan, search)"
            cargo build --release --quiet --example library_bench
            LIBRARY=$(BENCH_REUSE=1 "${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/library_bench" \
                "$BENCH_DIR/library" "$BENCH_LIBRARY_FILES" 2000)
            echo "$LIBRARY"
        fi
        log "netmount: 200 media reads hung on a FUSE share; notes, /healthz, login meanwhile"
        NETMOUNT=$(netmount_bench "$(mktemp -d "$BENCH_DIR/netmount.XXXXXX")") ||
            warn "the hung-mount benchmark failed or was skipped (needs root and /dev/fuse)"
        echo "$NETMOUNT"
    fi
    if ((PROFILE)) && [[ $SKIP_SH != 1 ]]; then
        log "profiles: perf record while wrk runs ranges and curl downloads over HTTPS"
        profile_streamhub ranges env BENCH_FILE_SIZE="$FILE_SIZE" BENCH_RANGE_LEN=65536 wrk -t2 -c32 -d"$WRK_DURATION" --timeout 5s \
            -s "$BENCH_SRC/random_range.lua" "http://$HOST:$SH_HTTP_PORT/media/$FILE_NAME"
        profile_streamhub https-download curl -sS -o /dev/null --http1.1 --cacert "$CERT" \
            "https://$HOST:$SH_HTTPS_PORT/media/$FILE_NAME"
    fi

    write_report
    [[ -z $PROFILES ]] || printf '%s\n' "$PROFILES" >>"$RESULTS"
    echo
    cat "$RESULTS"
    echo
    log "done in $((SECONDS - t0)) s (after build); results in $RESULTS"
}

main "$@"
