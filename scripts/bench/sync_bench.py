#!/usr/bin/env python3
"""Replication benchmark (issue 13), run by `scripts/bench.sh sync`: three real nodes in
network namespaces (scripts/netns-cluster.sh), everything asked over HTTPS from the observer
namespace, no packet outside the namespaces.

  sync_bench.py BIN WORKDIR            the whole benchmark; prints a markdown summary
  sync_bench.py revs DIR N             writes DIR/revisions.jsonl with N public notes (the
                                       `streamhub notes import` format), for seeding by hand
  sync_bench.py observe JSON           (internal) one HTTP phase, run inside namespace 0

Measured, in order:
1. initial sync: node 1 is seeded with BENCH_SYNC_NOTES notes (`streamhub notes import`,
   before it starts); nodes 2 and 3 start empty; the time from starting them until both
   serve the last seeded note (the feed is pulled in seq order, so the last note means all
   of them), then every note is counted on both through the listing API;
2. a settling period (BENCH_SYNC_SETTLE_SECS, 40: more than one 30 s sync round), in which
   node 1 reads back the feeds of nodes 2 and 3; its bytes are reported apart;
3. idle traffic over BENCH_SYNC_IDLE_SECS (120) seconds, then RSS (VmRSS) of each node
   (2 peers each, everything synced);
4. edit-to-visible-everywhere: BENCH_SYNC_EDITS edits of one note on node 1 (PUT with
   If-Match), one at a time, 100 ms apart; for each, the time from sending the PUT until
   nodes 2 and 3 both list the new revision as current (polled every 5 ms on keep-alive
   connections, anonymously: public notes); bytes per edit = the edits' bytes less the
   idle rate over their duration, divided by the number of edits.
Bytes are nft counters in the LAN namespace's bridge (forward hook) on unicast traffic
between the nodes' addresses, so the observer's own requests are not counted; mDNS
(multicast) is counted apart.

Environment: BENCH_SYNC_NOTES (10000), BENCH_SYNC_EDITS (100), BENCH_SYNC_IDLE_SECS (120),
BENCH_SYNC_SETTLE_SECS (40), BENCH_SYNC_PREFIX (namespace prefix, default shb). Needs root,
iproute2, nft and curl.
"""

import hashlib
import http.client
import json
import os
import shutil
import ssl
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "netns-cluster.sh"
PASSWORD = "admin-pass-1"
NODES = (1, 2, 3)
ADDR = {i: f"10.77.0.{i}" for i in NODES}


# ------------------------------------------------------------------ seed notes ---
def _field(h, b):
    h.update(struct.pack(">Q", len(b)))
    h.update(b)


def rev_id(r):
    """`notes::Revision::compute_rev`: SHA-256 over length-prefixed fields."""
    h = hashlib.sha256(b"streamhub-note-rev-v1\0")
    wall, rest = r["hlc"].split(".", 1)
    logical, node = rest.split("@", 1)
    _field(h, r["note_id"].encode())
    _field(h, struct.pack(">Q", r["gen"]))
    parents = sorted(r["parents"])
    _field(h, struct.pack(">Q", len(parents)))
    for p in parents:
        _field(h, p.encode())
    _field(h, struct.pack(">Q", int(wall)))
    _field(h, struct.pack(">I", int(logical)))
    _field(h, node.encode())
    _field(h, r["title"].encode())
    _field(h, r["body"].encode())
    tags = sorted(r["tags"])
    _field(h, struct.pack(">Q", len(tags)))
    for t in tags:
        _field(h, t.encode())
    _field(h, r["visibility"].encode())
    _field(h, bytes([1 if r["deleted"] else 0]))
    return h.hexdigest()


def seed_revision(i, wall_ms):
    """Note number `i`: one public root revision of a few hundred bytes."""
    r = {
        "note_id": hashlib.sha256(f"bench-note-{i}".encode()).hexdigest()[:32],
        "parents": [],
        "gen": 1,
        "hlc": f"{wall_ms + i}.0@bench-seed",
        "title": f"Bench note {i}",
        "body": f"Note {i} of the replication benchmark.\n\n" + "Some text to sync. " * 12,
        "tags": sorted({"bench", f"group-{i % 10}"}),
        "visibility": "public",
        "deleted": False,
        "author": "admin",
    }
    r["rev"] = rev_id(r)
    return r


