"""The trash, as people coming from Synology or Nextcloud expect it (issue 14).

Deleting media moves it to a trash (`<media_root>/.streamhub-trash`), hidden from the library,
kept `storage.trash_days`; its owner or an admin can list, restore (back where it was, or
elsewhere) and purge it. Folders with something in them are deleted only with an explicit
`?recursive=true`, and by a member only when everything in them is theirs. `?permanent=true`
skips the trash. Purging never follows a link out of the trash.
"""

import os
import sqlite3
import time
from urllib.parse import quote

import pytest

from conftest import AuthEnv, api_time, assert_error, http_call, wait_for

TRASH = ".streamhub-trash"


@pytest.fixture(scope="module")
def env(module_servers, tmp_path_factory):
    root = tmp_path_factory.mktemp("trash") / "media"
    root.mkdir()
    return AuthEnv(module_servers.start(root, name="trash"))


def put(env, cred, path, body):
    r = http_call(env.srv, "PUT", "/media/" + quote(path), headers=cred.headers, body=body)
    assert r.status == 201, r
    return r


def delete(env, cred, path, **q):
    qs = "&".join(f"{k}={v}" for k, v in q.items())
    return http_call(env.srv, "DELETE", "/media/" + quote(path) + ("?" + qs if qs else ""),
                     headers=cred.headers)


def trash(env, cred):
    r = http_call(env.srv, "GET", "/api/trash", headers=cred.headers)
    assert r.status == 200, r
    return r.json()


def restore(env, cred, tid, to=None):
    body = None if to is None else {"to": to}
    return http_call(env.srv, "POST", f"/api/trash/{tid}/restore", headers=cred.headers,
                     json_body=body)


def in_trash_dir(env):
    d = env.srv.media_root / TRASH
    return sorted(os.listdir(d)) if d.exists() else []


def listing(env, path=""):
    r = http_call(env.srv, "GET", f"/api/library?path={path}", headers=env.admin.headers)
    assert r.status == 200, r
    return sorted(e["name"] for e in r.json()["entries"])


def test_delete_goes_to_the_trash_and_comes_back(env):
    data = os.urandom(5000)
    put(env, env.member, "t1/clip.bin", data)
    t0 = time.time()
    r = delete(env, env.member, "t1/clip.bin")
    assert r.status == 204, r
    tid = int(r.header("x-trash-id"))
    assert http_call(env.srv, "GET", "/media/t1/clip.bin").status == 404
    assert listing(env, "t1") == []
    assert TRASH not in listing(env), "the trash is never listed"
    assert_error(http_call(env.srv, "GET", f"/media/{TRASH}/x"), 400, "bad_path")  # reserved
    t = trash(env, env.member)
    item = next(i for i in t["items"] if i["id"] == tid)
    assert item["path"] == "t1/clip.bin" and item["kind"] == "file" and item["size"] == 5000
    assert item["owner"] == "mia" and item["deleted_by"] == "mia", item
    assert abs(api_time(item["deleted_at"]) - t0) < 60
    assert abs(api_time(item["expires_at"]) - api_time(item["deleted_at"]) - 30 * 86400) < 2
    assert t["trash_days"] == 30 and t["total_bytes"] >= 5000
    # someone else's trash entry is not theirs to see, restore or purge
    assert tid not in {i["id"] for i in trash(env, env.member2)["items"]}
    assert_error(restore(env, env.member2, tid), 404, "not_found")
    assert_error(http_call(env.srv, "DELETE", f"/api/trash/{tid}", headers=env.member2.headers),
                 404, "not_found")
    assert tid in {i["id"] for i in trash(env, env.admin)["items"]}, "admins see everything"
    r = restore(env, env.member, tid)
    assert r.status == 200 and r.json() == {"path": "t1/clip.bin"}, r
    got = http_call(env.srv, "GET", "/media/t1/clip.bin")
    assert got.status == 200 and got.body == data
    assert tid not in {i["id"] for i in trash(env, env.admin)["items"]}
    # the owner came back with it: max still may not delete it, mia may
    assert_error(delete(env, env.member2, "t1/clip.bin"), 403, "forbidden")
    assert delete(env, env.member, "t1/clip.bin", permanent="true").status == 204


