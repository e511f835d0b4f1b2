#!/usr/bin/env bash
# Runs the browser suite inside a network namespace that has one private address
# (10.231.0.1 on one end of a veth pair kept inside it) and no route out: the pages are reached at
# http://10.231.0.1:<port>, which browsers treat as an insecure context, as they treat
# http://pi:8080 on a LAN (127.0.0.1 would count as secure and hide clipboard and crypto
# fallbacks). Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
ns="streamhub-ui-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip -n "$ns" link add ui0 type veth peer name ui1
ip -n "$ns" addr add 10.231.0.1/24 dev ui0
ip -n "$ns" link set ui0 up
ip -n "$ns" link set ui1 up
ip netns exec "$ns" env STREAMHUB_UI_ADDR=10.231.0.1 "$PY" -m pytest -q -p no:cacheprovider tests/ui "$@"
