"""The media root has an identity (issue 11): an unmounted disk is never taken for an empty
one. A bind mount is unmounted (`umount -l`) under the running service: writes get 503 with
a message naming the problem and land nowhere, reads get 503, `/readyz` says why, the index
and its owners are kept — and when the disk is mounted again everything works, with no
restart. A start while the disk is away neither creates a marker nor takes the empty folder.
"""

import base64
import os
import subprocess

import pytest

from conftest import assert_error, http_call, wait_for
from test_upload_faults import Creds

MARKER = ".streamhub-root"


def sh(*args):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{args}: {r.stderr}"


def mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


@pytest.fixture()
def disk(tmp_path):
    """A "disk" (a folder) bind-mounted at the media root; unmounted at the end."""
    src, mnt = tmp_path / "disk", tmp_path / "media"
    src.mkdir()
    mnt.mkdir()
    sh("mount", "--bind", str(src), str(mnt))
    yield src, mnt
    while mounted(mnt):
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def ready(srv):
    r = http_call(srv, "GET", "/readyz")
    return r.status, r.json()


def test_unmounted_root_is_unavailable_and_nothing_is_lost(servers, disk):
    src, mnt = disk
    srv = servers.start(mnt, tls_listen=(), name="identity")
    c = Creds(srv)
    assert (src / MARKER).exists(), "a new install marks its media root"
    r = http_call(srv, "PUT", "/media/mine/song.mp3", headers=c.member.headers, body=b"la la")
    assert r.status == 201, r

    sh("umount", "-l", str(mnt))
    assert not mounted(mnt) and os.listdir(mnt) == []
    r = http_call(srv, "PUT", "/media/new.txt", headers=c.member.headers, body=b"lost?")
    assert_error(r, 503, "storage_unavailable", mentions=MARKER)
    r = http_call(srv, "POST", "/api/library/folder", headers=c.member.headers,
                  json_body={"path": "newdir"})
    assert_error(r, 503, "storage_unavailable")
    meta = "filename " + base64.b64encode(b"t.bin").decode()
    r = http_call(srv, "POST", "/api/tus/", headers={
        **c.member.headers, "Tus-Resumable": "1.0.0", "Upload-Length": "3",
        "Upload-Metadata": meta})
    assert_error(r, 503, "storage_unavailable")
    r = http_call(srv, "DELETE", "/media/mine/song.mp3", headers=c.member.headers)
    assert_error(r, 503, "storage_unavailable")
    assert os.listdir(mnt) == [], "nothing was written into the bare mount point"
    assert_error(http_call(srv, "GET", "/media/mine/song.mp3"), 503, "storage_unavailable")
    status, body = ready(srv)
    assert status == 503 and body["status"] == "not_ready", body
    assert MARKER in body["checks"]["media_root"]["error"], body
    # The index is kept: a search still finds the file, with its owner.
    r = http_call(srv, "GET", "/api/library?q=song", headers=c.member.headers)
    assert r.status == 200 and [e["path"] for e in r.json()["entries"]] == ["mine/song.mp3"], r

    sh("mount", "--bind", str(src), str(mnt))
    r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(
        http_call(srv, "GET", "/media/mine/song.mp3")), what="the disk to be served again")
    assert r.body == b"la la"
    assert ready(srv)[0] == 200
    # The owner is still the owner (a member deletes only her own uploads).
    r = http_call(srv, "DELETE", "/media/mine/song.mp3", headers=c.member.headers)
    assert r.status == 204, r
    assert not (src / "mine/song.mp3").exists()


def test_a_start_while_the_disk_is_away_does_not_take_the_empty_folder(servers, disk):
    src, mnt = disk
    (src / "film.mkv").write_bytes(b"film")
    srv = servers.start(mnt, tls_listen=(), name="identity-first")
    c = Creds(srv)
    assert http_call(srv, "GET", "/media/film.mkv").status == 200
    data = srv.data_dir
    assert srv.stop() == 0
    sh("umount", "-l", str(mnt))

    srv = servers.start(mnt, data_dir=data, tls_listen=(), name="identity-away")
    assert not (mnt / MARKER).exists(), "no marker is made on the bare mount point"
    status, body = ready(srv)
    assert status == 503 and MARKER in body["checks"]["media_root"]["error"], body
    r = http_call(srv, "PUT", "/media/x.txt", headers=c.member.headers, body=b"x")
    assert_error(r, 503, "storage_unavailable")
    assert os.listdir(mnt) == []

    sh("mount", "--bind", str(src), str(mnt))
    wait_for(lambda: ready(srv)[0] == 200, what="ready once the disk is back")
    r = http_call(srv, "PUT", "/media/x.txt", headers=c.member.headers, body=b"x")
    assert r.status == 201, r
    assert (src / "x.txt").read_bytes() == b"x"


def test_another_disk_is_refused(servers, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    srv = servers.start(root, tls_listen=(), name="identity-other")
    c = Creds(srv)
    data = srv.data_dir
    assert srv.stop() == 0
    (root / MARKER).write_text("some-other-volume\n")
    srv = servers.start(root, data_dir=data, tls_listen=(), name="identity-other2")
    r = http_call(srv, "PUT", "/media/x.txt", headers=c.member.headers, body=b"x")
    body = assert_error(r, 503, "storage_unavailable", mentions="another volume")
    assert "some-other-volume" not in body["message"], "a file's content is not echoed to clients"
    assert not (root / "x.txt").exists()


def test_a_fifo_in_place_of_the_marker_stalls_nothing(servers, tmp_path):
    import signal
    import threading
    import time
    root = tmp_path / "media"
    root.mkdir()
    srv = servers.start(root, tls_listen=(), name="identity-fifo")
    marker = (root / MARKER).read_bytes()
    (root / "f.txt").write_bytes(b"f")
    (root / MARKER).unlink()
    os.mkfifo(root / MARKER)
    answers = []

    def get():
        t = time.monotonic()
        r = http_call(srv, "GET", "/media/f.txt", timeout=30)
        answers.append((r.status, time.monotonic() - t))

    # More requests than the blocking pool has threads (128): none may get stuck.
    threads = [threading.Thread(target=get) for _ in range(160)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 160
    assert all(s == 503 for s, _ in answers), set(s for s, _ in answers)
    assert max(d for _, d in answers) < 10, max(d for _, d in answers)
    (root / MARKER).unlink()
    (root / MARKER).write_bytes(marker)
    r = http_call(srv, "GET", "/media/f.txt")
    assert r.status == 200 and r.body == b"f", r
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=20) == 0