def test_restore_never_replaces_and_can_go_elsewhere(env):
    put(env, env.member, "t2/a.txt", b"old")
    tid = int(delete(env, env.member, "t2/a.txt").header("x-trash-id"))
    put(env, env.member, "t2/a.txt", b"new")
    assert_error(restore(env, env.member, tid), 409, "exists")
    assert (env.srv.media_root / "t2/a.txt").read_bytes() == b"new"
    r = restore(env, env.member, tid, to="/t2/old a.txt")
    assert r.status == 200 and r.json()["path"] == "t2/old a.txt", r
    assert (env.srv.media_root / "t2/old a.txt").read_bytes() == b"old"
    # into folders that no longer exist: they are made, and they are the restorer's
    tid = int(delete(env, env.member, "t2/old a.txt").header("x-trash-id"))
    r = restore(env, env.member, tid, to="t2/new/deeper/a.txt")
    assert r.status == 200, r
    assert delete(env, env.member, "t2/new", recursive="true").status == 204


def test_folders_need_recursive_and_come_back_whole(env):
    files = {f"t3/album/{n}": os.urandom(100 + i) for i, n in enumerate(
        ["one.mp3", "two.mp3", "sub/three.mp3", "été/日本.mp3"])}
    for p, b in files.items():
        put(env, env.member, p, b)
    assert_error(delete(env, env.member, "t3/album"), 409, "not_empty")
    assert_error(delete(env, env.member, "t3/album", recursive="maybe"), 400, "bad_query")
    r = delete(env, env.member, "t3/album", recursive="true")
    assert r.status == 204, r
    tid = int(r.header("x-trash-id"))
    assert not (env.srv.media_root / "t3/album").exists()
    item = next(i for i in trash(env, env.member)["items"] if i["id"] == tid)
    assert item["kind"] == "dir" and item["size"] == sum(len(b) for b in files.values()), item
    r = http_call(env.srv, "GET", "/api/library?q=three", headers=env.member.headers)
    assert [e["path"] for e in r.json()["entries"]] == [], "the library hides the trash"
    assert restore(env, env.member, tid).status == 200
    for p, b in files.items():
        assert (env.srv.media_root / p).read_bytes() == b, p
    r = http_call(env.srv, "GET", "/api/library?q=three", headers=env.member.headers)
    assert [e["path"] for e in r.json()["entries"]] == ["t3/album/sub/three.mp3"]
    # owners inside came back: mia may delete a nested file, max may not
    assert_error(delete(env, env.member2, "t3/album/sub/three.mp3"), 403, "forbidden")
    assert delete(env, env.member, "t3/album/sub/three.mp3").status == 204


def test_a_member_may_not_delete_a_folder_holding_someone_elses_files(env):
    put(env, env.member, "t4/shared/mine.txt", b"mia's")
    put(env, env.member2, "t4/shared/yours.txt", b"max's")
    assert_error(delete(env, env.member, "t4/shared", recursive="true"), 403, "forbidden")
    assert (env.srv.media_root / "t4/shared/yours.txt").exists()
    r = delete(env, env.admin, "t4/shared", recursive="true")
    assert r.status == 204
    tid = int(r.header("x-trash-id"))
    # Not all of it was mia's nor max's: only admins see, restore or purge it.
    assert tid not in {i["id"] for i in trash(env, env.member2)["items"]}
    assert tid not in {i["id"] for i in trash(env, env.member)["items"]}
    assert tid in {i["id"] for i in trash(env, env.admin)["items"]}
    assert_error(restore(env, env.member, tid), 404, "not_found")


def test_permanent_purge_and_empty(env):
    put(env, env.member, "t5/gone.bin", b"x" * 10)
    r = delete(env, env.member, "t5/gone.bin", permanent="true")
    assert r.status == 204 and r.header("x-trash-id") is None
    assert not any(i["path"] == "t5/gone.bin" for i in trash(env, env.admin)["items"])
    before = set(in_trash_dir(env))
    put(env, env.member, "t5/a.bin", b"a")
    put(env, env.member, "t5/b.bin", b"b")
    ta = int(delete(env, env.member, "t5/a.bin").header("x-trash-id"))
    delete(env, env.member, "t5/b.bin")
    assert len(set(in_trash_dir(env)) - before) == 2
    r = http_call(env.srv, "DELETE", f"/api/trash/{ta}", headers=env.member.headers)
    assert r.status == 204, r
    assert len(set(in_trash_dir(env)) - before) == 1
    assert_error(restore(env, env.member, ta), 404, "not_found")
    r = http_call(env.srv, "DELETE", "/api/trash", headers=env.member.headers)
    assert r.status == 200 and r.json()["purged"] >= 1, r
    assert trash(env, env.member)["items"] == []
    assert any(i for i in trash(env, env.admin)["items"]), "a member empties only their own"


