"""Replication of public notes between nodes (issue 13): real nodes in network namespaces
(scripts/netns-cluster.sh), mutually authenticated TLS with the sync ALPN, the cluster key's
proof, pulls nudged by every local change. Everything is asked over HTTPS from the observer
namespace 0; nothing leaves the namespaces.

Nodes 1-3 share a cluster key. The outsider tests play a node without the key with Python's
ssl module (a client certificate of its own, the sync ALPN) and a real node 4 with another key.
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from cluster_util import Cluster, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

ALPN = "streamhub-sync/1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    for tool in ("ip", "curl", "openssl"):
        assert shutil.which(tool), f"{tool} is needed"
    c = Cluster(f"shr{os.getpid() % 100000}", tmp_path_factory.mktemp("repl"))
    try:
        c.sh("up", 3, timeout=120)
        # Every node has found the two others and synced once.
        def all_synced():
            for i in (1, 2, 3):
                peers = c.peers(i)["peers"]
                if len([p for p in peers if p["last_sync"]]) < 2:
                    return False
            return True
        wait_for(all_synced, 30, "three nodes synced with each other")
        yield c
    finally:
        c.sh("down", check=False)


def create(c, node, title, body, visibility="public", tags=()):
    status, note = c.call(node, "/api/notes", method="POST",
                          body={"title": title, "body": body, "visibility": visibility,
                                "tags": list(tags)})
    assert status == 201, note
    return note


def edit(c, node, note_id, rev, **fields):
    status, note = c.call(node, f"/api/notes/{note_id}", method="PUT", body=fields,
                          headers=[f'If-Match: "{rev}"'])
    assert status == 200, note
    return note


def get(c, node, note_id):
    return c.call(node, f"/api/notes/{note_id}")


def db_bytes(c, node):
    """Every byte of a node's database (main file and WAL)."""
    data = b""
    for name in ("streamhub.db", "streamhub.db-wal"):
        p = c.dir / f"node{node}" / "data" / name
        if p.exists():
            data += p.read_bytes()
    return data


def test_a_note_created_on_one_node_is_readable_on_the_others_within_2_s(cluster):
    note = create(cluster, 1, "Shopping", "milk, eggs", tags=["home"])
    made = time.monotonic()

    def everywhere():
        return all(get(cluster, n, note["id"])[0] == 200 for n in (2, 3))
    wait_for(everywhere, 2, "the note on nodes 2 and 3")
    took = time.monotonic() - made
    for n in (2, 3):
        status, there = get(cluster, n, note["id"])
        assert status == 200
        assert (there["rev"], there["title"], there["body"], there["tags"]) == \
            (note["rev"], "Shopping", "milk, eggs", ["home"])
        kinds = [e["kind"] for e in cluster.call(n, f"/api/notes/{note['id']}/events")[1]["events"]]
        assert "synced_in" in kinds, kinds
    kinds = [e["kind"] for e in cluster.call(1, f"/api/notes/{note['id']}/events")[1]["events"]]
    assert "synced_out" in kinds, kinds
    print(f"created on node 1, readable on nodes 2 and 3 after {took:.2f} s")


def test_private_text_never_reaches_a_peer_and_unpublished_notes_are_hidden(cluster):
    secret = "zq-private-marker-7731"
    private = create(cluster, 1, f"diary {secret}", f"dear diary {secret}", visibility="private")
    # A public note that goes private, with private edits after.
    pub = create(cluster, 1, "Plans", "meet at noon")
    wait_for(lambda: get(cluster, 2, pub["id"])[0] == 200, 5, "the public note on node 2")
    hidden = edit(cluster, 1, pub["id"], pub["rev"], visibility="private")
    hidden = edit(cluster, 1, pub["id"], hidden["rev"], body=f"secret plans {secret}")
    # Something public after it, to know the peers have pulled past it.
    last = create(cluster, 1, "Later", "after the private edits")
    for n in (2, 3):
        wait_for(lambda n=n: get(cluster, n, last["id"])[0] == 200, 5, f"node {n} caught up")
        # Withdrawn: gone from reads, listings and search for every viewer.
        assert get(cluster, n, pub["id"])[0] == 404
        assert get(cluster, n, private["id"])[0] == 404
        listing = cluster.call(n, "/api/notes?per_page=100")[1]
        ids = {x["id"] for x in listing["items"]}
        assert pub["id"] not in ids and private["id"] not in ids
        found = cluster.call(n, "/api/notes?q=noon")[1]
        assert pub["id"] not in {x["id"] for x in found["items"]}
        assert secret.encode() not in db_bytes(cluster, n), f"private text on node {n}"
    # On its own node the owner still has it.
    assert get(cluster, 1, private["id"])[0] == 200


