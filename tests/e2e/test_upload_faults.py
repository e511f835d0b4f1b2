"""Uploads under faults (issue #5): size limits, disk full, permission denied, kill -9 and
client disconnects mid-body, racing uploads to one name, and constant memory for a 1 GiB body.

The contract (docs/CONTRACT.md, "Uploads and file management"): nothing partial is ever
visible under a name, in listings or to GET; the node's `<media>/.streamhub-staging/<node-id>/` is
emptied at start.
Everything talks to 127.0.0.1 only.
"""

import contextlib
import os
import random
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import (
    rss_kib,
    AUTH_PW,
    BIN,
    Server,
    assert_error,
    clean_env,
    cli_add_user,
    curl_fetch,
    http_call,
    must_login,
    new_token,
    read_response,
    wait_for,
)

STAGING = ".streamhub-staging"
MIB = 1024 * 1024
NOBODY = 65534


# --- helpers (local to this module) --------------------------------------------------------


def rand(n, seed):
    return random.Random(seed).randbytes(n)


def staging_files(root):
    """Files (not folders: the node's own folder stays) under the staging folder."""
    st = Path(root) / STAGING
    if not st.exists():
        return []
    return sorted(str(p.relative_to(st)) for p in st.rglob("*") if not p.is_dir())


def wait_staging_empty(root, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        left = staging_files(root)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)



def names_in(srv, cred, d):
    r = http_call(srv, "GET", "/api/library?path=" + quote(d, safe=""), headers=cred.headers)
    if r.status == 404:
        return {}
    assert r.status == 200, r
    return {e["name"]: e for e in r.json()["entries"]}


def put(srv, cred, target, body, query=""):
    return http_call(srv, "PUT", "/media/" + target + query, headers=cred.headers, body=body,
                     timeout=30)


class Creds:
    def __init__(self, srv, add_users=True):
        if add_users:
            cli_add_user(srv.data_dir, "boss", admin=True)
            cli_add_user(srv.data_dir, "mia")
        self.admin = new_token(srv, must_login(srv, "boss", AUTH_PW), "boss-faults")
        self.member = new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-faults")