def test_purge_never_follows_a_link_out_of_the_trash(env, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"must survive")
    d = env.srv.media_root / "t6" / "hand"
    d.mkdir(parents=True)
    os.symlink(outside, d / "link-to-dir")
    os.symlink(outside / "keep.txt", d / "link-to-file")
    (d / "real.txt").write_bytes(b"r")
    r = delete(env, env.admin, "t6/hand", recursive="true")
    assert r.status == 204, r
    tid = int(r.header("x-trash-id"))
    assert http_call(env.srv, "DELETE", f"/api/trash/{tid}", headers=env.admin.headers).status == 204
    assert (outside / "keep.txt").read_bytes() == b"must survive"
    # and a permanent recursive delete likewise
    d.mkdir(parents=True)
    os.symlink(outside, d / "link-to-dir")
    assert delete(env, env.admin, "t6/hand", recursive="true", permanent="true").status == 204
    assert (outside / "keep.txt").read_bytes() == b"must survive"
    assert not d.exists()


def test_bad_requests_are_json(env):
    assert_error(http_call(env.srv, "GET", "/api/trash"), 401, "unauthorized")
    assert_error(http_call(env.srv, "POST", "/api/trash/abc/restore", headers=env.admin.headers),
                 404, "not_found")
    assert_error(http_call(env.srv, "POST", "/api/trash/999999/restore", headers=env.admin.headers),
                 404, "not_found")
    put(env, env.member, "t7/x.bin", b"x")
    tid = int(delete(env, env.member, "t7/x.bin").header("x-trash-id"))
    for to in ("../x", "//x", ".hidden/x", f"{TRASH}/x"):
        r = restore(env, env.member, tid, to=to)
        assert r.status == 400, (to, r)
    r = http_call(env.srv, "POST", f"/api/trash/{tid}/restore",
                  headers={**env.member.headers, "Content-Type": "text/plain"}, body=b"to=x")
    assert_error(r, 415, "unsupported_media_type")
    assert_error(restore(env, env.member, tid, to=7), 422, "invalid")
    assert restore(env, env.member, tid).status == 200


def test_expired_entries_are_swept_and_trash_days_0_deletes_for_good(servers, tmp_path):
    root, data = tmp_path / "media", tmp_path / "data"
    root.mkdir()
    srv = servers.start(root, data_dir=data, name="trash-sweep")
    e = AuthEnv(srv, second_member=False)
    put(e, e.member, "old.bin", b"old")
    put(e, e.member, "new.bin", b"new")
    told = int(delete(e, e.member, "old.bin").header("x-trash-id"))
    tnew = int(delete(e, e.member, "new.bin").header("x-trash-id"))
    srv.stop()
    with sqlite3.connect(data / "streamhub.db") as c:
        c.execute("UPDATE trash SET deleted_at = deleted_at - 31 * 86400 WHERE id = ?", (told,))
    srv = servers.start(root, data_dir=data, name="trash-sweep2")
    e.srv = srv
    wait_for(lambda: [i["id"] for i in trash(e, e.admin)["items"]] == [tnew], 30,
             "the sweep to purge the expired entry")
    assert len(os.listdir(root / TRASH)) == 1
    srv.stop()
    srv = servers.start(root, data_dir=data, name="trash-off",
                        env={"STREAMHUB_STORAGE_TRASH_DAYS": "0"})
    e.srv = srv
    put(e, e.member, "now.bin", b"x")
    r = delete(e, e.member, "now.bin")
    assert r.status == 204 and r.header("x-trash-id") is None
    assert not (root / "now.bin").exists()
    # with the trash off, what was in it goes at the next sweep
    wait_for(lambda: trash(e, e.admin)["items"] == [], 30, "the sweep with trash_days = 0")


# --- found by the outside attack run (each was a bug) ----------------------------------------


def _mount(*args):
    import subprocess
    subprocess.run(["mount", *map(str, args)], check=True)


def _umount(p):
    import subprocess
    subprocess.run(["umount", "-l", str(p)], check=False)


