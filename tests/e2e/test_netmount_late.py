"""A network-mount media root: changes answered 503 while the share hung, and a share mounted
again (the NFS/SMB part of issue 15, second pass).

A call stuck in the kernel on a hung share cannot be cancelled: when the share answers, it
returns and takes effect although its request was answered 503 long before. What a user must
find then is a consistent state: a file deleted that way is in the trash (listed, restorable),
a moved one is listed where it went. And a share mounted again (a new device number, the same
identity marker) serves media again without a restart, while another library's share stays
refused; the server log says once when the storage goes away and once when it is back.

faultfs (netmount_util.FaultMount) stands in for the share; runs as root (FUSE mounts).
"""

import os
import shutil
import time

import pytest

from conftest import AUTH_PW, assert_error, do_setup, http_call, must_login, wait_for
from netmount_util import FaultMount

TIMEOUT_SECS = 2
CONFIG = f"""
[storage]
timeout_secs = {TIMEOUT_SECS}
max_threads = 8
"""


@pytest.fixture()
def mount(tmp_path):
    with FaultMount(tmp_path / "share", tmp_path / "mnt", tmp_path) as m:
        yield m


@pytest.fixture()
def srv(mount, servers):
    s = servers.start(mount.mountpoint, config=CONFIG, name="netmount-late")
    yield s
    mount.release()
    s.stop(timeout=10)


def login(srv):
    do_setup(srv)
    return must_login(srv, "root", AUTH_PW)


def put(srv, cred, rel, body, query=""):
    r = http_call(srv, "PUT", f"/media/{rel}{query}", headers=cred.headers, body=body)
    assert r.status in (200, 201), r
    return r


def trash_items(srv, cred):
    r = http_call(srv, "GET", "/api/trash", headers=cred.headers)
    assert r.status == 200, r
    return r.json()["items"]


def names_in(srv, cred, folder):
    r = http_call(srv, "GET", f"/api/library?path={folder}", headers=cred.headers)
    assert r.status == 200, r
    return sorted(e["name"] for e in r.json()["entries"])


def assert_outcome_unknown(r):
    body = assert_error(r, 503, "storage_unavailable")
    assert "did not answer" in body["message"], body
    assert "outcome is unknown" in body["message"], body
    assert "look before trying again" in body["message"], body


def test_a_delete_answered_503_that_lands_later_is_in_the_trash(mount, srv):
    cred = login(srv)
    put(srv, cred, "late/del.txt", b"to the trash, late")
    put(srv, cred, "late/keep.txt", b"kept")

    # The share stops answering changes: the delete's move into the trash hangs.
    mount.set("hang", ops=["unlink", "rename"])
    t = time.monotonic()
    r = http_call(srv, "DELETE", "/media/late/del.txt", headers=cred.headers, timeout=30)
    assert time.monotonic() - t < TIMEOUT_SECS + 5
    assert_outcome_unknown(r)
    assert mount.calls() >= 1, "the fault was not reached"

    # The share answers again: the hung call returns and the file leaves its folder. It must
    # then be in the trash, listed and restorable — never hidden in the trash folder unlisted.
    mount.release()
    wait_for(lambda: not (mount.backing / "late" / "del.txt").exists(), timeout=10,
             what="the hung delete to land on the share")

    def listed():
        return [i for i in trash_items(srv, cred) if i["path"] == "late/del.txt"]

    wait_for(listed, timeout=15, what="the late delete listed in the trash", every=0.3)
    assert names_in(srv, cred, "late") == ["keep.txt"]
    assert_error(http_call(srv, "GET", "/media/late/del.txt", headers=cred.headers), 404,
                 "not_found")
    item = listed()[0]
    r = http_call(srv, "POST", f"/api/trash/{item['id']}/restore", headers=cred.headers)
    assert r.status == 200, r
    r = http_call(srv, "GET", "/media/late/del.txt", headers=cred.headers)
    assert r.status == 200 and r.body == b"to the trash, late", r
    assert trash_items(srv, cred) == []
    assert sorted(os.listdir(mount.backing / "late")) == ["del.txt", "keep.txt"]


def test_a_delete_answered_503_that_never_happened_leaves_no_trash_entry(mount, srv):
    cred = login(srv)
    put(srv, cred, "late/stay2.txt", b"stays too")
    put(srv, cred, "late/other.txt", b"other")
    mount.set("hang", ops=["unlink", "rename", "link"])
    r = http_call(srv, "DELETE", "/media/late/stay2.txt", headers=cred.headers, timeout=30)
    assert_outcome_unknown(r)
    # The share comes back but the hung call fails there (the file was removed meanwhile on
    # the server): the delete did not happen, so no trash entry may stay.
    os.unlink(mount.backing / "late" / "stay2.txt")
    mount.release()
    wait_for(lambda: [i for i in trash_items(srv, cred) if i["path"] == "late/stay2.txt"] == [],
             timeout=15, what="the record of a delete that did not happen to go", every=0.3)
    # And it does not come back later either.
    time.sleep(2)
    assert trash_items(srv, cred) == []
    assert os.listdir(mount.backing / ".streamhub-trash") == []