class RawPut:
    """A PUT over a raw socket whose body we send piece by piece."""

    def __init__(self, port, target, headers, length=None, chunked=False, timeout=30.0):
        self.chunked = chunked
        self.sent = 0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        lines = [f"PUT {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {length}")
        lines.append("Connection: close")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))

    def send(self, data):
        if self.chunked:
            self.sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            self.sock.sendall(data)
        self.sent += len(data)

    def finish(self):
        if self.chunked:
            self.sock.sendall(b"0\r\n\r\n")

    def answered(self, timeout=0.0):
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def response(self, timeout=30.0):
        return read_response(self.sock, timeout=timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def stream_until_answer(up, total, piece, sleep=0.0, finish=True):
    """Send `total` bytes in `piece`-sized writes unless the server answers first.

    Returns (response, send_error). The answer is read as soon as it is readable, so an
    early reply (413, 507) is seen before the server closes the connection.
    """
    err = None
    try:
        while up.sent < total:
            if up.answered():
                break
            n = min(len(piece), total - up.sent)
            up.send(piece[:n])
            if sleep:
                time.sleep(sleep)
        else:
            if finish:
                up.finish()
    except OSError as e:  # the server stopped reading and closed: its answer is still queued
        err = e
    return up.response(), err


# --- size limit ---------------------------------------------------------------------------

LIMIT = 1_000_000


@pytest.fixture(scope="module")
def limited(module_servers, tmp_path_factory):
    base = tmp_path_factory.mktemp("limit-base")
    root = base / "media"
    root.mkdir()
    srv = module_servers.start(root, tls_listen=(), config=f"[uploads]\nmax_bytes = {LIMIT}\n",
                               name="uploads-limit")
    srv.creds = Creds(srv)
    return srv


def test_declared_length_over_limit_is_413_before_the_body(limited):
    c = limited.creds
    up = RawPut(limited.port, "/media/lim/declared.bin", c.member.headers, length=2_000_000)
    try:
        # nothing of the body is sent: the answer must come anyway, promptly
        assert up.answered(timeout=5.0), "no answer to an over-limit Content-Length without a body"
        r = up.response()
    finally:
        up.close()
    assert_error(r, 413, "too_large")
    assert not (limited.media_root / "lim/declared.bin").exists()
    assert staging_files(limited.media_root) == []


def test_limit_is_inclusive(limited):
    c = limited.creds
    body = rand(LIMIT, "at-limit")
    r = put(limited, c.member, "lim/exact.bin", body)
    assert r.status == 201, r
    assert (limited.media_root / "lim/exact.bin").read_bytes() == body
    up = RawPut(limited.port, "/media/lim/one-more.bin", c.member.headers, length=LIMIT + 1)
    try:
        assert up.answered(timeout=5.0), "no answer to Content-Length = limit + 1"
        assert_error(up.response(), 413, "too_large")
    finally:
        up.close()
    assert not (limited.media_root / "lim/one-more.bin").exists()


def test_chunked_body_growing_past_limit_is_413_and_nothing_kept(limited):
    c = limited.creds
    up = RawPut(limited.port, "/media/lim/chunked.bin", c.member.headers, chunked=True)
    try:
        r, _ = stream_until_answer(up, 3_000_000, rand(64 * 1024, "chunk"))
    finally:
        up.close()
    assert_error(r, 413, "too_large")
    assert up.sent > LIMIT, f"413 after only {up.sent} bytes of a chunked body (limit {LIMIT})"
    assert not (limited.media_root / "lim/chunked.bin").exists()
    assert "chunked.bin" not in names_in(limited, c.member, "lim")
    assert wait_staging_empty(limited.media_root) == []
    assert http_call(limited, "GET", "/media/lim/chunked.bin").status == 404


def test_chunked_body_under_limit_is_stored(limited):
    c = limited.creds
    body = rand(LIMIT - 10, "chunked-ok")
    up = RawPut(limited.port, "/media/lim/chunked-ok.bin", c.member.headers, chunked=True)
    try:
        for i in range(0, len(body), 100_000):
            up.send(body[i:i + 100_000])
        up.finish()
        r = up.response()
    finally:
        up.close()
    assert r.status == 201 and r.json()["size"] == len(body), r
    assert (limited.media_root / "lim/chunked-ok.bin").read_bytes() == body


def test_curl_chunked_upload_past_limit_is_413(limited, tmp_path):
    c = limited.creds
    src = tmp_path / "big"
    src.write_bytes(rand(1_500_000, "curl-chunked"))
    r = curl_fetch(limited.url("/media/lim/curl-chunked.bin"),
                   headers=[f"Authorization: Bearer {c.member.token}",
                            "Transfer-Encoding: chunked"],
                   extra=["-T", str(src)])
    assert_error(r, 413, "too_large")
    assert not (limited.media_root / "lim/curl-chunked.bin").exists()
    assert wait_staging_empty(limited.media_root) == []


def test_multipart_file_past_limit_is_413_and_nothing_kept(limited, tmp_path):
    c = limited.creds
    src = tmp_path / "big"
    src.write_bytes(rand(1_500_000, "mp-big"))
    r = curl_fetch(limited.url("/api/upload?dir=limmp"),
                   headers=[f"Authorization: Bearer {c.member.token}"],
                   extra=["-F", f"f=@{src};filename=big.bin"])
    assert_error(r, 413, "too_large")
    assert not (limited.media_root / "limmp/big.bin").exists()
    assert wait_staging_empty(limited.media_root) == []


# --- disk full ----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs_server(module_servers, tmp_path_factory, size, name, env=None, prepare=None):
    """A server whose media root is a fresh tmpfs of `size` (e.g. "2m"), unmounted after."""
    mnt = tmp_path_factory.mktemp(f"{name}-base") / "media"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"cannot mount a {size} tmpfs at {mnt}: rc={r.returncode} {r.stderr}"
    srv = None
    try:
        if prepare:
            prepare(mnt)
        srv = module_servers.start(mnt, tls_listen=(), name=name, env=env)
        srv.creds = Creds(srv)
        yield srv
    finally:
        if srv is not None:
            srv.stop(timeout=5)
        u = subprocess.run(["umount", str(mnt)], capture_output=True, text=True, timeout=30)
        if u.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)
            raise AssertionError(f"umount {mnt} failed: {u.stderr}")


