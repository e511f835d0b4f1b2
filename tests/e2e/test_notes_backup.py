"""People own their notes: `streamhub backup` while notes are being written gives a database
that opens and passes integrity_check, and `notes export` -> `notes import` -> `notes export`
round-trips every revision (private, edited, deleted, tagged, unicode) exactly.
"""

import json
import sqlite3
import threading
import time

import pytest

from conftest import (
    AUTH_PW,
    assert_error,
    cli_add_user,
    http_call,
    must_login,
    new_token,
    run_cli,
    user_cli,
)


@pytest.fixture(scope="module")
def nsrv(module_servers, auth_media):
    srv = module_servers.start(auth_media["root"], name="notes-backup")
    cli_add_user(srv.data_dir, "nora")
    cli_add_user(srv.data_dir, "otto")
    srv.nora = new_token(srv, must_login(srv, "nora", AUTH_PW), "backup-e2e")
    srv.otto = new_token(srv, must_login(srv, "otto", AUTH_PW), "backup-e2e")
    return srv


def create(srv, cred, **note):
    r = http_call(srv, "POST", "/api/notes", headers=cred.headers, json_body=note)
    assert r.status == 201, r
    return r.json()


def edit(srv, cred, note, **changes):
    h = dict(cred.headers, **{"If-Match": f'"{note["rev"]}"'})
    r = http_call(srv, "PUT", f"/api/notes/{note['id']}", headers=h, json_body=changes)
    assert r.status == 200, r
    return r.json()


def integrity(db_path):
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0], con.execute(
            "SELECT count(*) FROM notes").fetchone()[0]
    finally:
        con.close()


def test_backup_during_writes_is_consistent(nsrv, tmp_path):
    acked, stop = [], threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            r = http_call(nsrv, "POST", "/api/notes", headers=nsrv.nora.headers,
                          json_body={"title": f"busy {i}", "body": "x" * 2000, "visibility": "public"})
            if r.status == 201:
                acked.append(r.json()["id"])
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        counts = []
        for n in range(3):
            time.sleep(0.3)
            dest = tmp_path / f"backup-{n}.db"
            r = run_cli(["backup", dest, "--data-dir", nsrv.data_dir])
            assert r.returncode == 0, r.stderr
            assert "integrity ok" in r.stdout
            check, count = integrity(dest)
            assert check == "ok"
            counts.append(count)
    finally:
        stop.set()
        t.join()
    assert len(acked) > 0 and counts[-1] > 0
    assert counts == sorted(counts), "later backups never have fewer notes"
    # an existing destination is refused, never overwritten
    r = run_cli(["backup", tmp_path / "backup-0.db", "--data-dir", nsrv.data_dir])
    assert r.returncode == 2 and "exists" in r.stderr


def read_export(d):
    revs = sorted((d / "revisions.jsonl").read_text().splitlines())
    notes = {p.name: p.read_text() for p in (d / "notes").iterdir()}
    return revs, notes


