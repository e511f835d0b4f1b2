"""LAN discovery (issue 13, first slice): real mDNS packets between real nodes, inside network
namespaces made by scripts/netns-cluster.sh (a bridge in a namespace of its own, 10.77.0.0/24,
nothing routed out: no packet reaches the machine's real interfaces).

Nodes 1-3 share a cluster key; node 4 has another key. Namespace 0 is an observer (python-
zeroconf, avahi-daemon, the fake announcements). Everything is asked over HTTPS with Basic auth
from the observer (Basic is refused over plain HTTP from a non-loopback peer).
"""

import hashlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from cluster_util import ADMIN, Cluster, rss_kib, wait_for
from conftest import BIN, REPO, Server, spawn, udp_ports

SCRIPT = REPO / "scripts" / "netns-cluster.sh"
TOOL = Path(__file__).resolve().parent / "mdns_tool.py"
AVAHI = Path(__file__).resolve().parent / "avahi_observer.sh"
MEMBER = ("mia", "member-pass-1")
MAX_PEERS = 64  # peers::table::MAX_PEERS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def other_ids(body):
    return {p["id"] for p in body["peers"] if p["found_via"] == "mdns"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    for tool in ("ip", "curl"):
        assert shutil.which(tool), f"{tool} is needed"
    c = Cluster(f"shd{os.getpid() % 100000}", tmp_path_factory.mktemp("cluster"))
    try:
        c.sh("up", 3, timeout=120)
        c.started = time.monotonic()
        yield c
    finally:
        c.sh("down", check=False)


def test_three_nodes_discover_each_other_within_5_s(cluster):
    ids = {i: cluster.peers(i)["node"]["id"] for i in (1, 2, 3)}

    def all_found():
        return all(other_ids(cluster.peers(i)) >= set(ids.values()) - {ids[i]} for i in (1, 2, 3))

    wait_for(all_found, 5 - (time.monotonic() - cluster.started), "3 nodes discover each other")
    for i in (1, 2, 3):
        body = cluster.peers(i)
        assert body["node"] == {"id": ids[i], "name": f"node{i}"}
        assert ids[i] not in other_ids(body), "a node never lists itself"
        for p in body["peers"]:
            j = int(p["name"].removeprefix("node"))
            assert p["id"] == ids[j]
            assert p["addresses"] == [f"10.77.0.{j}:8443"]
            assert p["online"] is True and p["found_via"] == "mdns" and p["api"] == 1
            assert p["last_seen"].endswith("Z")
            # Replication may have run already (test_replication.py covers it): no error.
            assert p["last_error"] is None, p
        status, info = cluster.call(i, "/api/info")
        assert status == 200 and info["lan_peers"] is True


def test_a_node_with_another_key_is_not_a_peer(cluster):
    other_key = subprocess.run([str(BIN), "cluster", "new"], capture_output=True, text=True,
                               check=True).stdout.strip()
    cluster.sh("add", 4)
    cluster.sh("start", 4, f"STREAMHUB_SYNC_CLUSTER_KEY={other_key}")
    four = cluster.node_id(4)

    # It is on the LAN (the observer hears it) ...
    def heard():
        r = cluster.in_ns(0, "python3", TOOL, "browse", "2")
        return four in {s["txt"].get("id") for s in json.loads(r.stdout or "{}").values()}

    wait_for(heard, 20, "node 4 announced")
    time.sleep(1)
    # ... and yet neither side lists the other.
    for i in (1, 2, 3):
        assert four not in other_ids(cluster.peers(i))
    assert other_ids(cluster.peers(4)) == set()


def test_python_zeroconf_finds_every_node_with_its_txt_fields(cluster):
    ids = {i: cluster.node_id(i) for i in (1, 2, 3)}
    r = cluster.in_ns(0, "python3", TOOL, "browse", "3")
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    by_id = {s["txt"]["id"]: (name, s) for name, s in found.items()}
    tags = set()
    for i, node_id in ids.items():
        assert node_id in by_id, found
        name, s = by_id[node_id]
        assert name == f"node{i} ({node_id[:8]})._streamhub._tcp.local."
        assert s["server"] == f"streamhub-{node_id[:8]}.local."
        assert s["port"] == 8443 and s["addresses"] == [f"10.77.0.{i}"]
        assert s["txt"]["api"] == "1"
        assert re.fullmatch(r"[0-9a-f]{16}", s["txt"]["cluster"])
        assert s["txt"]["fp"] == cluster.tls_fingerprint(i)
        tags.add(s["txt"]["cluster"])
    assert len(tags) == 1, "one cluster, one tag"
    key = (cluster.dir / "cluster.key").read_text().strip()
    assert key not in r.stdout and key[:16] not in r.stdout, "the key is never published"


def test_a_new_certificate_after_sighup_is_announced(cluster):
    """`fp` follows the user-facing certificate: replaced (here: removed, so the node makes a
    new self-signed one) and reloaded with SIGHUP, the announcement carries the new hash."""
    before = cluster.tls_fingerprint(2)
    for name in ("cert.pem", "key.pem"):
        (cluster.dir / "node2" / "data" / "tls" / name).unlink()
    os.kill(cluster.pid(2), signal.SIGHUP)
    after = wait_for(lambda: (cluster.dir / "node2" / "data" / "tls" / "cert.pem").exists()
                     and cluster.tls_fingerprint(2), 10, "a new certificate")
    assert after != before

    def announced():
        r = cluster.in_ns(0, "python3", TOOL, "browse", "2")
        assert r.returncode == 0, r.stderr
        fps = [s["txt"].get("fp") for s in json.loads(r.stdout).values()
               if s["txt"].get("id") == cluster.node_id(2)]
        return fps == [after]
    wait_for(announced, 20, "the new fingerprint in node 2's announcement")


def test_avahi_resolves_every_node_and_nothing_renames(cluster, tmp_path):
    for tool in ("avahi-daemon", "avahi-browse", "dbus-daemon", "unshare"):
        assert shutil.which(tool), f"{tool} is needed (apt avahi-daemon avahi-utils dbus)"
    ids = {i: cluster.node_id(i) for i in (1, 2, 3)}
    def names(i):
        return {(p["id"], p["name"], tuple(p["addresses"])) for p in cluster.peers(i)["peers"]}

    names_before = {i: names(i) for i in (1, 2, 3)}
    # One avahi-daemon on the LAN (the observer) and one beside node 1, in its namespace.
    runs = {}
    for ns, host in ((0, "observer"), (1, "beside-node1")):
        w = tmp_path / host
        w.mkdir()
        runs[ns] = (w, subprocess.Popen(
            [str(SCRIPT), "exec", str(ns), "unshare", "-m", "sh", str(AVAHI), str(w), host, "15"],
            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for ns, (w, proc) in runs.items():
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out

    def resolved(path):
        seen = {}
        for line in path.read_text().splitlines():
            f = line.split(";")
            if f[0] != "=" or len(f) < 10:
                continue
            name = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), f[3])
            seen[name] = (f[6], f[7], f[8], f[9])
        return seen

    observer = runs[0][0]
    for snap in ("first", "second"):
        seen = resolved(observer / snap)
        for i, node_id in ids.items():
            name = f"node{i} ({node_id[:8]})"
            assert name in seen, (snap, seen)
            host, address, port, txt = seen[name]
            assert (host, address, port) == (f"streamhub-{node_id[:8]}.local", f"10.77.0.{i}", "8443")
            assert f'"id={node_id}"' in txt and '"api=1"' in txt
    # Beside node 1 it sees the others (its own host's packets do not loop back to it).
    seen = resolved(runs[1][0] / "second")
    for i in (2, 3):
        assert f"node{i} ({ids[i][:8]})" in seen, seen
    # Nothing renamed itself: the same names before and after, and no conflict logged.
    for i in (1, 2, 3):
        assert names(i) == names_before[i]
    for w, _ in runs.values():
        log = (w / "avahi.log").read_text()
        assert "conflict" not in log.lower(), log
    assert "conflict" not in (observer / "second").read_text().lower()
    for i in (1, 2, 3):
        err = (cluster.dir / f"node{i}" / "stderr").read_text().lower()
        assert "conflict" not in err and "rename" not in err


def test_a_flood_of_fake_announcements_stays_within_the_cap(cluster):
    ids = {i: cluster.node_id(i) for i in (1, 2, 3)}
    key = cluster.dir / "cluster.key"
    before = {i: rss_kib(cluster.pid(i)) for i in (1, 2, 3)}
    r = cluster.in_ns(0, "python3", TOOL, "flood", "200", key, "10.77.0.254")
    assert r.returncode == 0 and r.stdout.strip() == "200", r.stderr
    # The fakes carry the cluster's (public) tag, so they do reach the table: up to its cap.
    wait_for(lambda: len(other_ids(cluster.peers(1))) >= MAX_PEERS, 10, "the table fills")
    r = cluster.in_ns(0, "python3", TOOL, "flood", "5000", key, "10.77.0.254", timeout=120)
    assert r.returncode == 0, r.stderr
    # The responder's cache is checked every 5 s; on a busy machine the daemon may take a
    # while to take in 5,000 announcements, so wait for the restart rather than one period.
    log = cluster.dir / "node1" / "stderr"
    wait_for(lambda: "restarting the responder" in log.read_text(), 60,
             "the mDNS cache limit was reached and acted on")
    for i in (1, 2, 3):
        body = cluster.peers(i)
        mdns = [p for p in body["peers"] if p["found_via"] == "mdns"]
        assert len(mdns) <= MAX_PEERS, len(mdns)
        # The real peers were there first and stay (newcomers never push them out).
        assert set(ids.values()) - {ids[i]} <= {p["id"] for p in mdns}
        grown = rss_kib(cluster.pid(i)) - before[i]
        assert grown < 16 * 1024, f"node {i} grew by {grown} KiB"


def test_views_of_the_peer_table_by_role(cluster):
    r = subprocess.run([str(BIN), "user", "add", MEMBER[0], "--password-stdin", "--data-dir",
                        cluster.dir / "node1" / "data"], input=MEMBER[1] + "\n",
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    status, body = cluster.call(1, "/api/peers", auth=None)
    assert status == 401 and body["error"] == "unauthorized", body
    status, body = cluster.call(1, "/api/peers", auth=MEMBER)
    assert status == 200, body
    assert body["peers"] and all(set(p) == {"name", "online", "last_sync"} for p in body["peers"])
    assert "node" not in body
    status, body = cluster.call(1, "/api/peers", auth=ADMIN)
    assert status == 200
    assert all({"id", "name", "addresses", "found_via", "online", "last_seen", "api",
                "last_sync", "changes_behind", "last_error"} == set(p) for p in body["peers"])
    some = body["peers"][0]["id"]
    status, body = cluster.call(1, f"/api/peers/{some}/sync", method="POST")
    assert status == 202 and body == {"status": "started", "peer": some}, body
    status, body = cluster.call(1, f"/api/peers/{some}/sync", auth=MEMBER, method="POST")
    assert status == 403, body
    # As people name peers from `streamhub peers`: 8 digits of the id, or the name.
    node2 = cluster.node_id(2)
    status, body = cluster.call(1, f"/api/peers/{node2[:8]}/sync", method="POST")
    assert status == 202 and body["peer"] == node2, body
    status, body = cluster.call(1, "/api/peers/node2/sync", method="POST")
    assert status == 202 and body["peer"] == node2, body
    status, body = cluster.call(1, "/api/peers/kitchen/sync", method="POST")
    assert status == 404 and body["error"] == "not_found", body


def test_the_peers_cli_prints_the_running_table(cluster):
    data = cluster.dir / "node2" / "data"
    r = subprocess.run([str(BIN), "peers", "--data-dir", data], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # The cluster tag (public) lets people compare keys across boxes: one key, one tag.
    assert lines[0].startswith(f"this node: node2 ({cluster.node_id(2)[:8]}), cluster tag "), lines[0]
    tag2 = lines[0].rsplit(" ", 1)[1]
    r1 = subprocess.run([str(BIN), "peers", "--data-dir", cluster.dir / "node1" / "data", "--json"],
                        capture_output=True, text=True)
    assert json.loads(r1.stdout)["node"]["cluster"] == tag2 and len(tag2) >= 8, r1.stdout
    assert any(l.startswith("node1 ") and cluster.node_id(1)[:8] in l and "10.77.0.1:8443" in l
               for l in lines), r.stdout
    assert "LAST SYNC" in lines[1] and "BEHIND" in lines[1], r.stdout
    r = subprocess.run([str(BIN), "peers", "--data-dir", data, "--json"], capture_output=True,
                       text=True)
    snap = json.loads(r.stdout)
    assert snap["node"]["id"] == cluster.node_id(2)
    # Replication's state, as in GET /api/peers: the nodes of one cluster have synced.
    real = {cluster.node_id(1), cluster.node_id(3)}

    def synced():
        r = subprocess.run([str(BIN), "peers", "--data-dir", data, "--json"],
                           capture_output=True, text=True)
        # Only the real nodes: the flood test's fake announcements are listed too.
        peers = [p for p in json.loads(r.stdout)["peers"] if p["id"] in real]
        ok = len(peers) == 2 and all(p["last_sync"] and p["changes_behind"] == 0
                                     and not p["last_error"] for p in peers)
        return peers if ok else None
    wait_for(synced, 40, "the CLI showing both peers synced")
    # No service on a data dir: a clear error, exit 1.
    r = subprocess.run([str(BIN), "peers", "--data-dir", cluster.dir / "nowhere"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "not running" in r.stderr, r.stderr


def test_no_discovery_opens_no_mdns_socket(cluster):
    # Positive control: a node with discovery holds UDP 5353 (after the flood its responder
    # may be between two starts, at most 10 s apart).
    wait_for(lambda: 5353 in udp_ports(cluster.pid(1)), 15, "node 1's mDNS socket")
    cluster.sh("add", 5)
    cluster.sh("start", 5, "--", "--no-discovery")
    pid = cluster.pid(5)
    assert 5353 not in udp_ports(pid)
    assert not any(":14E9 " in l for l in Path(f"/proc/{pid}/net/udp").read_text().splitlines())
    status, info = cluster.call(5, "/api/info")
    assert status == 200 and info["lan_peers"] is False
    # And nobody hears of it.
    assert cluster.node_id(5) not in other_ids(cluster.peers(1))


def test_the_node_id_survives_restarts_and_a_corrupt_identity_stops_the_start(tmp_path):
    data, media = tmp_path / "data", tmp_path / "media"
    args = ["serve", "--listen", "127.0.0.1:0", "--media-root", media, "--data-dir", data,
            "--no-discovery"]

    def node_id():
        def ask():
            r = subprocess.run([str(BIN), "peers", "--json", "--data-dir", data],
                               capture_output=True, text=True)
            return r.returncode == 0 and json.loads(r.stdout)["node"]["id"]
        return wait_for(ask, 10, "the control socket answers")

    ids = []
    for _ in range(2):
        proc, err = spawn(args, tmp_path, name="ident")
        srv = Server(proc, err, media, data, tmp_path)
        try:
            srv.wait_listening(1, 0)
            ids.append(node_id())
        finally:
            assert srv.stop() == 0
    assert ids[0] == ids[1] and re.fullmatch(r"[0-9a-f]{64}", ids[0])
    ident = data / "sync" / "identity.pem"
    assert ident.stat().st_mode & 0o777 == 0o600
    pem = ident.read_text()
    assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[:pem.index("-----BEGIN PRIVATE")]))\
        .hexdigest() == ids[0], "the node id is the certificate's SHA-256"
    broken = pem[:pem.index("-----BEGIN PRIVATE")]  # the key is gone
    ident.write_text(broken)
    proc, err = spawn(args, tmp_path, name="broken")
    assert proc.wait(timeout=30) == 1
    proc.stdout.close()
    text = Path(err).read_text()
    assert "identity.pem" in text and "cannot be used" in text, text
    assert ident.read_text() == broken, "never replaced behind the operator's back"
    # `config check` finds it too, without starting.
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[server]\ndata_dir = {json.dumps(str(data))}\n"
                   f"[storage]\nmedia_root = {json.dumps(str(media))}\n")
    r = subprocess.run([str(BIN), "config", "check", "--config", cfg], capture_output=True,
                       text=True, env={k: v for k, v in os.environ.items()
                                       if not k.startswith("STREAMHUB_")})
    assert r.returncode == 2 and "server.data_dir:" in r.stderr and "identity.pem" in r.stderr, r
