"""A data dir that cannot be written (issue 12, item 5). Two real conditions under the
running service:

- read-only: the data dir is an ext4 file system (a loop device) mounted with
  `errors=remount-ro`, turned read-only by `mount -o remount,abort` -- what the kernel does
  when a failing SD card or disk reports errors. Linux cannot make a file system read-only
  while a process holds files open for writing (`remount,ro` is EBUSY, for bind mounts too),
  so this is the read-only that really happens under a running service; it lasts until the
  file system is unmounted, so recovery is checked after a restart.
- full: the data dir is a small tmpfs filled up; recovery is checked without a restart.

Writes that need the database answer 503 `data_dir_unavailable` (507 `no_space` when full)
naming `server.data_dir` and the directory; a media upload whose owner cannot be recorded is
refused and leaves no file; streaming and reading notes still work.
"""

import base64
import os
import subprocess

import pytest

from conftest import (AUTH_PW, assert_error, cli_add_user, http_call, login, must_login,
                      new_token, wait_for)


def sh(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    return r


def mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def unmount(path):
    while mounted(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def media_files(root):
    """Every file under the media root, staging and trash included, and every folder but
    the staging folders (relative paths)."""
    out = []
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        for n in files:
            out.append(os.path.join(rel, n))
        if not rel.startswith(".streamhub-staging"):
            out += [os.path.join(rel, n) + "/" for n in dirs if n != ".streamhub-staging"]
    return sorted(out)


def tus_create(srv, cred, filename, length):
    meta = "filename " + base64.b64encode(filename.encode()).decode()
    return http_call(srv, "POST", "/api/tus/", headers={
        **cred.headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(length),
        "Upload-Metadata": meta})


def tus_patch(srv, cred, url, offset, data):
    return http_call(srv, "PATCH", url, body=data, headers={
        **cred.headers, "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream"})


def note(srv, cred, title):
    return http_call(srv, "POST", "/api/notes", headers=cred.headers,
                     json_body={"title": title, "body": "body of " + title})


class Env:
    def __init__(self, servers, media, data, name):
        self.media, self.data = media, data
        self.srv = servers.start(media, data_dir=data, tls_listen=(), name=name)
        cli_add_user(data, "boss", admin=True)
        cli_add_user(data, "mia")
        self.member = new_token(self.srv, must_login(self.srv, "mia", AUTH_PW), "mia")
        self.session = must_login(self.srv, "mia", AUTH_PW)


@pytest.fixture()
def ext4(tmp_path):
    img, mnt = tmp_path / "data.img", tmp_path / "data"
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    sh("mkfs.ext4", "-q", "-F", img)
    mnt.mkdir()
    sh("mount", "-o", "loop,errors=remount-ro", img, mnt)
    yield img, mnt
    unmount(mnt)


def assert_read_only(r, data):
    assert_error(r, 503, "data_dir_unavailable", mentions="server.data_dir")
    msg = r.json()["message"]
    assert str(data) not in msg and "EROFS" in msg, msg  # no absolute path to clients
    assert r.header("retry-after"), r


def test_read_only_data_dir_refuses_writes_clearly_and_keeps_reads(servers, ext4, tmp_path):
    img, data = ext4
    media = tmp_path / "media"
    media.mkdir()
    env = Env(servers, media, data, "rodata")
    srv, member = env.srv, env.member
    r = http_call(srv, "PUT", "/media/kept.bin", headers=member.headers, body=b"kept bytes")
    assert r.status == 201, r
    r = note(srv, member, "before")
    assert r.status == 201, r
    nid = r.json()["id"]
    r = http_call(srv, "PUT", "/media/binned/old.bin", headers=member.headers, body=b"binned")
    assert r.status == 201, r
    assert http_call(srv, "DELETE", "/media/binned?recursive=true", headers=member.headers,
                     ).status in (200, 204)
    r = http_call(srv, "GET", "/api/trash", headers=member.headers)
    assert r.status == 200 and len(r.json()["items"]) == 1, r
    trash_id = r.json()["items"][0]["id"]
    before = media_files(media)

    sh("mount", "-o", "remount,abort", data)

    assert_read_only(http_call(srv, "POST", "/api/login",
                               json_body={"name": "mia", "password": AUTH_PW}), data)
    assert_read_only(note(srv, member, "during"), data)
    assert_read_only(note(srv, env.session, "during, by cookie"), data)
    # A new file and a replaced one: refused, nothing appears, nothing is lost.
    assert_read_only(http_call(srv, "PUT", "/media/new.bin", headers=member.headers,
                               body=b"x" * 100_000), data)
    assert_read_only(http_call(srv, "PUT", "/media/deep/er/new.bin", headers=member.headers,
                               body=b"y"), data)
    assert_read_only(http_call(srv, "PUT", "/media/kept.bin?overwrite=true",
                               headers=member.headers, body=b"replacement"), data)
    r = http_call(srv, "POST", "/api/upload", headers={
        **member.headers, "Content-Type": "multipart/form-data; boundary=XyZ"},
        body=(b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.bin\"\r\n"
              b"Content-Type: application/octet-stream\r\n\r\nmultipart\r\n--XyZ--\r\n"))
    assert r.status == 503 and r.json()["error"] == "data_dir_unavailable", r
    assert_read_only(http_call(srv, "POST", "/api/library/folder", headers=member.headers,
                               json_body={"path": "made/new"}), data)
    assert_read_only(http_call(srv, "POST", "/api/library/move", headers=member.headers,
                               json_body={"from": "kept.bin", "to": "moved.bin"}), data)
    assert_read_only(tus_create(srv, member, "t.bin", 3), data)
    # A restore whose rows cannot return goes back into the trash (owner kept there).
    assert_read_only(http_call(srv, "POST", f"/api/trash/{trash_id}/restore",
                               headers=member.headers), data)
    assert_read_only(http_call(srv, "DELETE", "/media/kept.bin", headers=member.headers), data)
    assert_read_only(http_call(srv, "POST", "/api/tokens", headers=member.headers,
                               json_body={"label": "during"}), data)
    assert_read_only(http_call(srv, "POST", "/api/shares", headers=member.headers,
                               json_body={"path": "kept.bin"}), data)
    assert_read_only(http_call(srv, "PUT", "/api/positions", headers=member.headers,
                               json_body={"path": "kept.bin", "position": 3}), data)
    assert media_files(media) == before, "a refused upload leaves nothing in the media root"
    assert (media / "kept.bin").read_bytes() == b"kept bytes"

    # Reads go on: streaming, a note, the library, with a token and with a session.
    r = http_call(srv, "GET", "/media/kept.bin", headers={"Range": "bytes=0-3"})
    assert r.status == 206 and r.body == b"kept", r
    r = http_call(srv, "GET", f"/api/notes/{nid}", headers=member.headers)
    assert r.status == 200 and r.json()["title"] == "before", r
    r = http_call(srv, "GET", f"/api/notes/{nid}", headers=env.session.headers)
    assert r.status == 200, r
    # A search is counted for analytics, best-effort: it still answers (the attack run: 503).
    r = http_call(srv, "GET", "/api/notes?q=before", headers=member.headers)
    assert r.status == 200 and [n["id"] for n in r.json()["items"]] == [nid], r
    r = http_call(srv, "GET", "/api/library?path=", headers=member.headers)
    assert r.status == 200 and [e["name"] for e in r.json()["entries"]] == ["kept.bin"], r

    r = http_call(srv, "GET", "/readyz")
    assert r.status == 503, r
    why = r.json()["checks"]["data_dir"]
    assert not why["ok"] and "server.data_dir" in why["error"], why
    assert "EROFS" in why["error"], why
    assert http_call(srv, "GET", "/healthz").status == 200

    # The disk is checked and mounted again (as after a reboot): nothing was lost, the
    # refused uploads left no file and no row, and everything works.
    srv.stop()
    unmount(data)
    subprocess.run(["e2fsck", "-fy", str(img)], capture_output=True, timeout=60)
    sh("mount", "-o", "loop", img, data)
    srv = servers.start(media, data_dir=data, tls_listen=(), name="rodata-again")
    member = new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-again")
    r = http_call(srv, "GET", "/api/library?path=", headers=member.headers)
    assert r.status == 200 and [e["name"] for e in r.json()["entries"]] == ["kept.bin"], r
    assert media_files(media) == before
    r = http_call(srv, "GET", f"/api/notes/{nid}", headers=member.headers)
    assert r.status == 200 and r.json()["title"] == "before", r
    assert note(srv, member, "after").status == 201
    r = http_call(srv, "POST", f"/api/trash/{trash_id}/restore", headers=member.headers)
    assert r.status == 200, r
    assert (media / "binned" / "old.bin").read_bytes() == b"binned"
    # Restored as the member's: they may delete it again.
    r = http_call(srv, "DELETE", "/media/binned?recursive=true", headers=member.headers)
    assert r.status in (200, 204), r
    r = http_call(srv, "PUT", "/media/new.bin", headers=member.headers, body=b"now")
    assert r.status == 201, r
    # Indexed as the member's: they may replace it.
    r = http_call(srv, "PUT", "/media/new.bin?overwrite=true", headers=member.headers,
                  body=b"again")
    assert r.status == 201, r


@pytest.fixture()
def small_tmpfs(tmp_path):
    mnt = tmp_path / "data"
    mnt.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt)
    yield mnt
    unmount(mnt)


def fill(dir_):
    """Fills the file system of `dir_` to the last byte; returns the filler's path."""
    filler = dir_ / "filler"
    with open(filler, "wb", buffering=0) as f:
        for piece in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * piece)
            except OSError:
                pass
    return filler


