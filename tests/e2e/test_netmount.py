"""A media root on a network mount that hangs, fails or goes stale (issue 15, NFS/SMB part).

The media root is a fault-injecting FUSE passthrough (faultfs.py, driven through
netmount_util.FaultMount), standing in for an NFS share: a test makes its calls hang (a dead
server on a hard mount), fail with EIO, or fail with ESTALE, then lets it go. Runs as root
(mounting FUSE); always unmounted at teardown.
"""

import os
import threading
import time

import pytest

from conftest import (
    AUTH_PW,
    assert_error,
    do_setup,
    http_call,
    must_login,
    raw_get,
    wait_for,
    spawn,
    wait_exit,
)
from netmount_util import FaultMount

TIMEOUT_SECS = 3
MAX_THREADS = 32
HUNG_READS = 200
FAST = 1.0  # what "answers at once" means here, in seconds

FILES = {
    "movies/a.bin": os.urandom(256 * 1024),
    "movies/b.bin": os.urandom(64 * 1024),
    "estale.bin": b"the second open finds it\n" * 100,
    "eio.bin": os.urandom(200 * 1024),
}

CONFIG = f"""
[storage]
timeout_secs = {TIMEOUT_SECS}
max_threads = {MAX_THREADS}
"""


@pytest.fixture()
def mount(tmp_path):
    backing = tmp_path / "share"
    for rel, data in FILES.items():
        p = backing / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    with FaultMount(backing, tmp_path / "mnt", tmp_path) as m:
        yield m


@pytest.fixture()
def srv(mount, servers):
    """A server whose media root is the mount (stopped before the mount is closed)."""
    s = servers.start(mount.mountpoint, config=CONFIG, name="netmount")
    yield s
    mount.release()
    s.stop(timeout=10)


def stopped(proc):
    """The exit code of a start that should fail (None, and killed, if it kept running)."""
    rc = wait_exit(proc, 20)
    if rc is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    return rc


def timed(fn):
    t = time.monotonic()
    r = fn()
    return r, time.monotonic() - t


def media(srv, rel, timeout=30.0):
    return raw_get(srv.port, f"/media/{rel}", timeout=timeout)