def test_export_import_round_trip_is_lossless(nsrv, module_servers, auth_media, tmp_path):
    a = create(nsrv, nsrv.nora, title="Plan ünïcødé 日本", body="line 1\nline 2\n", tags=["Home", "todo"],
               visibility="public")
    a = edit(nsrv, nsrv.otto, a, body="line 1\nline 2 changed\n")
    a = edit(nsrv, nsrv.nora, a, tags=["home"])
    p = create(nsrv, nsrv.nora, title="diary", body="private words", visibility="private")
    p = edit(nsrv, nsrv.nora, p, body="private words, revised")
    d = create(nsrv, nsrv.otto, title="to delete", body="gone", visibility="public")
    h = dict(nsrv.otto.headers, **{"If-Match": f'"{d["rev"]}"'})
    assert http_call(nsrv, "DELETE", f"/api/notes/{d['id']}", headers=h).status == 200

    ex1, ex2 = tmp_path / "ex1", tmp_path / "ex2"
    r = run_cli(["notes", "export", ex1, "--data-dir", nsrv.data_dir])
    assert r.returncode == 0, r.stderr
    md = (ex1 / "notes" / f"{a['id']}.md").read_text()
    assert md.startswith("---\n") and "line 2 changed" in md and '"Plan ünïcødé 日本"' in md

    fresh = tmp_path / "fresh-data"
    for name in ("nora", "otto"):
        cli_add_user(fresh, name, init=True)
    r = run_cli(["notes", "import", ex1, "--data-dir", fresh])
    assert r.returncode == 0, r.stderr
    again = run_cli(["notes", "import", ex1, "--data-dir", fresh])
    assert again.returncode == 0 and again.stdout.startswith("imported 0 revisions"), again.stdout
    r = run_cli(["notes", "export", ex2, "--data-dir", fresh])
    assert r.returncode == 0, r.stderr
    assert read_export(ex1) == read_export(ex2)

    # the imported node serves the same notes, and the private one only to its owner
    srv2 = module_servers.start(auth_media["root"], data_dir=fresh, name="notes-imported")
    nora = new_token(srv2, must_login(srv2, "nora", AUTH_PW), "after-import")
    otto = new_token(srv2, must_login(srv2, "otto", AUTH_PW), "after-import")
    r = http_call(srv2, "GET", f"/api/notes/{p['id']}", headers=nora.headers)
    assert r.status == 200 and r.json()["body"] == "private words, revised" and r.json()["rev"] == p["rev"]
    assert_error(http_call(srv2, "GET", f"/api/notes/{p['id']}", headers=otto.headers), 404, "not_found")
    r = http_call(srv2, "GET", f"/api/notes/{a['id']}")
    assert r.json()["rev"] == a["rev"] and r.json()["tags"] == ["home"]
    revs = http_call(srv2, "GET", f"/api/notes/{a['id']}/revisions").json()["revisions"]
    assert len(revs) == 3
    r = http_call(srv2, "GET", f"/api/notes/{d['id']}")
    assert r.status == 200 and r.json()["deleted"] is True


def test_import_rejects_garbage(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "revisions.jsonl").write_text('{"owner": null, "revision": {"note_id": 5}}\n')
    r = run_cli(["notes", "import", bad, "--data-dir", tmp_path / "d"])
    assert r.returncode == 2 and "line 1" in r.stderr
    r = run_cli(["notes", "import", tmp_path / "missing", "--data-dir", tmp_path / "d"])
    assert r.returncode == 2 and "revisions.jsonl" in r.stderr
    forged = tmp_path / "forged"
    forged.mkdir()
    line = {"owner": None, "revision": {
        "note_id": "0" * 32, "rev": "f" * 64, "parents": [], "gen": 1,
        "hlc": "1700000000000.0@" + "a" * 32, "title": "t", "body": "b", "tags": [],
        "visibility": "public", "deleted": False, "author": "x"}}
    (forged / "revisions.jsonl").write_text(json.dumps(line) + "\n")
    r = run_cli(["notes", "import", forged, "--data-dir", tmp_path / "d", "--init"])
    assert r.returncode != 0 and "revision" in r.stderr


def test_secrets_are_private_whatever_the_umask(module_servers, auth_media, tmp_path):
    """Issue 14: the database, its WAL, backups and exports hold password hashes, the
    share-link key and private notes: 0600 files in a 0700 data dir even with umask 022."""
    import os
    import stat
    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        srv = module_servers.start(auth_media["root"], data_dir=data, name="modes")
        cli_add_user(srv.data_dir, "mona")
        mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
        assert mode(data) == 0o700, oct(mode(data))
        for name in ("streamhub.db", "streamhub.db-wal", "streamhub.db-shm"):
            if (data / name).exists():
                assert mode(data / name) == 0o600, (name, oct(mode(data / name)))
        assert mode(data / "streamhub.db") == 0o600
        dest = tmp_path / "b.db"
        r = run_cli(["backup", dest, "--data-dir", data])
        assert r.returncode == 0, r.stderr
        assert mode(dest) == 0o600, oct(mode(dest))
        r = run_cli(["backup", dest, "--data-dir", data])
        assert r.returncode != 0 and "exists already" in r.stderr, r
        ex = tmp_path / "ex"
        mona = new_token(srv, must_login(srv, "mona", AUTH_PW), "modes")
        create(srv, mona, title="secret diary", body="private", visibility="private")
        r = run_cli(["notes", "export", ex, "--data-dir", data])
        assert r.returncode == 0, r.stderr
        assert mode(ex / "notes") == 0o700
        assert mode(ex / "revisions.jsonl") == 0o600
        assert all(mode(p) == 0o600 for p in (ex / "notes").iterdir())
    finally:
        os.umask(old)