@pytest.fixture(scope="module")
def fullfs(module_servers, tmp_path_factory):
    def small(mnt):
        (mnt / "small.txt").write_bytes(b"already here\n")
    with tmpfs_server(module_servers, tmp_path_factory, "2m", "uploads-tmpfs", prepare=small) as srv:
        yield srv


def test_disk_full_is_507_and_nothing_kept(fullfs):
    c = fullfs.creds
    root = fullfs.media_root
    body = rand(3 * MIB, "full")
    up = RawPut(fullfs.port, "/media/full/big.bin", c.member.headers, length=len(body))
    try:
        r, _ = stream_until_answer(up, len(body), body[:256 * 1024])
    finally:
        up.close()
    assert_error(r, 507, "no_space")
    assert not (root / "full/big.bin").exists()
    assert "big.bin" not in names_in(fullfs, c.member, "full")
    assert wait_staging_empty(root) == []
    assert http_call(fullfs, "GET", "/media/full/big.bin").status == 404
    # the service goes on
    assert http_call(fullfs, "GET", "/healthz").status == 200
    g = http_call(fullfs, "GET", "/media/small.txt")
    assert g.status == 200 and g.body == b"already here\n", g
    small = rand(100_000, "fits")
    r = put(fullfs, c.member, "full/small.bin", small)
    assert r.status == 201, r
    assert (root / "full/small.bin").read_bytes() == small
    assert http_call(fullfs, "GET", "/media/full/small.bin").body == small


def test_declared_length_over_free_space_is_507_before_the_body(fullfs):
    c = fullfs.creds
    up = RawPut(fullfs.port, "/media/full/declared.bin", c.member.headers, length=3 * MIB)
    try:
        # nothing of the body is sent: a phone should not push 3 MiB to learn the disk is full
        assert up.answered(timeout=5.0), "no answer to a Content-Length over the free space"
        r = up.response()
    finally:
        up.close()
    assert_error(r, 507, "no_space")
    assert not (fullfs.media_root / "full/declared.bin").exists()
    assert wait_staging_empty(fullfs.media_root) == []


def test_chunked_put_filling_the_disk_is_507_and_nothing_kept(fullfs):
    c = fullfs.creds
    body = rand(3 * MIB, "full-chunked")
    up = RawPut(fullfs.port, "/media/full/chunked.bin", c.member.headers, chunked=True)
    try:
        r, _ = stream_until_answer(up, len(body), body[:256 * 1024])
    finally:
        up.close()
    assert_error(r, 507, "no_space")
    assert not (fullfs.media_root / "full/chunked.bin").exists()
    assert wait_staging_empty(fullfs.media_root) == []
    assert http_call(fullfs, "GET", "/healthz").status == 200


def test_disk_full_with_multipart_is_507(fullfs, tmp_path):
    c = fullfs.creds
    src = tmp_path / "big"
    src.write_bytes(rand(3 * MIB, "full-mp"))
    r = curl_fetch(fullfs.url("/api/upload?dir=fullmp"),
                   headers=[f"Authorization: Bearer {c.member.token}"],
                   extra=["-F", f"f=@{src};filename=big.bin"])
    assert_error(r, 507, "no_space")
    assert not (fullfs.media_root / "fullmp/big.bin").exists()
    assert wait_staging_empty(fullfs.media_root) == []
    assert http_call(fullfs, "GET", "/healthz").status == 200


@pytest.fixture(scope="module")
def reservefs(module_servers, tmp_path_factory):
    """A 64 MiB filesystem with a 24 MiB free-space reserve ([quotas] min_free_bytes)."""
    env = {"STREAMHUB_QUOTAS_MIN_FREE_BYTES": str(24 * MIB)}
    with tmpfs_server(module_servers, tmp_path_factory, "64m", "uploads-reserve", env=env) as srv:
        yield srv