@pytest.mark.parametrize("kind", ["bind-same-disk", "tmpfs"])
@pytest.mark.parametrize("permanent", [False, True], ids=["to-trash", "permanent"])
def test_a_folder_with_something_mounted_inside_is_refused_and_untouched(env, tmp_path, kind,
                                                                         permanent):
    victim = tmp_path / "other-disk"
    victim.mkdir()
    folder = env.srv.media_root / f"t8-{kind}-{permanent}"
    (folder / "mnt").mkdir(parents=True)
    (folder / "own.txt").write_bytes(b"mine")
    if kind == "tmpfs":
        _mount("-t", "tmpfs", "tmpfs", folder / "mnt")
    else:
        _mount("--bind", victim, folder / "mnt")
    try:
        (folder / "mnt" / "k.txt").write_bytes(b"must survive")
        q = {"recursive": "true"} | ({"permanent": "true"} if permanent else {})
        r = delete(env, env.admin, folder.name, **q)
        assert_error(r, 400, "invalid")
        assert "mounted" in r.json()["message"] and f"{folder.name}/mnt" in r.json()["message"]
        assert (folder / "mnt" / "k.txt").read_bytes() == b"must survive"
        assert (folder / "own.txt").read_bytes() == b"mine", "nothing was deleted"
        assert not any(i["path"] == folder.name for i in trash(env, env.admin)["items"])
    finally:
        _umount(folder / "mnt")
    if kind != "tmpfs":
        assert (victim / "k.txt").read_bytes() == b"must survive"


def test_restore_and_purge_of_one_entry_never_both_win(env):
    from concurrent.futures import ThreadPoolExecutor
    for i in range(6):
        for n in range(20):
            put(env, env.member, f"t9/r{i}/f{n}.bin", b"x" * 100)
        tid = int(delete(env, env.member, f"t9/r{i}", recursive="true").header("x-trash-id"))
        with ThreadPoolExecutor(2) as ex:
            a = ex.submit(restore, env, env.member, tid)
            b = ex.submit(http_call, env.srv, "DELETE", f"/api/trash/{tid}",
                          headers=env.member.headers)
            ra, rb = a.result(), b.result()
        restored, purged = ra.status == 200, rb.status == 204
        assert restored != purged or (not restored and not purged), (ra, rb)
        for r, ok in ((ra, 200), (rb, 204)):
            assert r.status in (ok, 404, 409), r
        folder = env.srv.media_root / f"t9/r{i}"
        if restored:
            assert len(os.listdir(folder)) == 20, "a restore that says 200 brings back everything"
        else:
            assert not folder.exists()


def test_trash_ids_are_never_reused(env):
    ids = []
    for _ in range(3):
        put(env, env.member, "t10/same.bin", b"x")
        tid = int(delete(env, env.member, "t10/same.bin").header("x-trash-id"))
        ids.append(tid)
        assert http_call(env.srv, "DELETE", f"/api/trash/{tid}",
                         headers=env.member.headers).status == 204
    assert len(set(ids)) == 3, ids


def test_a_deleted_shared_file_stops_its_link_and_a_restore_brings_it_back(env):
    put(env, env.member, "t11/mine.txt", b"alice's")
    link = http_call(env.srv, "POST", "/api/shares", headers=env.member.headers,
                     json_body={"path": "t11/mine.txt"}).json()["url"]
    tid = int(delete(env, env.member, "t11/mine.txt").header("x-trash-id"))
    # someone else puts a file at the old name: the old link must not serve it
    put(env, env.member2, "t11/mine.txt", b"bob's")
    r = http_call(env.srv, "GET", link)
    assert r.status == 404 and b"bob" not in r.body, r
    assert delete(env, env.member2, "t11/mine.txt", permanent="true").status == 204
    assert restore(env, env.member, tid).status == 200
    assert http_call(env.srv, "GET", link).body == b"alice's"


def test_restore_into_an_existing_folder_goes_inside_it(env):
    put(env, env.member, "t12/a.txt", b"a")
    tid = int(delete(env, env.member, "t12/a.txt").header("x-trash-id"))
    assert http_call(env.srv, "POST", "/api/library/folder", headers=env.member.headers,
                     json_body={"path": "t12/box"}).status == 201
    r = restore(env, env.member, tid, to="t12/box")
    assert r.status == 200 and r.json()["path"] == "t12/box/a.txt", r