def test_a_restore_answered_503_that_lands_later_is_taken_back_into_the_trash(mount, srv):
    cred = login(srv)
    put(srv, cred, "late6/back.txt", b"restored late")
    r = http_call(srv, "DELETE", "/media/late6/back.txt", headers=cred.headers)
    assert r.status in (200, 204), r
    [item] = trash_items(srv, cred)
    key_dir = mount.backing / ".streamhub-trash"
    assert len(os.listdir(key_dir)) == 1
    mount.set("hang", ops=["unlink", "rename"])
    r = http_call(srv, "POST", f"/api/trash/{item['id']}/restore", headers=cred.headers,
                  timeout=30)
    assert_outcome_unknown(r)
    mount.release()
    # The hung call lands; the restore answered 503 is taken back: the entry is still in the
    # trash (listed, with its bytes), not half out of it.
    wait_for(lambda: not (mount.backing / "late6" / "back.txt").exists()
             and len(os.listdir(key_dir)) == 1, timeout=10,
             what="the late restore to be taken back")
    time.sleep(1)
    assert not (mount.backing / "late6" / "back.txt").exists()
    assert [i["id"] for i in trash_items(srv, cred)] == [item["id"]]
    r = http_call(srv, "POST", f"/api/trash/{item['id']}/restore", headers=cred.headers)
    assert r.status == 200, r
    r = http_call(srv, "GET", "/media/late6/back.txt", headers=cred.headers)
    assert r.status == 200 and r.body == b"restored late", r
    assert trash_items(srv, cred) == []


def test_a_permanent_delete_answered_503_that_lands_later_leaves_the_index(mount, srv):
    cred = login(srv)
    put(srv, cred, "late5/gonefile.txt", b"removed late")
    mount.set("hang", ops=["unlink", "rmdir"])
    r = http_call(srv, "DELETE", "/media/late5/gonefile.txt?permanent=true", headers=cred.headers,
                  timeout=30)
    assert_outcome_unknown(r)
    mount.release()
    wait_for(lambda: not (mount.backing / "late5" / "gonefile.txt").exists(), timeout=10,
             what="the hung delete to land on the share")

    # A search answers from the index alone: it must not find the file any more.
    def found():
        r = http_call(srv, "GET", "/api/library?q=gonefile", headers=cred.headers)
        assert r.status == 200, r
        return [e["path"] for e in r.json()["entries"]]

    wait_for(lambda: found() == [], timeout=15, what="the index to drop the deleted file",
             every=0.3)
    assert trash_items(srv, cred) == []


def test_a_move_answered_503_that_lands_later_is_taken_back_and_still_theirs(mount, srv):
    admin = login(srv)
    r = http_call(srv, "POST", "/api/users", headers=admin.headers,
                  json_body={"name": "mia", "password": AUTH_PW, "role": "member"})
    assert r.status == 201, r
    mia = must_login(srv, "mia", AUTH_PW)
    put(srv, mia, "late3/src.txt", b"moved late")
    mount.set("hang", ops=["unlink", "rename"])
    r = http_call(srv, "POST", "/api/library/move", headers=mia.headers,
                  json_body={"from": "late3/src.txt", "to": "late3/dst.txt"}, timeout=30)
    assert_outcome_unknown(r)
    assert mount.calls() >= 1, "the fault was not reached"
    # The share answers again and the hung call returns: the move answered 503 does not
    # happen after all (it replaced nothing, so it is taken back).
    mount.release()
    wait_for(lambda: sorted(os.listdir(mount.backing / "late3")) == ["src.txt"], timeout=10,
             what="the late move to be taken back")
    time.sleep(1)
    assert sorted(os.listdir(mount.backing / "late3")) == ["src.txt"]
    assert names_in(srv, mia, "late3") == ["src.txt"]
    r = http_call(srv, "GET", "/media/late3/src.txt", headers=mia.headers)
    assert r.status == 200 and r.body == b"moved late", r
    # Still hers: she may move it (an unowned file would be refused to her), and it works.
    r = http_call(srv, "POST", "/api/library/move", headers=mia.headers,
                  json_body={"from": "late3/src.txt", "to": "late3/dst.txt"})
    assert r.status == 200, r
    assert sorted(os.listdir(mount.backing / "late3")) == ["dst.txt"]
    assert names_in(srv, mia, "late3") == ["dst.txt"]