def partition(c, node, up):
    """Unplugs node `node` from the LAN (its end keeps its address, so it still serves
    requests made inside its own namespace)."""
    subprocess.run(["ip", "-n", f"{c.prefix}-lan", "link", "set", f"v{node}",
                    "up" if up else "down"], check=True)


def test_concurrent_edits_across_a_partition_converge_with_the_conflict_kept(cluster):
    note = create(cluster, 1, "Meeting", "line one\nline two\nline three\n")
    wait_for(lambda: get(cluster, 3, note["id"])[0] == 200, 5, "the note on node 3")
    partition(cluster, 3, up=False)
    try:
        a = edit(cluster, 1, note["id"], note["rev"], body="line one\nA says two\nline three\n")
        # Node 3 is asked from inside its own namespace.
        c_status, c_note = cluster.call(3, f"/api/notes/{note['id']}", method="PUT",
                                        body={"body": "line one\nC says two\nline three\n"},
                                        headers=[f'If-Match: "{note["rev"]}"'], observer=3)
        assert c_status == 200, c_note
    finally:
        partition(cluster, 3, up=True)

    def converged():
        views = [get(cluster, n, note["id"])[1] for n in (1, 2, 3)]
        revs = {(v["rev"], tuple(sorted(v["conflicts"]))) for v in views}
        return views if len(revs) == 1 and views[0]["conflicts"] else None
    views = wait_for(converged, 20, "the same winner and conflict on all three")
    winner = views[0]
    assert {winner["rev"], *winner["conflicts"]} == {a["rev"], c_note["rev"]}
    # Nothing lost: both edits are there on every node.
    for n in (1, 2, 3):
        for rev, text in ((a["rev"], "A says two"), (c_note["rev"], "C says two")):
            status, r = cluster.call(n, f"/api/notes/{note['id']}/revisions/{rev}")
            assert status == 200 and text in r["body"]


def test_edits_made_during_an_outage_cross_soon_after_the_link_is_back(cluster):
    """A box unplugged for a while (Wi-Fi gone, a cable out): what both sides wrote meanwhile
    crosses within seconds of the link's return, not a whole sync interval (30 s) later —
    the nudges that could not be delivered are retried, and a round that goes through after
    failures nudges the peer."""
    partition(cluster, 3, up=False)
    try:
        on1 = create(cluster, 1, "Written on 1 while 3 was away", "from one")
        status, on3 = cluster.call(3, "/api/notes", method="POST", observer=3,
                                   body={"title": "Written on 3 while away", "body": "from three",
                                         "visibility": "public", "tags": []})
        assert status == 201, on3
        # Long enough for every retry to back off to its longest wait.
        time.sleep(20)
    finally:
        partition(cluster, 3, up=True)
    back = time.monotonic()

    def crossed():
        return get(cluster, 3, on1["id"])[0] == 200 and get(cluster, 1, on3["id"])[0] == 200
    wait_for(crossed, 15, "both notes on both sides after the link is back")
    print(f"crossed {time.monotonic() - back:.1f} s after the link came back")


