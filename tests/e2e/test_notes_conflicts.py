"""Real conflicts end to end: two streamhub boxes edit the same public note while apart, and
their revisions meet through `streamhub notes export` / `notes import` (the path a household
uses to bring notes from one box to another today, and the same `put_revision` the LAN sync
will use). Then the API shows the conflict, merges non-overlapping edits, and takes a
person's resolution of overlapping ones — and both boxes agree on the winner.

Everything runs against the real binary on 127.0.0.1, with the CLI writing to the databases
of the running servers (WAL; the documented way).
"""

import pytest

from conftest import AuthEnv, assert_error, run_cli, start_auth_server
from test_notes import call, create, events, if_match, must_get, must_put

BASE = "line one\nline two\nline three\n"


@pytest.fixture(scope="module")
def boxes(module_servers, auth_media):
    a = AuthEnv(start_auth_server(module_servers, auth_media["root"], name="box-a",
                                  login_max_failures=200))
    b = AuthEnv(start_auth_server(module_servers, auth_media["root"], name="box-b",
                                  login_max_failures=200))
    return a, b


def carry(src, dst, tmp_path, name):
    """Export every revision of `src` and import it into `dst` (both running)."""
    out = tmp_path / name
    r = run_cli(["notes", "export", out, "--data-dir", src.srv.data_dir])
    assert r.returncode == 0, r.stderr
    r = run_cli(["notes", "import", out, "--data-dir", dst.srv.data_dir])
    assert r.returncode == 0, r.stderr
    return r.stdout


def diverge(boxes, tmp_path, title, edit_a, edit_b):
    """A note made on box A, copied to B, then edited on both while apart."""
    a, b = boxes
    note = create(a.srv, a.member, title=title, body=BASE, visibility="public")
    carry(a, b, tmp_path, f"{title}-a0")
    on_b = must_get(b.srv, b.member, note["id"])
    assert on_b["rev"] == note["rev"] and on_b["body"] == BASE
    ra = must_put(a.srv, a.member, note["id"], note["rev"], body=edit_a)
    rb = must_put(b.srv, b.member, note["id"], note["rev"], body=edit_b)
    assert ra["rev"] != rb["rev"]
    return note["id"], ra["rev"], rb["rev"]


def test_concurrent_edits_meet_as_a_conflict_and_merge_cleanly(boxes, tmp_path):
    a, b = boxes
    nid, rev_a, rev_b = diverge(
        boxes, tmp_path, "shopping",
        "line ONE (box a)\nline two\nline three\n",
        "line one\nline two\nline THREE (box b)\n",
    )
    carry(b, a, tmp_path, "b-to-a")
    carry(a, b, tmp_path, "a-to-b")
    on_a = must_get(a.srv, a.member, nid)
    on_b = must_get(b.srv, b.member, nid)
    # The same winner on both boxes, the other edit kept as a conflict, nothing dropped.
    assert on_a["rev"] == on_b["rev"], "both boxes must pick the same winner"
    assert {on_a["rev"], *on_a["conflicts"]} == {rev_a, rev_b}
    assert on_a["conflicts"] == on_b["conflicts"] and len(on_a["conflicts"]) == 1
    kinds = [e.get("kind", e.get("type")) for e in events(a.srv, a.member, nid)]
    assert "conflict" in kinds, kinds
    # Both revisions stay readable.
    for rev in (rev_a, rev_b):
        r = call(a.srv, a.member, "GET", f"/api/notes/{nid}/revisions/{rev}")
        assert r.status == 200, r
    # Non-overlapping edits merge cleanly into one revision with both changes.
    r = call(a.srv, a.member, "POST", f"/api/notes/{nid}/merge",
             json_body={"rev": on_a["conflicts"][0]})
    assert r.status == 200, r
    merged = r.json()
    assert merged["body"] == "line ONE (box a)\nline two\nline THREE (box b)\n"
    assert merged["conflicts"] == []
    # The merge travels: after the next exchange box B has it too, without conflicts.
    carry(a, b, tmp_path, "merged-a-to-b")
    on_b = must_get(b.srv, b.member, nid)
    assert on_b["rev"] == merged["rev"] and on_b["conflicts"] == []


def test_overlapping_edits_need_a_person(boxes, tmp_path):
    a, b = boxes
    nid, rev_a, rev_b = diverge(
        boxes, tmp_path, "meeting",
        "line one\nline two: tuesday\nline three\n",
        "line one\nline two: thursday\nline three\n",
    )
    carry(b, a, tmp_path, "b-to-a")
    note = must_get(a.srv, a.member, nid)
    other = note["conflicts"][0]
    r = call(a.srv, a.member, "POST", f"/api/notes/{nid}/merge", json_body={"rev": other})
    assert_error(r, 409)
    still = must_get(a.srv, a.member, nid)
    assert still["rev"] == note["rev"] and still["conflicts"] == [other], "a failed merge changes nothing"
    # A person writes the resolution; it replaces both leaves.
    resolution = {"title": "meeting", "body": "line one\nline two: wednesday\nline three\n",
                  "tags": [], "visibility": "public"}
    r = call(a.srv, a.member, "POST", f"/api/notes/{nid}/resolve",
             json_body={"merged": resolution, "resolves": [other]}, headers=if_match(note["rev"]))
    assert r.status == 200, r
    done = r.json()
    assert done["body"] == resolution["body"] and done["conflicts"] == []
    revs = call(a.srv, a.member, "GET", f"/api/notes/{nid}/revisions").json()
    listed = {x["rev"] for x in revs["revisions"]}
    assert {rev_a, rev_b, done["rev"]} <= listed, "history keeps both sides and the resolution"


def test_import_is_idempotent_and_private_notes_stay_private_on_the_other_box(boxes, tmp_path):
    a, b = boxes
    secret = create(a.srv, a.member, title="diary", body="private words", visibility="private")
    out = carry(a, b, tmp_path, "first")
    again = carry(a, b, tmp_path, "second")
    assert "imported 0 revisions" in again, again
    assert out
    # Exported private notes go to the user of the same name on the other box, and nobody else.
    r = call(b.srv, b.member2, "GET", f"/api/notes/{secret['id']}")
    assert_error(r, 404)
    r = call(b.srv, b.admin, "GET", f"/api/notes/{secret['id']}")
    assert_error(r, 404)