def test_an_upload_answered_503_whose_commit_lands_later_is_still_theirs(mount, srv):
    admin = login(srv)
    r = http_call(srv, "POST", "/api/users", headers=admin.headers,
                  json_body={"name": "mia", "password": AUTH_PW, "role": "member"})
    assert r.status == 201, r
    mia = must_login(srv, "mia", AUTH_PW)
    put(srv, mia, "late4/first.txt", b"first")
    # The commit's last step (the staged file leaving staging) hangs on the share.
    mount.set("hang", ops=["unlink", "rename"])
    r = http_call(srv, "PUT", "/media/late4/new.txt", headers=mia.headers,
                  body=b"uploaded while the share hung", timeout=30)
    assert_outcome_unknown(r)
    mount.release()
    # It landed: the file is there, listed, and hers (she may move it; an upload without
    # its owner in the index would be refused to her).
    wait_for(lambda: names_in(srv, mia, "late4") == ["first.txt", "new.txt"], timeout=15,
             what="the late upload to be listed", every=0.3)
    assert (mount.backing / "late4" / "new.txt").read_bytes() == b"uploaded while the share hung"
    time.sleep(1)
    r = http_call(srv, "POST", "/api/library/move", headers=mia.headers,
                  json_body={"from": "late4/new.txt", "to": "late4/moved.txt"})
    assert r.status == 200, r
    assert (mount.backing / "late4" / "moved.txt").read_bytes() == b"uploaded while the share hung"


def remount(mount, tmp_path, backing=None):
    """Unmounts the share and mounts it again (optionally another one) at the same place."""
    mount.close()
    return FaultMount(backing or mount.backing, mount.mountpoint, tmp_path)


def test_a_share_mounted_again_serves_again_without_a_restart(mount, servers, tmp_path):
    s = servers.start(mount.mountpoint, config=CONFIG, name="remount")
    cred = login(s)
    put(s, cred, "movies/a.txt", b"on the share")
    dev_before = os.stat(mount.mountpoint).st_dev
    assert (mount.backing / ".streamhub-root").exists()

    mounts = [mount]
    try:
        # The share goes away: the bare mount point has no marker.
        mount.close()
        r = http_call(s, "GET", "/media/movies/a.txt", headers=cred.headers)
        assert_error(r, 503, "storage_unavailable")
        r = http_call(s, "GET", "/media/movies/a.txt", headers=cred.headers)
        assert_error(r, 503, "storage_unavailable")

        # Mounted again: a new device number, the same marker: media answers, no restart.
        # (The kernel hands out the lowest free number: another mount takes the old one
        # first, as other mounts coming and going on a real box would.)
        (tmp_path / "p").mkdir()
        mounts.append(FaultMount(tmp_path / "placeholder", tmp_path / "pmnt", tmp_path / "p"))
        again = FaultMount(mount.backing, mount.mountpoint, tmp_path)
        mounts.append(again)
        assert os.stat(again.mountpoint).st_dev != dev_before, "the remount kept its device"

        def back():
            r = http_call(s, "GET", "/media/movies/a.txt", headers=cred.headers)
            return r.status == 200 and r.body == b"on the share"

        wait_for(back, timeout=15, what="media to answer on the remounted share", every=0.3)
        put(s, cred, "movies/b.txt", b"written after the remount")
        assert (mount.backing / "movies" / "b.txt").read_bytes() == b"written after the remount"

        # The log says once that storage went away and once that it is back (not per request).
        log = s.stderr_text()
        assert log.count("media storage: not answering or not usable") == 1, log[-3000:]
        assert log.count("media storage: answering again") == 1, log[-3000:]
        assert "mounted again on a new device" in log, log[-3000:]

        # Another library's share mounted there instead (another marker): refused, and
        # nothing is written into it.
        again.close()
        other = tmp_path / "other-share"
        shutil.copytree(mount.backing, other)
        (other / ".streamhub-root").write_text("# another library\nsomeothervolumeid\n")
        third = FaultMount(other, mount.mountpoint, tmp_path)
        mounts.append(third)
        for _ in range(3):
            r = http_call(s, "GET", "/media/movies/a.txt", headers=cred.headers)
            body = assert_error(r, 503, "storage_unavailable")
            assert "another volume" in body["message"], body
            time.sleep(0.3)
        r = http_call(s, "PUT", "/media/movies/c.txt", headers=cred.headers, body=b"no")
        assert_error(r, 503, "storage_unavailable")
        assert not (other / "movies" / "c.txt").exists()
        assert s.proc.poll() is None
    finally:
        for m in mounts[1:]:
            m.close()
        s.stop(timeout=10)