def write_revs(d, n):
    """`DIR/revisions.jsonl` for `streamhub notes import`; returns the last note's id."""
    d.mkdir(parents=True, exist_ok=True)
    wall = int(time.time() * 1000) - 3_600_000
    last = None
    with open(d / "revisions.jsonl", "w") as f:
        for i in range(n):
            r = seed_revision(i, wall)
            f.write(json.dumps({"owner": "admin", "revision": r}) + "\n")
            last = r["note_id"]
    return last


# -------------------------------------------------- the observer (namespace 0) ---
class Node:
    """Keep-alive HTTPS to one node, with an API token (one password check per node)."""

    def __init__(self, i, token=None):
        self.addr = ADDR[i]
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.conn = None
        self.token = token

    def call(self, method, path, body=None, headers=None, basic=False):
        h = {"content-type": "application/json", **(headers or {})}
        if basic:
            import base64
            h["authorization"] = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        elif self.token:
            h["authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.addr, 8443, context=self.ctx, timeout=10)
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw.strip() else None)
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def current_rev(self, note_id):
        """The current revision of a note as the node serves it (None when it has none).
        The revisions list, not `GET /api/notes/{id}`, which records a view (a write)."""
        status, body = self.call("GET", f"/api/notes/{note_id}/revisions")
        if status != 200:
            return None
        return next((r["rev"] for r in body["revisions"] if r.get("current")), None)


def observe(op):
    nodes = {i: Node(i, op.get("tokens", {}).get(str(i))) for i in NODES}
    kind = op["op"]
    if kind == "tokens":
        out = {}
        for i in op["nodes"]:
            status, body = nodes[i].call("POST", "/api/tokens", {"label": "sync-bench"}, basic=True)
            assert status == 201, (i, status, body)
            out[str(i)] = body["token"]
        return out
    if kind == "wait-note":
        # Until every node in op["nodes"] serves op["note"]; the wall time each first did.
        seen, deadline = {}, time.time() + op["timeout"]
        while len(seen) < len(op["nodes"]) and time.time() < deadline:
            for i in op["nodes"]:
                if str(i) not in seen and nodes[i].current_rev(op["note"]):
                    seen[str(i)] = time.time()
            time.sleep(0.02)
        return {"seen": seen}
    if kind == "count":
        out = {}
        for i in op["nodes"]:
            n, page = 0, 1
            while True:
                status, body = nodes[i].call("GET", f"/api/notes?per_page=100&page={page}")
                assert status == 200, (status, body)
                n += len(body["items"])
                if not body["has_more"]:
                    break
                page += 1
            out[str(i)] = n
        return out
    src, others = nodes[1], [nodes[i] for i in (2, 3)]
    if kind == "create":
        status, note = src.call("POST", "/api/notes", {"title": "latency", "body": "edit 0",
                                                       "visibility": "public"})
        assert status == 201, note
        deadline = time.time() + 30
        while not all(o.current_rev(note["id"]) == note["rev"] for o in others):
            assert time.time() < deadline, "the latency note did not reach nodes 2 and 3"
            time.sleep(0.05)
        return {"id": note["id"], "rev": note["rev"]}
    if kind == "edits":
        note = {"id": op["note"]}
        started = time.time()
        lat, put_ms, rev = [], [], op["rev"]
        for k in range(1, op["edits"] + 1):
            t0 = time.monotonic()
            status, body = src.call("PUT", f"/api/notes/{note['id']}",
                                    {"body": f"edit {k}\n" + "a line of text\n" * 4},
                                    headers={"if-match": f'"{rev}"'})
            put_ms.append((time.monotonic() - t0) * 1000)
            assert status == 200, (status, body)
            rev = body["rev"]
            pending = list(others)
            while pending:
                pending = [o for o in pending if o.current_rev(note["id"]) != rev]
                if pending:
                    if time.monotonic() - t0 > 30:
                        raise AssertionError(f"edit {k} not visible everywhere within 30 s")
                    time.sleep(0.005)
            lat.append((time.monotonic() - t0) * 1000)
            time.sleep(op["gap"])
        return {"lat_ms": lat, "put_ms": put_ms, "started": started, "ended": time.time()}
    raise AssertionError(f"unknown op {kind}")


