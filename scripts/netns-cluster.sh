#!/usr/bin/env bash
# A LAN of streamhub nodes inside network namespaces, for multi-node tests and for trying a
# cluster by hand. No packet leaves the namespaces: the "LAN" is a bridge inside a namespace
# of its own, with private test addresses (10.77.0.0/24), and nothing is routed out.
#
#   scripts/netns-cluster.sh up N      N nodes (1..N), one cluster key, a shared media folder
#   scripts/netns-cluster.sh down      stop the nodes, delete the namespaces
#   scripts/netns-cluster.sh exec I CMD...   run CMD in namespace I (0 = the observer)
#   scripts/netns-cluster.sh start I [VAR=VALUE...] [-- SERVE-ARGS...]   (re)start node I
#   scripts/netns-cluster.sh stop I    SIGTERM node I and wait for it
#   scripts/netns-cluster.sh kill I    SIGKILL node I (a crash: no shutdown at all) and wait for it
#   scripts/netns-cluster.sh add I     one more namespace on the LAN (no node started)
#
# Namespace I is "$SHC_PREFIX-I" with address 10.77.0.I (I ≥ 1 are nodes, 0 is an observer at
# 10.77.0.254 for tools such as avahi-browse or python-zeroconf). Each node runs
# `streamhub serve` with HTTP on 10.77.0.I:8080 and HTTPS on 10.77.0.I:8443, its own data
# dir ($SHC_DIR/nodeI/data, with an admin user "admin" whose password is $SHC_ADMIN_PASSWORD)
# and the shared media folder $SHC_DIR/media. Its stdout, stderr and pid are in $SHC_DIR/nodeI/.
# The cluster key is $SHC_DIR/cluster.key (made with `streamhub cluster new`, or
# $SHC_CLUSTER_KEY). IPv6 is off in the namespaces unless SHC_IPV6=1.
#
# Environment: SHC_PREFIX (default shc), SHC_DIR (default /tmp/$SHC_PREFIX), STREAMHUB_BIN
# (default target/debug/streamhub, else target/release/streamhub), SHC_ADMIN_PASSWORD (default admin-pass-1). Needs root
# and iproute2.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${SHC_PREFIX:-shc}
DIR=${SHC_DIR:-/tmp/$PREFIX}
BIN=${STREAMHUB_BIN:-$PWD/target/debug/streamhub}
# The README builds a release binary; the tests a debug one: either will do.
if [ -z "${STREAMHUB_BIN:-}" ] && [ ! -x "$BIN" ] && [ -x "$PWD/target/release/streamhub" ]; then
  BIN=$PWD/target/release/streamhub
fi
case "${1:-}" in up | start) [ -x "$BIN" ] || { echo "netns-cluster: no streamhub binary at $BIN: build it first (cargo build --release) or set STREAMHUB_BIN" >&2; exit 2; } ;; esac
PASS=${SHC_ADMIN_PASSWORD:-admin-pass-1}
LAN="$PREFIX-lan"
# The binary refuses unknown STREAMHUB_* variables: this one is the script's, not its.
unset STREAMHUB_BIN

die() { echo "netns-cluster: $*" >&2; exit 2; }
ns() { echo "$PREFIX-$1"; }
addr() { if [ "$1" = 0 ]; then echo 10.77.0.254; else echo "10.77.0.$1"; fi; }

# One namespace on the LAN bridge: veth "eth0" inside, "v<I>" on the bridge.
add_ns() {
  local i=$1 n; n=$(ns "$i")
  [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -le 200 ] || die "bad index: $i (0..200)"
  ip netns add "$n"
  ip -n "$n" link set lo up
  if [ "${SHC_IPV6:-0}" != 1 ]; then
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  fi
  ip -n "$LAN" link add "v$i" type veth peer name eth0 netns "$n"
  ip -n "$LAN" link set "v$i" master br0 up
  ip -n "$n" addr add "$(addr "$i")/24" dev eth0
  ip -n "$n" link set eth0 up
  # Multicast (mDNS) goes out on the LAN; nothing else has a route anywhere.
  ip -n "$n" route add 224.0.0.0/4 dev eth0
}