def test_chunked_put_stops_at_the_free_space_reserve(reservefs):
    """A body with no announced length cannot be judged at the start: it is stopped once the
    disk's free space falls below the reserve (checked every 16 MiB), not when the disk is
    full, and what it wrote is removed."""
    c, root = reservefs.creds, reservefs.media_root
    body = rand(60 * MIB, "reserve")
    up = RawPut(reservefs.port, "/media/r/huge.bin", c.member.headers, chunked=True)
    try:
        r, _ = stream_until_answer(up, len(body), body[:256 * 1024])
    finally:
        up.close()
    assert_error(r, 507, "no_space")
    assert not (root / "r/huge.bin").exists()
    assert wait_staging_empty(root) == []
    st = os.statvfs(root)
    assert st.f_bavail * st.f_frsize > 60 * MIB, "the refused upload's bytes were not given back"
    # A body that leaves the reserve free is stored.
    piece = rand(256 * 1024, "under-reserve")
    small = piece * 80  # 20 MiB: stream_until_answer sends `piece` over and over
    up = RawPut(reservefs.port, "/media/r/fits.bin", c.member.headers, chunked=True)
    try:
        r, _ = stream_until_answer(up, len(small), piece)
    finally:
        up.close()
    assert r.status == 201, r
    assert (root / "r/fits.bin").read_bytes() == small


# --- permission denied (the server runs as nobody) ----------------------------------------


@pytest.fixture(scope="module")
def unprivileged():
    base = Path(tempfile.mkdtemp(prefix="streamhub-e2e-perm-"))  # pytest's tmp is 0700 root
    srv = None
    try:
        os.chmod(base, 0o755)
        root, data = base / "media", base / "data"
        root.mkdir()
        data.mkdir()
        (root / "open").mkdir()
        (root / "open/hello.txt").write_bytes(b"hello from nobody's root\n")
        locked = root / "locked"
        locked.mkdir(mode=0o755)
        (locked / "inside.txt").write_bytes(b"root owned\n")
        os.chmod(locked, 0o755)
        cli_add_user(data, "boss", admin=True, init=True)
        cli_add_user(data, "mia")
        for p in [base / "media", base / "data"]:
            for dirpath, dirnames, filenames in os.walk(p):
                for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
                    os.lchown(n, NOBODY, NOBODY)
        # the locked folder (and its file) stay root's
        os.chown(locked, 0, 0)
        os.chown(locked / "inside.txt", 0, 0)
        assert (locked.stat().st_uid, locked.stat().st_mode & 0o777) == (0, 0o755)

        stderr_path = base / "server.stderr.log"
        errf = open(stderr_path, "wb")
        proc = subprocess.Popen(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(BIN),
             "serve", "--listen", "127.0.0.1:0", "--media-root", str(root),
             "--data-dir", str(data), "--no-discovery"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
            env=clean_env(), cwd=str(base),
        )
        errf.close()
        srv = Server(proc, stderr_path, root, data, base)
        srv.wait_listening(1, 0)
        srv.creds = Creds(srv, add_users=False)
        yield srv
    finally:
        if srv is not None:
            srv.stop(timeout=5)
            try:
                srv.proc.stdout.close()
            except Exception:
                pass
        shutil.rmtree(base, ignore_errors=True)


def test_server_really_runs_unprivileged(unprivileged):
    with open(f"/proc/{unprivileged.proc.pid}/status") as f:
        uid_line = next(line for line in f if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(NOBODY)] * 4, uid_line


def assert_permission_denied(r, root):
    """403 permission_denied naming the folder 'locked' relative to the media root."""
    body = assert_error(r, 403, "permission_denied", mentions="locked")
    assert str(root) not in body["message"], (
        f"the message should name the folder relative to the media root, not the server's "
        f"absolute path: {body}")
    return body


@pytest.mark.parametrize("target", ["locked/x.bin", "locked/newsub/x.bin"])
def test_permission_denied_names_the_folder(unprivileged, target):
    srv, c = unprivileged, unprivileged.creds
    root = srv.media_root
    before = sorted(os.listdir(root / "locked"))
    r = put(srv, c.member, target, rand(200_000, target))
    assert_permission_denied(r, root)
    assert sorted(os.listdir(root / "locked")) == before
    assert wait_staging_empty(root) == []
    # the service keeps serving, reads and writes elsewhere
    assert http_call(srv, "GET", "/healthz").status == 200
    assert http_call(srv, "GET", "/media/open/hello.txt").body == b"hello from nobody's root\n"
    assert http_call(srv, "GET", "/media/locked/inside.txt").body == b"root owned\n"
    ok = rand(1000, "ok-" + target)
    name = "open/ok-" + target.replace("/", "_")
    r = put(srv, c.member, name, ok)
    assert r.status == 201, r
    assert (root / name).read_bytes() == ok


