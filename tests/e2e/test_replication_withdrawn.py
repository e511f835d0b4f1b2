"""A withdrawn note on a peer (issue 13, "Trust"; attack7's withdrawn_routes.sh and
analytics_leak.sh as tests): a public note made private on node 1 reaches node 2 as stubs,
and every note route on node 2 treats it as not there — reads, its HTML, revisions (the stub
one too), events, edits, delete, restore, merge, resolve — while the private edits made after
leave no trace in node 2's analytics. Two nodes in network namespaces
(scripts/netns-cluster.sh), asked over HTTPS from the observer namespace 0.
"""

import os

import pytest

from cluster_util import synced_cluster, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

SECRET = "zq-withdrawn-marker-4417"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from synced_cluster("shw", tmp_path_factory.mktemp("withdrawn"))


def write(c, node, method, path, body, rev=None):
    headers = [f'If-Match: "{rev}"'] if rev else []
    return c.call(node, path, method=method, body=body, headers=headers)


def synced_in(c, node):
    status, a = c.call(node, "/api/analytics?days=30&top=50")
    assert status == 200, a
    return (sum(e["count"] for e in a["events_per_day"] if e["kind"] == "synced_in"),
            a["most_edited"], a["top_contributors"])


def caught_up(c, node, marker_title):
    """Until `node` has a public note made after everything else on node 1."""
    status, made = write(c, 1, "POST", "/api/notes",
                         {"title": marker_title, "body": "after", "visibility": "public"})
    assert status == 201, made
    wait_for(lambda: c.call(node, f"/api/notes/{made['id']}")[0] == 200, 10,
             f"node {node} caught up")


def test_every_route_of_a_withdrawn_note_is_404_on_a_peer(cluster):
    status, note = write(cluster, 1, "POST", "/api/notes",
                         {"title": "Plans", "body": "meet at noon", "visibility": "public"})
    assert status == 201, note
    nid = note["id"]
    wait_for(lambda: cluster.call(2, f"/api/notes/{nid}")[0] == 200, 10, "the note on node 2")
    status, hidden = write(cluster, 1, "PUT", f"/api/notes/{nid}", {"visibility": "private"},
                           note["rev"])
    assert status == 200, hidden
    status, hidden = write(cluster, 1, "PUT", f"/api/notes/{nid}",
                           {"body": f"secret plans {SECRET}"}, hidden["rev"])
    assert status == 200, hidden
    caught_up(cluster, 2, "after the withdrawal")
    stub, public = hidden["rev"], note["rev"]
    base = f"/api/notes/{nid}"
    reads = [f"{base}", f"{base}/html", f"{base}/revisions", f"{base}/revisions/{stub}",
             f"{base}/revisions/{public}", f"{base}/events"]
    for path in reads:
        status, body = cluster.call(2, path)
        assert status == 404, (path, status, body)
        assert SECRET not in str(body) and "noon" not in str(body), (path, body)
    writes = [("PUT", base, {"title": "taken over", "visibility": "public"}),
              ("DELETE", base, None),
              ("POST", f"{base}/restore", {"rev": public}),
              ("POST", f"{base}/merge", {"rev": stub}),
              ("POST", f"{base}/resolve", {"merged": {"title": "x", "body": "y", "tags": [],
                                                      "visibility": "public"},
                                           "resolves": [stub]})]
    for method, path, body in writes:
        for rev in (stub, public):
            status, answer = write(cluster, 2, method, path, body, rev)
            assert status == 404, (method, path, rev, status, answer)
    # Nothing was written on node 2, so node 1 got nothing back: its owner's note is as left.
    caught_up(cluster, 1, "after the attempts")
    status, own = cluster.call(1, base)
    assert status == 200 and own["rev"] == stub and own["visibility"] == "private", own
    assert own["body"] == f"secret plans {SECRET}"


def test_private_edits_of_a_withdrawn_note_leave_no_trace_in_a_peers_analytics(cluster):
    status, note = write(cluster, 1, "POST", "/api/notes",
                         {"title": "Counted", "body": "public first", "visibility": "public"})
    assert status == 201, note
    wait_for(lambda: cluster.call(2, f"/api/notes/{note['id']}")[0] == 200, 10,
             "the note on node 2")
    status, cur = write(cluster, 1, "PUT", f"/api/notes/{note['id']}",
                        {"visibility": "private"}, note["rev"])
    assert status == 200, cur
    caught_up(cluster, 2, "after making it private")
    before = synced_in(cluster, 2)
    for i in range(8):
        status, cur = write(cluster, 1, "PUT", f"/api/notes/{note['id']}",
                            {"body": f"private edit {i}"}, cur["rev"])
        assert status == 200, cur
    caught_up(cluster, 2, "after the private edits")
    count, most_edited, contributors = synced_in(cluster, 2)
    # The marker note caught_up made is the one new arrival; the 8 stubs count for nothing.
    assert count == before[0] + 1, (before, count)
    assert note["id"] not in {x["id"] for x in most_edited}, most_edited
    was = {x["name"]: x["revisions"] for x in before[2]}
    was["admin@node1"] = was.get("admin@node1", 0) + 1
    assert {x["name"]: x["revisions"] for x in contributors} == was, (before[2], contributors)