def test_a_hung_mount_leaves_the_rest_answering_and_recovers_by_itself(mount, srv):
    do_setup(srv)
    cred = must_login(srv, "root", AUTH_PW)
    r = media(srv, "movies/a.bin")
    assert r.status == 200 and r.body == FILES["movies/a.bin"], r

    # The server stops answering: every call on the share blocks.
    mount.set("hang")
    results = []
    lock = threading.Lock()

    def reader(i):
        rel = "movies/a.bin" if i % 2 else "movies/b.bin"
        try:
            r = media(srv, rel, timeout=60)
            out = (r.status, r.header("retry-after"), r.body[:200])
        except Exception as e:  # a cut connection is an answer too; recorded, asserted below
            out = ("error", None, repr(e).encode())
        with lock:
            results.append(out)

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(HUNG_READS)]
    for t in threads:
        t.start()
    # Storage's threads are all taken by calls hung in the kernel.
    wait_for(lambda: mount.calls() >= MAX_THREADS // 2, timeout=10, what="reads hung on the mount")

    # While 200 reads hang: the process, the database, a login and notes answer at once.
    r, secs = timed(lambda: http_call(srv, "GET", "/healthz"))
    assert r.status == 200 and secs < FAST, (r, secs)
    r, secs = timed(lambda: http_call(srv, "GET", "/api/notes", headers=cred.headers))
    assert r.status == 200 and secs < FAST, (r, secs)
    r, secs = timed(lambda: http_call(
        srv, "POST", "/api/notes", headers=cred.headers,
        json_body={"title": "written while the NAS hangs", "body": "fine"}))
    assert r.status == 201 and secs < FAST, (r, secs)
    r, secs = timed(lambda: http_call(
        srv, "POST", "/api/login", json_body={"name": "root", "password": AUTH_PW}))
    assert r.status == 200 and secs < FAST, (r, secs)

    # Every hung read ends within the storage timeout (plus the wait for a thread), as 503.
    for t in threads:
        t.join(timeout=4 * TIMEOUT_SECS + 10)
    assert len(results) == HUNG_READS
    statuses = {s for s, _, _ in results}
    assert statuses == {503}, sorted(statuses, key=str)
    assert all(ra == "5" for _, ra, _ in results), {ra for _, ra, _ in results}

    # Now every storage thread is stuck: media answers 503 at once, with Retry-After and a
    # JSON reason; the rest still answers.
    r, secs = timed(lambda: media(srv, "movies/b.bin"))
    assert secs < FAST, secs
    body = assert_error(r, 503, "storage_unavailable")
    assert r.header("retry-after") == "5", r
    assert "did not answer" in body["message"], body
    r, secs = timed(lambda: http_call(srv, "GET", "/api/notes", headers=cred.headers))
    assert r.status == 200 and secs < FAST, (r, secs)
    r = http_call(srv, "GET", "/readyz", timeout=2 * TIMEOUT_SECS + 5)
    assert r.status == 503 and r.json()["checks"]["media_root"]["ok"] is False, r

    # The server comes back: everything works again without a restart.
    mount.release()

    def back():
        r = media(srv, "movies/a.bin")
        return r.status == 200 and r.body == FILES["movies/a.bin"]

    wait_for(back, timeout=20, what="media to answer again after the mount came back", every=0.2)
    r = http_call(srv, "GET", "/readyz")
    assert r.status == 200, r
    assert srv.proc.poll() is None


def test_a_mount_hung_at_start_delays_the_start_by_the_storage_timeout_only(mount, servers):
    mount.set("hang")
    t = time.monotonic()
    s = servers.start(mount.mountpoint, config=CONFIG, name="hung-at-start")
    assert time.monotonic() - t < TIMEOUT_SECS + 10
    assert "MEDIA ROOT UNAVAILABLE" in s.stderr_text()
    r, secs = timed(lambda: http_call(s, "GET", "/healthz"))
    assert r.status == 200 and secs < FAST, (r, secs)
    assert_error(media(s, "movies/b.bin"), 503, "storage_unavailable")
    # The server answers again: the start finishes by itself and media is served.
    mount.release()

    def back():
        r = media(s, "movies/b.bin")
        return r.status == 200 and r.body == FILES["movies/b.bin"]

    wait_for(back, timeout=20, what="media after the mount came back", every=0.2)
    # The start's own work on the root (its identity marker) finished too.
    wait_for(lambda: (mount.backing / ".streamhub-root").exists(), timeout=10,
             what="the root's identity marker")


def test_eio_is_a_clear_error_and_never_wrong_bytes(mount, srv):
    # EIO when the file is opened: a JSON error before anything is sent.
    # 503 with Retry-After, as when the whole share is away (attack pass 3: a 500 gave
    # clients no hint that a soft mount's EIO usually passes).
    mount.set("eio", ops=["open"], prefix="/eio.bin")
    r = media(srv, "eio.bin")
    assert_error(r, 503, "storage_unavailable")
    assert r.header("retry-after"), r
    assert "EIO" in r.json()["message"], r
    assert mount.calls() >= 1
    # EIO in the middle of the bytes: the response is cut short, never completed with
    # other bytes (the client sees fewer bytes than Content-Length).
    mount.set("eio", ops=["read"], prefix="/eio.bin")
    try:
        r = media(srv, "eio.bin")
        if r.status == 200:
            assert len(r.body) < len(FILES["eio.bin"]), "an EIO read must not look complete"
            assert FILES["eio.bin"].startswith(r.body)
        else:
            assert_error(r, 503, "storage_unavailable")
    except (ConnectionError, OSError, AssertionError) as e:
        if isinstance(e, AssertionError) and "must not look complete" in str(e):
            raise
    mount.release()
    r = media(srv, "eio.bin")
    assert r.status == 200 and r.body == FILES["eio.bin"]


def test_estale_on_open_is_retried_once(mount, srv):
    # The kernel itself retries a stale lookup once (2 opens): the third open, streamhub's
    # own retry, is the one that finds the file.
    mount.set("estale", ops=["open"], prefix="/estale.bin", count=2)
    r = media(srv, "estale.bin")
    assert r.status == 200 and r.body == FILES["estale.bin"], r
    assert mount.calls() == 2
    # Once, not forever: a handle that stays stale is an error.
    mount.set("estale", ops=["open"], prefix="/estale.bin", count=100)
    r = media(srv, "estale.bin")
    assert_error(r, 503, "storage_unavailable")
    assert r.header("retry-after") and "ESTALE" in r.json()["message"], r
    assert mount.calls() == 4, "two kernel attempts for the first open, two for the retry"
    mount.release()
    r = media(srv, "estale.bin")
    assert r.status == 200 and r.body == FILES["estale.bin"]


def test_estale_on_read_reopens_the_same_file_once(mount, srv):
    # The server forgets the open file's handle (a failover, a re-export): the file is opened
    # again by its path and the stream goes on with the right bytes.
    mount.set("estale", ops=["read"], prefix="/movies/a.bin", count=1)
    r = media(srv, "movies/a.bin")
    assert r.status == 200 and r.body == FILES["movies/a.bin"], r
    assert mount.calls() == 1
    # A handle that stays stale: the stream is cut, never completed with wrong bytes.
    mount.set("estale", ops=["read"], prefix="/movies/a.bin", count=100)
    try:
        r = media(srv, "movies/a.bin")
        assert r.status != 200 or r.body != FILES["movies/a.bin"], "a stale read looked complete"
    except (ConnectionError, OSError):
        pass
    mount.release()
    r = media(srv, "movies/a.bin")
    assert r.status == 200 and r.body == FILES["movies/a.bin"]


def test_uploads_onto_the_mount_never_overwrite(mount, srv):
    # This FUSE filesystem (like older NFS servers) has no RENAME_NOREPLACE: the commit
    # falls back to link + unlink, which still never replaces a file.
    do_setup(srv)
    cred = must_login(srv, "root", AUTH_PW)
    r = http_call(srv, "PUT", "/media/up/new.txt", headers=cred.headers, body=b"first")
    assert r.status == 201, r
    assert (mount.backing / "up" / "new.txt").read_bytes() == b"first"
    r = http_call(srv, "PUT", "/media/up/new.txt", headers=cred.headers, body=b"second")
    assert_error(r, 409, "exists")
    assert (mount.backing / "up" / "new.txt").read_bytes() == b"first"
    r = http_call(srv, "PUT", "/media/up/new.txt?overwrite=true", headers=cred.headers,
                  body=b"second")
    assert r.status in (200, 201), r
    assert (mount.backing / "up" / "new.txt").read_bytes() == b"second"


def test_uploads_hung_on_the_mount_fail_fast_once_every_writer_is_stuck(mount, srv):
    # Writes hang (a dead server under a hard mount) while reads still work: uploads end as
    # 503 within the storage timeout, their threads stay held in the kernel and count as
    # stuck, so once every writer thread is, a new upload is refused at once instead of
    # waiting out the timeout for a thread that will not come back.
    do_setup(srv)
    cred = must_login(srv, "root", AUTH_PW)
    writers = MAX_THREADS // 2
    mount.set("hang", ops=["write"])
    statuses = []
    lock = threading.Lock()

    def upload(i):
        try:
            r = http_call(srv, "PUT", f"/media/up/hung-{i}.bin", headers=cred.headers,
                          body=os.urandom(128 * 1024), timeout=60)
            out = r.status
        except Exception as e:  # a cut connection is an answer too; asserted below
            out = repr(e)
        with lock:
            statuses.append(out)

    # On a loaded machine an upload may time out before its write reached the mount (its
    # thread is then not stuck): upload again until every writer thread is held there.
    sent = 0
    for _ in range(10):
        missing = writers - mount.calls()
        if missing <= 0:
            break
        threads = [threading.Thread(target=upload, args=(sent + i,), daemon=True)
                   for i in range(missing)]
        sent += missing
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=4 * TIMEOUT_SECS + 10)
    assert statuses == [503] * sent, statuses
    wait_for(lambda: mount.calls() >= writers, timeout=30, what="writes hung on the mount")

    r, secs = timed(lambda: http_call(srv, "PUT", "/media/up/late.bin", headers=cred.headers,
                                      body=b"one more", timeout=30))
    body = assert_error(r, 503, "storage_unavailable")
    assert r.header("retry-after") == "5", r
    assert secs < FAST, (secs, body)
    # Reads do not wait behind the hung writers.
    r, secs = timed(lambda: media(srv, "movies/b.bin"))
    assert r.status == 200 and r.body == FILES["movies/b.bin"] and secs < FAST, (r, secs)

    # The server comes back: uploads work again without a restart, and none of the failed
    # ones left a file under its name.
    mount.release()

    def works():
        r = http_call(srv, "PUT", "/media/up/after.bin", headers=cred.headers, body=b"back")
        return r.status == 201

    wait_for(works, timeout=20, what="uploads to work again after the mount came back", every=0.2)
    assert sorted(os.listdir(mount.backing / "up")) == ["after.bin"]