def test_permission_denied_folder_create(unprivileged):
    srv, c = unprivileged, unprivileged.creds
    r = http_call(srv, "POST", "/api/library/folder", headers=c.member.headers,
                  json_body={"path": "locked/newdir"})
    assert_permission_denied(r, srv.media_root)
    assert not (srv.media_root / "locked/newdir").exists()


def test_permission_denied_multipart(unprivileged):
    srv, c = unprivileged, unprivileged.creds
    bnd = "permBoundary"
    data = (f"--{bnd}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"m.bin\"\r\n\r\n"
            f"multipart body\r\n--{bnd}--\r\n").encode()
    r = http_call(srv, "POST", "/api/upload?dir=locked", body=data,
                  headers={**c.member.headers,
                           "Content-Type": f"multipart/form-data; boundary={bnd}"})
    assert_permission_denied(r, srv.media_root)
    assert not (srv.media_root / "locked/m.bin").exists()
    assert wait_staging_empty(srv.media_root) == []


# --- kill -9 mid-write --------------------------------------------------------------------


def test_kill_9_mid_upload_leaves_nothing_after_restart(module_servers, tmp_path_factory):
    base = tmp_path_factory.mktemp("crash-base")
    root, data = base / "media", base / "data"
    root.mkdir()
    (root / "crash").mkdir()
    srv = module_servers.start(root, data_dir=data, tls_listen=(), name="uploads-crash")
    c = Creds(srv)
    total = 50 * MIB
    piece = rand(MIB, "crash")
    up = RawPut(srv.port, "/media/crash/partial.bin", c.member.headers, length=total)
    try:
        while up.sent < 8 * MIB:
            up.send(piece)
            time.sleep(0.02)
        # the partial upload is in staging, not under its name
        wait_for(lambda: any(f.endswith(".part") for f in staging_files(root))
                 and sum((root / STAGING / f).stat().st_size for f in staging_files(root)) > MIB,
                 10, "a growing .part file in the staging folder")
        assert not (root / "crash/partial.bin").exists()
        srv.proc.kill()  # SIGKILL mid-body
        srv.proc.wait(timeout=10)
    finally:
        up.close()
    left = staging_files(root)
    assert left, "kill -9 should have left the partial upload in staging"
    assert not (root / "crash/partial.bin").exists()

    srv2 = module_servers.start(root, data_dir=data, tls_listen=(), name="uploads-crash2")
    assert staging_files(root) == [], "the staging folder is not emptied at start"
    assert "removed partial uploads" in srv2.stderr_text(), srv2.stderr_text()[-3000:]
    c2 = Creds(srv2, add_users=False)
    assert "partial.bin" not in names_in(srv2, c2.member, "crash")
    assert os.listdir(root / "crash") == []
    r = http_call(srv2, "GET", "/media/crash/partial.bin")
    assert_error(r, 404, "not_found")
    # and the name is free for a real upload
    r = put(srv2, c2.member, "crash/partial.bin", b"complete now")
    assert r.status == 201, r


# --- the shared faults server: disconnects, races, memory ---------------------------------


@pytest.fixture(scope="module")
def faults(module_servers, tmp_path_factory):
    base = tmp_path_factory.mktemp("faults-base")
    root = base / "media"
    root.mkdir()
    srv = module_servers.start(root, tls_listen=(), name="uploads-faults")
    srv.creds = Creds(srv)
    return srv


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_client_disconnect_mid_body_leaves_nothing(faults, chunked):
    c, root = faults.creds, faults.media_root
    name = f"gone/{'chunked' if chunked else 'cl'}.bin"
    piece = rand(256 * 1024, "gone")
    up = RawPut(faults.port, "/media/" + name, c.member.headers, length=10 * MIB, chunked=chunked)
    try:
        while up.sent < 2 * MIB:
            up.send(piece)
        wait_for(lambda: any(f.endswith(".part") for f in staging_files(root)), 10,
                 "the upload to reach the staging folder")
    finally:
        up.close()  # gone mid-body
    assert wait_staging_empty(root, timeout=5) == [], "partial upload left in staging"
    assert not (root / name).exists()
    assert Path(name).name not in names_in(faults, c.member, "gone")
    assert http_call(faults, "GET", "/media/" + name).status == 404
    assert http_call(faults, "GET", "/healthz").status == 200


