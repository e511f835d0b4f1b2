#!/usr/bin/env bash
# Writes link/hot-symbols.txt: the functions a release build runs while it starts, serves a
# file over HTTP and HTTPS (whole and a range) and idles a few seconds. build.rs has the linker
# put them first and together (lld's --symbol-ordering-file), so an idle service keeps ~2 MiB
# of its 7 MiB of code resident instead of ~6 (the kernel maps code around each touched page:
# 64 KiB of fault-around, or a whole large folio). Run it again after a toolchain or
# dependency update (symbol names carry their crate's hash: stale names are only unordered).
#
# Records under valgrind's callgrind (installed when missing), which lists every function
# that ran, however rarely, where sampling would miss most of start-up.
#
# `--check [BIN]`: how many of the listed names the release binary has (a dependency, feature
# or toolchain change renames most of them); fails under 90 %. bench.sh prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--check" ]; then
  bin=${2:-${CARGO_TARGET_DIR:-target}/release/streamhub}
  listed=$(sort -u link/hot-symbols.txt | wc -l)
  found=$(nm --defined-only "$bin" | awk '{print $3}' | sort -u | comm -12 - <(sort -u link/hot-symbols.txt) | wc -l)
  echo "hot symbols: $found of $listed listed names are in $bin"
  [ $((found * 10)) -ge $((listed * 9)) ] || { echo "link/hot-symbols.txt is stale: run scripts/hot-symbols.sh" >&2; exit 1; }
  exit 0
fi
if ! command -v valgrind >/dev/null; then
  echo "installing valgrind"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null
fi
cargo build --release --quiet
bin=$PWD/target/release/streamhub
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/media"
head -c 1048576 /dev/urandom >"$work/media/a.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat >"$work/c.toml" <<CONF
[server]
tls_cert = "$work/cert.pem"
tls_key = "$work/key.pem"
[log]
level = "warn"
CONF
for v in ${!STREAMHUB_@}; do unset "$v"; done
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg.out" "$bin" serve \
  --config "$work/c.toml" --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
  --media-root "$work/media" --data-dir "$work/data" --no-discovery >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 300); do
  [ "$(grep -c '^listening on' "$work/out" || true)" -ge 2 ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
  sleep 0.5
done
http=$(sed -n 's|^listening on http://.*:||p' "$work/out")
https=$(sed -n 's|^listening on https://.*:||p' "$work/out")
[ -n "$http" ] && [ -n "$https" ] || { echo "no listening lines" >&2; exit 1; }
curl -sf -o /dev/null "http://127.0.0.1:$http/media/a.bin"
curl -sf -o /dev/null -r 1000-70000 "http://127.0.0.1:$http/media/a.bin"
curl -sfk -o /dev/null "https://127.0.0.1:$https/media/a.bin"
curl -sf -o /dev/null "http://127.0.0.1:$http/healthz"
sleep 6 # the idle tasks: the 5 s memory trim, the watchdog, the library worker
kill -TERM "$pid"
wait "$pid" || true
python3 - "$work/cg.out" "$bin" >link/hot-symbols.txt <<'PY'
import re, sys
objs, fns, here, ran = {}, {}, False, set()
for line in open(sys.argv[1], errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
    if m:
        kind, i, name = m.groups()
        if name:
            objs[i] = name
        if kind == "ob":
            here = objs.get(i) == sys.argv[2]
        continue
    m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
    if m:
        kind, i, name = m.groups()
        if name:
            fns[i] = name
        if kind == "fn" and here and fns.get(i):
            ran.add(re.sub(r"'\d+$", "", fns[i]))  # callgrind's recursion depth suffix
print("\n".join(sorted(n for n in ran if not n.startswith(("0x", "(")))))
PY
echo "link/hot-symbols.txt: $(wc -l <link/hot-symbols.txt) functions"