# ------------------------------------------------------------- orchestration ---
class Bench:
    def __init__(self, binary, work):
        self.bin = Path(binary).resolve()
        self.work = Path(work).resolve()
        self.prefix = os.environ.get("BENCH_SYNC_PREFIX", "shb")
        self.dir = self.work / "cluster"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHUB_")}
        self.env.update(SHC_PREFIX=self.prefix, SHC_DIR=str(self.dir),
                        STREAMHUB_BIN=str(self.bin), SHC_ADMIN_PASSWORD=PASSWORD)
        self.lan = f"{self.prefix}-lan"
        self.tokens = {}

    def log(self, msg):
        print(f"[sync-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def sh(self, *args, timeout=120):
        r = subprocess.run([str(SCRIPT), *map(str, args)], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise SystemExit(f"netns-cluster {args}: {r.stdout}{r.stderr}")
        return r.stdout

    def observe(self, op, timeout=600):
        op = {**op, "tokens": self.tokens}
        r = subprocess.run([str(SCRIPT), "exec", "0", sys.executable, __file__, "observe",
                            json.dumps(op)], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise SystemExit(f"observer {op['op']} failed:\n{r.stderr}")
        return json.loads(r.stdout)

    def cli(self, *args, stdin=None):
        env = {k: v for k, v in self.env.items() if not k.startswith("STREAMHUB_")}
        r = subprocess.run([str(self.bin), *map(str, args)], env=env, input=stdin,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"streamhub {args[:2]}: {r.stdout}{r.stderr}")
        return r.stdout

    def data(self, i):
        return self.dir / f"node{i}" / "data"

    def pid(self, i):
        return int((self.dir / f"node{i}" / "pid").read_text())

    # nft counters on the bridge: unicast between nodes, per source node; mDNS apart.
    def counters_setup(self):
        nodes = "{ " + ", ".join(ADDR.values()) + " }"
        rules = "".join(
            f"  ip saddr {ADDR[i]} ip daddr {nodes} counter comment \"from{i}\"\n" for i in NODES)
        script = (f"table bridge syncbench {{\n chain counted {{\n  type filter hook forward priority 0;"
                  f" policy accept;\n{rules}"
                  f"  ip saddr {nodes} ip daddr {nodes} tcp flags & (syn | ack) == syn"
                  f" counter comment \"syn\"\n"
                  f"  ip saddr {nodes} udp dport 5353 counter comment \"mdns\"\n }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", self.lan, "nft", "-f", "-"], input=script,
                       check=True, capture_output=True, text=True)

    def counters(self):
        r = subprocess.run(["ip", "netns", "exec", self.lan, "nft", "-j", "list", "table",
                            "bridge", "syncbench"], check=True, capture_output=True, text=True)
        out = {}
        for item in json.loads(r.stdout)["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            c = next((e["counter"] for e in rule["expr"] if "counter" in e), None)
            if c is not None:
                out[rule.get("comment", "?")] = c["packets" if rule.get("comment") == "syn" else "bytes"]
        out["sync"] = sum(v for k, v in out.items() if k.startswith("from"))
        return out

    def rss_kib(self, i):
        for line in Path(f"/proc/{self.pid(i)}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def run(self):
        n_notes = int(os.environ.get("BENCH_SYNC_NOTES", "10000"))
        n_edits = int(os.environ.get("BENCH_SYNC_EDITS", "100"))
        idle = int(os.environ.get("BENCH_SYNC_IDLE_SECS", "120"))
        for tool in ("ip", "nft", "curl"):
            if not shutil.which(tool):
                raise SystemExit(f"sync bench: {tool} is needed")
        if os.geteuid() != 0:
            raise SystemExit("sync bench: network namespaces need root")
        subprocess.run([str(SCRIPT), "down"], env=self.env, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        res = {"notes": n_notes, "edits": n_edits, "idle": idle}
        try:
            self.log(f"seeding node 1 with {n_notes} notes (notes import)")
            seed = self.work / "seed"
            last = write_revs(seed, n_notes)
            for i in NODES:
                self.cli("user", "add", "admin", "--admin", "--password-stdin", "--data-dir",
                         self.data(i), "--init", stdin=PASSWORD + "\n")
            t = time.monotonic()
            self.cli("notes", "import", seed, "--data-dir", self.data(1))
            res["import_s"] = time.monotonic() - t
            self.sh("up", 1)
            self.sh("add", 2)
            self.sh("add", 3)
            self.counters_setup()
            # Writes go to node 1 with a token made now; reads need no login (public notes,
            # `auth.anonymous_read` is on by default), so nothing checks a password while
            # the sync is timed.
            self.tokens = self.observe({"op": "tokens", "nodes": [1]})
            self.log("starting nodes 2 and 3 (empty)")
            t0 = time.time()
            self.sh("start", 2)
            self.sh("start", 3)
            res["started_s"] = time.time() - t0
            seen = self.observe({"op": "wait-note", "note": last, "nodes": [2, 3],
                                 "timeout": 300})["seen"]
            if len(seen) < 2:
                raise SystemExit(f"initial sync: not done within 300 s (done: {seen})")
            res["initial_s"] = max(seen.values()) - t0
            res["initial_each"] = {k: v - t0 for k, v in seen.items()}
            res["initial_bytes"] = self.counters()["sync"]
            res["count"] = self.observe({"op": "count", "nodes": [1, 2, 3]})
            self.log(f"initial sync: {res['initial_s']:.2f} s, notes per node {res['count']}")

            # Node 1 then pulls back, from nodes 2 and 3, the feed of what they just stored
            # (the diff finds nothing missing): one round, nudged or periodic (30 s).
            settle = int(os.environ.get("BENCH_SYNC_SETTLE_SECS", "40"))
            self.log(f"settling for {settle} s")
            before = self.counters()
            time.sleep(settle)
            res["settle_s"] = settle
            res["settle_bytes"] = self.counters()["sync"] - before["sync"]

            self.log(f"idle for {idle} s")
            before = self.counters()
            time.sleep(idle)
            after = self.counters()
            res["idle_bytes"] = after["sync"] - before["sync"]
            res["idle_from"] = {i: after[f"from{i}"] - before[f"from{i}"] for i in NODES}
            res["idle_mdns"] = after.get("mdns", 0) - before.get("mdns", 0)
            res["idle_conns"] = after["syn"] - before["syn"]
            res["rss"] = {i: self.rss_kib(i) for i in NODES}

            self.log(f"{n_edits} edits on node 1")
            note = self.observe({"op": "create"})
            time.sleep(1)
            before = self.counters()
            ed = self.observe({"op": "edits", "edits": n_edits, "gap": 0.1, "note": note["id"],
                               "rev": note["rev"]})
            after = self.counters()
            res["lat"] = ed["lat_ms"]
            res["put"] = ed["put_ms"]
            res["edit_secs"] = ed["ended"] - ed["started"]
            res["edit_bytes"] = after["sync"] - before["sync"]
            res["edit_mdns"] = after.get("mdns", 0) - before.get("mdns", 0)
            res["edit_conns"] = after["syn"] - before["syn"]
            res["rss_after_edits"] = {i: self.rss_kib(i) for i in NODES}
        finally:
            subprocess.run([str(SCRIPT), "down"], env=self.env, capture_output=True)
        return res


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def verdict(value, limit):
    return "met" if value <= limit else "NOT met"


def report(res, binary):
    lat, idle_min = res["lat"], res["idle"] / 60
    p50, p95 = pct(lat, 50), pct(lat, 95)
    # Idle traffic of the edit window (pro rata) taken out of what the edits cost.
    idle_rate = res["idle_bytes"] / res["idle"]
    per_edit = (res["edit_bytes"] - idle_rate * res["edit_secs"]) / res["edits"]
    # 3 nodes = 3 peer pairs; per pair both directions.
    per_pair_min = res["idle_bytes"] / 3 / idle_min
    rss = res["rss"]
    lines = [
        f"## Replication — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| metric | value | target |",
        "| --- | ---: | --- |",
        f"| edit-to-visible-everywhere p50 ({res['edits']} edits) | {p50:.0f} ms | |",
        f"| edit-to-visible-everywhere p95 | {p95:.0f} ms | ≤ 1000 ms (aim ≤ 250): "
        f"{verdict(p95, 1000)}{'' if p95 <= 250 else ', aim missed'} |",
        f"| initial sync of {res['notes']} notes to 2 new nodes | {res['initial_s']:.2f} s | "
        f"≤ 10 s: {verdict(res['initial_s'], 10)} |",
        f"| bytes on the wire per edit (all 3 nodes) | {per_edit:.0f} B | |",
        f"| idle traffic per peer pair per minute | {per_pair_min:.0f} B | ≤ 2048 B: "
        f"{verdict(per_pair_min, 2048)} |",
        f"| RSS per node with 2 peers, idle (nodes 1/2/3) | "
        f"{rss[1] / 1024:.1f} / {rss[2] / 1024:.1f} / {rss[3] / 1024:.1f} MiB | |",
        f"| RSS per node after the edits (nodes 1/2/3) | "
        + " / ".join(f"{res['rss_after_edits'][i] / 1024:.1f}" for i in NODES) + " MiB | |",
        "",
        "Details:",
        "",
        f"- latency (ms): min {min(lat):.0f}, p50 {p50:.0f}, p90 {pct(lat, 90):.0f}, "
        f"p95 {p95:.0f}, p99 {pct(lat, 99):.0f}, max {max(lat):.0f}, mean "
        f"{statistics.mean(lat):.0f}; from sending the PUT on node 1 until nodes 2 and 3 both list "
        f"the new revision as current (5 ms polls); the PUT itself: p50 {pct(res['put'], 50):.1f} ms",
        f"- initial sync: node 2 done after {res['initial_each']['2']:.2f} s, node 3 after "
        f"{res['initial_each']['3']:.2f} s (from starting them; starting both took "
        f"{res['started_s']:.2f} s, discovery included); notes listed per node "
        f"{res['count']}; sync bytes on the wire {res['initial_bytes'] / 1e6:.1f} MB; "
        f"`notes import` of the seed {res['import_s']:.1f} s",
        f"- per edit: {res['edit_bytes']} B of node-to-node traffic over {res['edits']} edits in "
        f"{res['edit_secs']:.1f} s, less the idle rate ({idle_rate:.0f} B/s) over that time; "
        f"{res['edit_conns']} TCP connections opened between nodes ({res['edit_conns'] / res['edits']:.1f} per edit); "
        f"mDNS during the edits {res['edit_mdns']} B",
        f"- after the initial sync, {res['settle_bytes'] / 1e6:.2f} MB more in the next "
        f"{res['settle_s']} s (node 1 reading back the feeds of nodes 2 and 3)",
        f"- idle (after that): {res['idle_bytes']} B node-to-node in {res['idle']} s (sent by node 1/2/3: "
        f"{res['idle_from'][1]} / {res['idle_from'][2]} / {res['idle_from'][3]} B; "
        f"{res['idle_conns']} TCP connections opened); "
        f"mDNS (multicast, each copy the bridge forwards) {res['idle_mdns']} B",
        "- bytes: nft counters in the bridge's forward hook (LAN namespace), unicast between the "
        "node addresses only (IP packets: TCP/IP headers, TLS records), so the observer's requests "
        "are not counted",
        f"- binary: {binary}; machine: {os.cpu_count()} CPUs, load average at the end "
        f"{os.getloadavg()[0]:.1f} (other work on the machine counts); 3 nodes in network namespaces "
        "(scripts/netns-cluster.sh), default sync settings (interval 30 s)",
    ]
    return "\n".join(lines)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "observe":
        print(json.dumps(observe(json.loads(sys.argv[2]))))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "revs":
        print(write_revs(Path(sys.argv[2]), int(sys.argv[3])))
        return
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    res = Bench(sys.argv[1], sys.argv[2]).run()
    print(report(res, sys.argv[1]))


if __name__ == "__main__":
    main()