def test_concurrent_puts_to_one_new_name(faults):
    c, root = faults.creds, faults.media_root
    for i in range(3):
        name = f"race/r{i}.bin"
        bodies = [rand(4 * MIB, f"race-a-{i}"), rand(4 * MIB + 17, f"race-b-{i}")]
        creds = [c.member, c.admin]
        ups = [RawPut(faults.port, "/media/" + name, creds[k].headers, length=len(bodies[k]))
               for k in range(2)]
        half = 2 * MIB
        try:
            for k in range(2):  # both are in flight before either completes
                ups[k].send(bodies[k][:half])
            results = [None, None]

            def finish(k):
                try:
                    ups[k].send(bodies[k][half:])
                    results[k] = ups[k].response()
                except Exception as e:  # pragma: no cover - reported below
                    results[k] = e

            ts = [threading.Thread(target=finish, args=(k,)) for k in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
        finally:
            for u in ups:
                u.close()
        statuses = [getattr(r, "status", r) for r in results]
        assert sorted(statuses) == [201, 409], f"round {i}: {results!r}"
        win = statuses.index(201)
        assert_error(results[1 - win], 409, "exists")
        assert results[win].json()["size"] == len(bodies[win])
        assert (root / name).read_bytes() == bodies[win], f"round {i}: disk != winner's bytes"
        assert wait_staging_empty(root) == []


def test_one_gib_upload_in_constant_memory(faults):
    c, root = faults.creds, faults.media_root
    # warm up the upload path, then take the idle RSS
    assert put(faults, c.member, "mem/warm.bin", rand(2 * MIB, "warm")).status == 201
    time.sleep(0.3)
    pid = faults.proc.pid
    idle = rss_kib(pid)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                samples.append(rss_kib(pid))
            except (OSError, AssertionError):
                break
            time.sleep(0.02)

    total = 1024 * MIB
    buf = rand(MIB, "gib")
    sampler = threading.Thread(target=sample, daemon=True)
    up = RawPut(faults.port, "/media/mem/gib.bin", c.member.headers, length=total, timeout=120)
    t0 = time.monotonic()
    sampler.start()
    try:
        for _ in range(1024):
            up.send(buf)
        r = up.response(timeout=120)
    finally:
        stop.set()
        sampler.join(5)
        up.close()
    took = time.monotonic() - t0
    try:
        assert r.status == 201, r
        assert r.json()["size"] == total
        p = root / "mem/gib.bin"
        assert p.stat().st_size == total
        with open(p, "rb") as f:
            for off in (0, 511 * MIB + 12345, total - MIB):
                f.seek(off)
                got = f.read(4096)
                k = off % MIB
                assert got == (buf + buf)[k:k + 4096], f"wrong bytes at offset {off}"
        print(f"1 GiB upload: {took:.1f}s, idle {idle} KiB, peak {max(samples)} KiB, "
              f"{len(samples)} samples")
        assert len(samples) >= 5, f"too few RSS samples ({len(samples)}) in {took:.1f}s"
        peak = max(samples)
        assert peak < idle + 40 * 1024, (
            f"RSS grew from {idle} KiB idle to {peak} KiB during a 1 GiB upload "
            f"(limit idle + 40 MiB); {len(samples)} samples in {took:.1f}s")
    finally:
        try:
            (root / "mem/gib.bin").unlink()
        except OSError:
            pass


def test_permission_denied_on_a_move_names_the_folder_that_is_not_writable(unprivileged):
    srv, c = unprivileged, unprivileged.creds
    r = http_call(srv, "POST", "/api/library/move", headers=c.admin.headers,
                  json_body={"from": "locked/inside.txt", "to": "open/moved.txt"})
    body = assert_permission_denied(r, srv.media_root)
    assert "open" not in body["message"].replace("locked", ""), body
    assert (srv.media_root / "locked/inside.txt").exists()
    assert not (srv.media_root / "open/moved.txt").exists()
