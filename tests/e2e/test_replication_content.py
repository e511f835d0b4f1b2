"""Hostile note content crosses to a peer byte for byte (attack7's hostile_content.py as a
test): notes at every `[notes]` limit (a 1 MiB body of ASCII and of 4-byte characters, a
500-character title, 64 tags of 64 characters), a mix of bidi controls, zero-width and
private-use characters, U+10FFFF, combining marks, BOM and CRLF, and HTML. Two nodes in
network namespaces (scripts/netns-cluster.sh), asked over HTTPS from the observer namespace 0.
"""

import json
import os

import pytest

from cluster_util import ADMIN, synced_cluster, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

UNI = "".join(chr(c) for c in [0x1F600, 0x202E, 0x200B, 0x0301, 0xFEFF, 0x10FFFF, 0xFFFD,
                               0xD7FF, 0xE000])
CASES = {
    "max_ascii": {"title": "t" * 500, "body": ("x" * 1023 + "\n") * 1024,
                  "tags": [f"{i:02d}" + "t" * 62 for i in range(64)]},
    "max_4_byte": {"title": "\U0001F600" * 500, "body": "\U0001F600" * (1048576 // 4),
                   "tags": ["\u00fc" * 64]},
    "unicode_mix": {"title": UNI + "<script>", "body": UNI * 1000 + "\u2028\u2029\t\r\n?",
                    "tags": ["\u01c5", "\u00df", "\u0130"]},
    "html": {"title": "<img src=x onerror=alert(1)>",
             "body": "<script>alert(1)</script> [x](javascript:alert(1))", "tags": ["<b>"]},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from synced_cluster("shc", tmp_path_factory.mktemp("content"))


def post_file(c, node, path, body, tmp_path):
    """POST a JSON body too large for a command line (curl reads it from a file)."""
    f = tmp_path / "body.json"
    f.write_text(json.dumps(body), encoding="utf-8")
    r = c.in_ns(0, "curl", "-sk", "-u", f"{ADMIN[0]}:{ADMIN[1]}", "-o", "-", "-w",
                "\n%{http_code}", "-H", "content-type: application/json", "--data-binary",
                f"@{f}", f"https://10.77.0.{node}:8443{path}", timeout=60)
    out, _, status = r.stdout.rpartition("\n")
    return int(status or 0), json.loads(out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_content_reaches_the_peer_byte_for_byte(cluster, tmp_path, case):
    status, made = post_file(cluster, 1, "/api/notes", {**CASES[case], "visibility": "public"},
                             tmp_path)
    assert status == 201, made
    # Title and body are kept as written (tags are folded to lower case and sorted).
    for field in ("title", "body"):
        assert made[field] == CASES[case][field], f"{case}: {field} changed on its own node"
    assert len(made["tags"]) == len(CASES[case]["tags"])
    wait_for(lambda: cluster.call(2, f"/api/notes/{made['id']}")[0] == 200, 10,
             f"{case} on node 2")
    status, there = cluster.call(2, f"/api/notes/{made['id']}")
    assert status == 200
    for field in ("title", "body", "tags", "rev", "visibility"):
        assert there[field] == made[field], f"{case}: {field} differs on node 2"