def test_import_refuses_notes_whose_owners_are_not_here(nsrv, module_servers, auth_media, tmp_path):
    """Issue 14: importing before the owners' accounts exist used to report success and leave
    private notes owned by nobody and visible to nobody. Now nothing is imported and the
    missing accounts are named; `--owner-map OLD=NEW` gives their notes to local users."""
    p = create(nsrv, nsrv.nora, title="nora's diary", body="only nora", visibility="private")
    ex = tmp_path / "ex"
    assert run_cli(["notes", "export", ex, "--data-dir", nsrv.data_dir]).returncode == 0
    fresh = tmp_path / "fresh"
    cli_add_user(fresh, "nina", init=True)
    r = run_cli(["notes", "import", ex, "--data-dir", fresh])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "nora" in r.stderr and "--owner-map" in r.stderr, r.stderr
    counted = run_cli(["notes", "export", tmp_path / "empty", "--data-dir", fresh])
    assert counted.stdout.startswith("exported 0 notes"), counted.stdout
    bad = run_cli(["notes", "import", ex, "--data-dir", fresh, "--owner-map", "nora"])
    assert bad.returncode == 2 and "OLD=NEW" in bad.stderr, bad.stderr
    r = run_cli(["notes", "import", ex, "--data-dir", fresh,
                 "--owner-map", "nora=nina", "--owner-map", "otto=nina"])
    assert r.returncode == 0, r.stderr
    srv2 = module_servers.start(auth_media["root"], data_dir=fresh, name="notes-mapped")
    nina = new_token(srv2, must_login(srv2, "nina", AUTH_PW), "mapped")
    got = http_call(srv2, "GET", f"/api/notes/{p['id']}", headers=nina.headers)
    assert got.status == 200 and got.json()["body"] == "only nora", got


def test_export_writes_private_notes_of_deleted_users(module_servers, auth_media, tmp_path):
    """Issue 12: once the owner of a private note was deleted (its owner becomes NULL), export
    stopped at that note ("note not found") and wrote nothing. Every note must be written."""
    srv = module_servers.start(auth_media["root"], name="notes-export-orphan")
    for name in ("keep", "gone"):
        cli_add_user(srv.data_dir, name)
    keep = new_token(srv, must_login(srv, "keep", AUTH_PW), "export-orphan")
    gone = new_token(srv, must_login(srv, "gone", AUTH_PW), "export-orphan")
    pub = create(srv, keep, title="kept public", body="public words", visibility="public")
    priv = create(srv, gone, title="orphan diary", body="orphaned private words",
                  visibility="private")
    priv = edit(srv, gone, priv, body="orphaned private words, revised")
    r = user_cli(srv.data_dir, "del", "gone")
    assert r.returncode == 0, r.stderr

    ex = tmp_path / "ex"
    r = run_cli(["notes", "export", ex, "--data-dir", srv.data_dir])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("exported 2 notes (3 revisions)"), r.stdout
    md = (ex / "notes" / f"{priv['id']}.md").read_text()
    assert "orphaned private words, revised" in md and "owner: null" in md, md
    assert "public words" in (ex / "notes" / f"{pub['id']}.md").read_text()
    lines = [json.loads(x) for x in (ex / "revisions.jsonl").read_text().splitlines()]
    assert sorted(x["revision"]["note_id"] for x in lines) == sorted([pub["id"], priv["id"], priv["id"]])
    # still nobody's to read through the API
    r = http_call(srv, "GET", f"/api/notes/{priv['id']}", headers=keep.headers)
    assert_error(r, 404)