def test_non_overlapping_edits_converge_to_one_merge_revision(cluster):
    note = create(cluster, 1, "List", "alpha\nbravo\ncharlie\ndelta\necho\n")
    wait_for(lambda: get(cluster, 3, note["id"])[0] == 200, 5, "the note on node 3")
    partition(cluster, 3, up=False)
    try:
        edit(cluster, 1, note["id"], note["rev"], body="ALPHA\nbravo\ncharlie\ndelta\necho\n")
        status, c_note = cluster.call(3, f"/api/notes/{note['id']}", method="PUT",
                                      body={"body": "alpha\nbravo\ncharlie\ndelta\nECHO\n"},
                                      headers=[f'If-Match: "{note["rev"]}"'], observer=3)
        assert status == 200, c_note
    finally:
        partition(cluster, 3, up=True)

    def merged():
        views = [get(cluster, n, note["id"])[1] for n in (1, 2, 3)]
        revs = {v["rev"] for v in views}
        ok = len(revs) == 1 and all(not v["conflicts"] for v in views)
        return views if ok and views[0]["body"] == "ALPHA\nbravo\ncharlie\ndelta\nECHO\n" else None
    wait_for(merged, 20, "one merge revision on all three, no conflict left")


def test_an_edit_beats_a_concurrent_delete_everywhere(cluster):
    note = create(cluster, 1, "Keep me", "v1")
    wait_for(lambda: get(cluster, 3, note["id"])[0] == 200, 5, "the note on node 3")
    partition(cluster, 3, up=False)
    try:
        status, gone = cluster.call(1, f"/api/notes/{note['id']}", method="DELETE",
                                    headers=[f'If-Match: "{note["rev"]}"'])
        assert status == 200 and gone["deleted"]
        status, kept = cluster.call(3, f"/api/notes/{note['id']}", method="PUT", body={"body": "v2"},
                                    headers=[f'If-Match: "{note["rev"]}"'], observer=3)
        assert status == 200
    finally:
        partition(cluster, 3, up=True)

    def same():
        views = [get(cluster, n, note["id"]) for n in (1, 2, 3)]
        ok = all(s == 200 and v["rev"] == kept["rev"] and not v["deleted"] for s, v in views)
        return views if ok else None
    wait_for(same, 20, "the edit winning on all three")


# --- outsiders ---------------------------------------------------------------------------

OUTSIDER = r'''
import json, socket, ssl, sys
host, cert, key, reqs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["streamhub-sync/1"])
if cert:
    ctx.load_cert_chain(cert, key)
out = []
try:
    s = ctx.wrap_socket(socket.create_connection((host, 8443), timeout=10))
except (ssl.SSLError, OSError) as e:
    print(json.dumps({"handshake_error": str(e)}))
    sys.exit(0)
out.append({"alpn": s.selected_alpn_protocol()})
f = s.makefile("rb")
for method, path, body in reqs:
    data = json.dumps(body).encode() if body is not None else b""
    try:
        s.sendall(f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  f"content-length: {len(data)}\r\n\r\n".encode() + data)
        head = f.readline()
    except (ssl.SSLError, OSError) as e:
        out.append({"error": str(e)})
        break
    if not head:
        out.append({"error": "connection closed without an answer"})
        break
    status = int(head.split()[1])
    length = 0
    while True:
        line = f.readline().strip()
        if not line:
            break
        k, _, v = line.decode().partition(":")
        if k.lower() == "content-length":
            length = int(v)
    out.append({"status": status, "body": f.read(length).decode()})
print(json.dumps(out))
'''