def test_full_data_dir_is_507_naming_it_and_recovers_without_a_restart(servers, small_tmpfs,
                                                                       tmp_path):
    data = small_tmpfs
    media = tmp_path / "media"
    media.mkdir()
    env = Env(servers, media, data, "fulldata")
    srv, member = env.srv, env.member
    r = note(srv, member, "before")
    assert r.status == 201, r
    nid = r.json()["id"]
    r = tus_create(srv, member, "resumed.bin", 10)
    assert r.status == 201, r
    tus_url = r.header("location")
    fill(data)

    # The write-ahead log may still have room for a few notes; it cannot grow for long.
    big = "n" * 200_000
    answers = []
    for i in range(60):
        r = http_call(srv, "POST", "/api/notes", headers=member.headers,
                      json_body={"title": f"full {i}", "body": big})
        answers.append(r.status)
        if r.status != 201:
            break
    assert_error(r, 507, "no_space", mentions="server.data_dir")
    assert str(data) not in r.json()["message"], r.json()
    assert set(answers[:-1]) <= {201}, answers
    r = http_call(srv, "PUT", "/media/while-full.bin", headers=member.headers, body=b"z" * 1000)
    assert_error(r, 507, "no_space", mentions="server.data_dir")
    assert not (media / "while-full.bin").exists(), "a refused upload leaves no file"
    # The last PATCH of a resumable upload: refused at its commit, the upload is kept.
    r = tus_patch(srv, member, tus_url, 0, b"0123456789")
    assert_error(r, 507, "no_space", mentions="server.data_dir")
    assert not (media / "resumed.bin").exists()

    r = http_call(srv, "GET", f"/api/notes/{nid}", headers=member.headers)
    assert r.status == 200, r
    r = http_call(srv, "GET", "/readyz")
    assert r.status == 503 and "ENOSPC" in r.json()["checks"]["data_dir"]["error"], r
    assert srv.proc.poll() is None, "the server stays up"

    os.remove(data / "filler")
    r = wait_for(lambda: (lambda r: r if r.status == 201 else None)(note(srv, member, "after")),
                 what="a note once there is space again")
    r = http_call(srv, "PUT", "/media/while-full.bin", headers=member.headers, body=b"z")
    assert r.status == 201, r
    # The upload resumes where its recorded offset says, and completes.
    r = http_call(srv, "HEAD", tus_url, headers={**member.headers, "Tus-Resumable": "1.0.0"})
    assert r.status == 200, r
    offset = int(r.header("upload-offset"))
    r = tus_patch(srv, member, tus_url, offset, b"0123456789"[offset:])
    assert r.status == 204, r
    assert (media / "resumed.bin").read_bytes() == b"0123456789"
    # Both are the member's in the index: they may delete them.
    for name in ("while-full.bin", "resumed.bin"):
        r = http_call(srv, "DELETE", "/media/" + name, headers=member.headers)
        assert r.status == 204, r
    r, cred = login(srv, "mia", AUTH_PW)
    assert r.status == 200 and cred, r
    assert http_call(srv, "GET", "/readyz").status == 200
