"""Upgrading keeps everything (issue 11): `tests/fixtures/v1/` is a data dir and a media root
written by the release before the migration list became numbered files and the staged tus
upload became a storage key (see `tests/fixtures/make_v1_db.py`). The current binary opens
it — with the media root at another path than the one recorded, as after a disk is mounted
elsewhere — and users, tokens, notes (private ones still private), library owners, share
links and the unfinished upload are all still there.
"""

import json
import shutil
from pathlib import Path

from conftest import bearer, http_call

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1"


def test_a_database_from_the_previous_release_opens_with_nothing_lost(servers, tmp_path):
    data = tmp_path / "data"
    media = tmp_path / "moved" / "elsewhere" / "media"
    shutil.copytree(FIXTURE / "data", data)
    shutil.copytree(FIXTURE / "media", media, symlinks=True)
    t = json.loads((FIXTURE / "tokens.json").read_text())
    srv = servers.start(media, data_dir=data, tls_listen=(), name="upgrade")
    admin, alice = bearer(t["admin"]), bearer(t["alice"])

    me = http_call(srv, "GET", "/api/me", headers=admin)
    assert me.status == 200 and me.json()["name"] == "admin", me
    assert http_call(srv, "GET", "/api/me", headers=alice).json()["name"] == "alice"
    users = http_call(srv, "GET", "/api/users", headers=admin).json()["users"]
    assert sorted(u["name"] for u in users) == ["admin", "alice"]

    # Notes: the public one with both revisions; the private one is alice's alone.
    note = http_call(srv, "GET", f"/api/notes/{t['public_note']}")
    assert note.status == 200 and note.json()["body"] == "milk\neggs\n", note
    revs = http_call(srv, "GET", f"/api/notes/{t['public_note']}/revisions").json()
    assert len(revs["revisions"]) == 2, revs
    titles = lambda h: {n["title"] for n in http_call(srv, "GET", "/api/notes", headers=h).json()["items"]}
    assert "Alice's diary" in titles(alice)
    assert "Alice's diary" not in titles(admin)
    assert "Alice's diary" not in titles({})

    # The share link still serves its file.
    shares = http_call(srv, "GET", "/api/shares", headers=admin).json()["shares"]
    assert [s["path"] for s in shares] == ["alice/upload.txt"]
    r = http_call(srv, "GET", shares[0]["url"])
    assert r.status == 200 and r.body == b"alice's upload\n", r

    # The unfinished upload resumes where it stopped, though the media root moved.
    tus = {**alice, "Tus-Resumable": "1.0.0"}
    head = http_call(srv, "HEAD", t["tus"], headers=tus)
    assert head.status == 200, head
    assert (head.header("upload-offset"), head.header("upload-length")) == ("10", "20")
    r = http_call(srv, "PATCH", t["tus"], body=b"ABCDEFGHIJ", headers={
        **tus, "Upload-Offset": "10", "Content-Type": "application/offset+octet-stream"})
    assert r.status == 204 and r.header("upload-offset") == "20", r
    assert (media / "alice/resumed.bin").read_bytes() == b"0123456789ABCDEFGHIJ"

    # Library owners survived: alice may delete her own upload (a member may not delete
    # what is not hers).
    r = http_call(srv, "DELETE", "/media/alice/upload.txt", headers=alice)
    assert r.status == 204, r
    r = http_call(srv, "DELETE", "/media/films/by-hand.bin", headers=alice)
    assert r.status == 403, r