start_node() {
  local i=$1; shift
  local n; n=$(ns "$i")
  # VAR=VALUE words go to the environment, words after "--" to `streamhub serve`.
  local envs=() args=()
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; args=("$@"); break; fi
    envs+=("$1"); shift
  done
  local d="$DIR/node$i"
  [ -x "$BIN" ] || die "no streamhub binary at $BIN (cargo build, or set STREAMHUB_BIN)"
  ip netns list | grep -qw "^$n" || die "no namespace $n (up or add first)"
  stop_node "$i"
  mkdir -p "$d"
  if [ ! -e "$d/data/streamhub.db" ]; then
    printf '%s\n' "$PASS" | "$BIN" user add admin --admin --password-stdin --data-dir "$d/data" --init >/dev/null
  fi
  : >"$d/stdout"
  ip netns exec "$n" env STREAMHUB_SYNC_CLUSTER_KEY="$(cat "$DIR/cluster.key")" \
    STREAMHUB_DISCOVERY_NAME="node$i" STREAMHUB_QUOTAS_MIN_FREE_BYTES=0 "${envs[@]}" \
    "$BIN" serve --listen "$(addr "$i"):8080" --tls-listen "$(addr "$i"):8443" \
    --media-root "$DIR/media" --data-dir "$d/data" "${args[@]}" >"$d/stdout" 2>"$d/stderr" &
  echo $! >"$d/pid"
  # Ready when both listening lines are out (20 s at most).
  for _ in $(seq 200); do
    [ "$(grep -c '^listening on' "$d/stdout" 2>/dev/null)" -ge 2 ] && return 0
    kill -0 "$(cat "$d/pid")" 2>/dev/null || { cat "$d/stderr" >&2; die "node $i exited"; }
    sleep 0.1
  done
  die "node $i did not start within 20 s (see $d/stderr)"
}

stop_node() {
  local pidf="$DIR/node$1/pid" pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf"); rm -f "$pidf"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# A crash, for the fault tests: SIGKILL, nothing of the service's shutdown runs. The node was
# started by a shell that has exited, so whoever adopted it may reap it late: a zombie is dead.
kill_node() {
  local pidf="$DIR/node$1/pid" pid state
  [ -f "$pidf" ] || die "node $1 is not running"
  pid=$(cat "$pidf"); rm -f "$pidf"
  kill -KILL "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 0
    [ "$state" = Z ] && return 0
    sleep 0.05
  done
  die "node $1 (pid $pid) still runs after SIGKILL"
}

case "${1:-}" in
  up)
    n=${2:-}; [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "usage: up N (1..200)"
    ip netns list | grep -qw "^$LAN" && die "$LAN exists: run down first"
    [ -d "$DIR" ] && echo "reusing the state in $DIR (notes, media, cluster key); rm -r $DIR for a fresh cluster"
    mkdir -p "$DIR/media"
    if [ -n "${SHC_CLUSTER_KEY:-}" ]; then printf '%s\n' "$SHC_CLUSTER_KEY" >"$DIR/cluster.key"
    elif [ ! -s "$DIR/cluster.key" ]; then "$BIN" cluster new >"$DIR/cluster.key"; fi
    ip netns add "$LAN"
    ip -n "$LAN" link set lo up
    # No snooping: every port of the LAN gets every multicast packet, as on a home switch.
    ip -n "$LAN" link add br0 type bridge mcast_snooping 0
    ip -n "$LAN" link set br0 up
    add_ns 0
    for i in $(seq "$n"); do add_ns "$i"; done
    # One after another: the first one marks the shared media folder, the others adopt it.
    for i in $(seq "$n"); do start_node "$i"; done
    echo "cluster up: $n nodes at 10.77.0.1..$n (https port 8443), state in $DIR"
    ;;
  down)
    for pidf in "$DIR"/node*/pid; do [ -f "$pidf" ] || continue; i=${pidf%/pid}; stop_node "${i##*/node}"; done
    for n in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true); do ip netns del "$n"; done
    ;;
  add) add_ns "${2:?usage: add I}" ;;
  start) i=${2:?usage: start I [VAR=VALUE...] [-- SERVE-ARGS...]}; shift 2; start_node "$i" "$@" ;;
  stop) stop_node "${2:?usage: stop I}" ;;
  kill) kill_node "${2:?usage: kill I}" ;;
  exec) i=${2:?usage: exec I CMD...}; shift 2; exec ip netns exec "$(ns "$i")" "$@" ;;
  *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