def test_require_mount_refuses_a_plain_folder_and_readyz_says_why(mount, servers, tmp_path):
    plain = tmp_path / "not-mounted"
    plain.mkdir()
    proc, err = spawn(["serve", "--listen", "127.0.0.1:0", "--media-root", plain,
                       "--data-dir", tmp_path / "data1", "--no-discovery"],
                      tmp_path / "w1", env={"STREAMHUB_STORAGE_REQUIRE_MOUNT": "true"})
    rc = stopped(proc)
    text = err.read_text()
    assert rc not in (None, 0), text
    assert "not a mount point" in text and "storage.require_mount" in text, text
    assert list(plain.iterdir()) == [], "nothing may be written into the unmounted folder"

    # On the mount it starts; when the share goes away, /readyz says why.
    s = servers.start(mount.mountpoint, env={"STREAMHUB_STORAGE_REQUIRE_MOUNT": "true"},
                      name="mounted")
    r = http_call(s, "GET", "/readyz")
    assert r.status == 200, r
    mount.close()
    r = http_call(s, "GET", "/readyz")
    assert r.status == 503, r
    assert "not a mount point" in r.json()["checks"]["media_root"]["error"], r.json()
    assert_error(media(s, "movies/a.bin"), 503, "storage_unavailable")


def test_a_data_dir_on_a_network_filesystem_refuses_to_start(mount, tmp_path):
    data = mount.mountpoint / "data"
    proc, err = spawn(["serve", "--listen", "127.0.0.1:0", "--media-root", tmp_path / "m",
                       "--data-dir", data, "--no-discovery"], tmp_path / "w2")
    rc = stopped(proc)
    text = err.read_text()
    assert rc not in (None, 0), text
    assert "server.data_dir" in text and "fuse" in text and "SQLite" in text, text
    assert not (data / "streamhub.db").exists()
    assert not (data / "tls").exists()