def outsider(cluster, tmp_path, requests, with_cert=True):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    if with_cert and not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "2", "-subj", "/CN=outsider"], check=True,
                       capture_output=True)
    script = tmp_path / "outsider.py"
    script.write_text(OUTSIDER)
    r = cluster.in_ns(0, "python3", str(script), "10.77.0.1", str(cert) if with_cert else "",
                      str(key) if with_cert else "", json.dumps(requests))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_node_without_the_key_gets_nothing_and_writes_nothing(cluster, tmp_path):
    note = create(cluster, 1, "Members only", "for the cluster")
    # Counted once the members have it (their pulls log `synced_out` on node 1).
    for n in (2, 3):
        wait_for(lambda n=n: get(cluster, n, note["id"])[0] == 200, 10, f"the note on node {n}")
    time.sleep(1)
    before = db_bytes(cluster, 1).count(b"synced_out")
    fake_rev = {"kind": "full", "note_id": "f" * 32, "rev": "0" * 64}
    got = outsider(cluster, tmp_path, [
        ["GET", "/sync/v1/changes?since=0", None],
        ["POST", "/sync/v1/revs", {"revs": ["0" * 64]}],
        ["POST", "/sync/v1/nudge", None],
        ["POST", "/sync/v1/auth", {"proof": "A" * 43, "name": "evil"}],
        ["POST", "/sync/v1/hello", {"api": 1, "nonce": "A" * 43}],
        ["POST", "/sync/v1/auth", {"proof": "B" * 43, "name": "evil"}],
        ["GET", "/sync/v1/changes?since=0", None],
        ["POST", "/sync/v1/revs", {"revs": [fake_rev["rev"]]}],
    ])
    assert got[0] == {"alpn": ALPN}
    statuses = [g["status"] for g in got[1:]]
    assert statuses == [403, 403, 403, 403, 200, 403, 403, 403], got
    refusals = {g["body"] for g in got[1:] if g["status"] == 403}
    assert len(refusals) == 1, f"every refusal looks the same: {refusals}"
    hello = json.loads(got[5]["body"])
    assert set(hello) == {"api", "id", "name", "nonce", "proof"}
    # No client certificate at all: TLS 1.3 lets the client finish its side of the
    # handshake, then the server's alert ends the connection before any answer.
    got = outsider(cluster, tmp_path, [["POST", "/sync/v1/hello", {"api": 1, "nonce": "A" * 43}]],
                   with_cert=False)
    assert isinstance(got, dict) and "handshake_error" in got or \
        ("error" in got[-1] and not any("status" in g for g in got)), got
    assert db_bytes(cluster, 1).count(b"synced_out") == before


def test_a_node_of_another_cluster_is_refused_both_ways(cluster, tmp_path):
    other_key = subprocess.run([str(cluster.env["STREAMHUB_BIN"]), "cluster", "new"],
                               capture_output=True, text=True, check=True).stdout.strip()
    cluster.sh("add", 4)
    # Told about node 1 directly (mDNS would skip it: another cluster tag).
    # And node 2 by its plain-HTTP port, a typo people make.
    cluster.sh("start", 4, f"STREAMHUB_SYNC_CLUSTER_KEY={other_key}",
               "STREAMHUB_SYNC_PEERS=10.77.0.1:8443,10.77.0.2:8080", timeout=60)
    try:
        def refused():
            peers = cluster.peers(4)["peers"]
            errs = {p["name"]: p["last_error"] for p in peers if p["found_via"] == "static"}
            return errs if len(errs) == 2 and all(errs.values()) else None
        errs = wait_for(refused, 15, "node 4's errors for nodes 1 and 2")
        # Each error says what to check.
        assert "not a member of this cluster" in errs["10.77.0.1:8443"], errs
        assert "different sync.cluster_key" in errs["10.77.0.1:8443"], errs
        assert "HTTPS port" in errs["10.77.0.2:8080"], errs
        status, listing = cluster.call(4, "/api/notes?per_page=100")
        assert status == 200 and listing["items"] == []
        ids1 = {p["id"] for p in cluster.peers(1)["peers"]}
        assert cluster.node_id(4) not in ids1
        # Not a peer, but heard: node 1 names it, so a mistyped key shows.
        others = wait_for(lambda: [o for o in cluster.peers(1)["other_clusters"]
                                   if o["id"] == cluster.node_id(4)], 15,
                          "node 4 among node 1's other clusters")
        assert others[0]["name"] == "node4", others
    finally:
        cluster.sh("stop", 4)


def test_admin_sync_now_and_peer_status(cluster):
    body = cluster.peers(1)
    ids = [p["id"] for p in body["peers"] if p["found_via"] == "mdns"]
    assert len(ids) == 2
    for p in body["peers"]:
        assert p["last_sync"] and p["changes_behind"] == 0 and p["last_error"] is None, p
    status, started = cluster.call(1, f"/api/peers/{ids[0]}/sync", method="POST")
    assert status == 202 and started["status"] == "started"
    status, err = cluster.call(1, f"/api/peers/{'0' * 64}/sync", method="POST")
    assert status == 404 and err["error"] == "not_found"
