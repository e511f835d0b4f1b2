"""`streamhub storage copy` against a real Garage node: a library goes local → S3 → local with
identical bytes (nested folders, an empty folder, names with spaces and Unicode), a copy
killed mid-file leaves no partial object and resumes, `--dry-run` writes nothing, a different
file at the destination is reported and never replaced, bad locations are clear errors, and
the root identity, library index and owners follow the files when the service is switched
from local to S3 and back.
"""

import hashlib
import os
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import BIN, ServerFactory, assert_error, clean_env, http_call, wait_for
from test_s3_uploads import unfinished_uploads
from test_upload_faults import Creds

PART = 5 << 20


def s3_env(garage):
    """The [s3] endpoint and credentials, as a shell next to the service would have them
    (the backend itself stays local: the URL names bucket and prefix)."""
    env = garage.env()
    env.pop("STREAMHUB_STORAGE_BACKEND")
    env.pop("STREAMHUB_S3_BUCKET")
    env.pop("STREAMHUB_S3_PREFIX")
    return env


def run_copy(garage, *args, timeout=300):
    return subprocess.run([str(BIN), "storage", "copy", *map(str, args)],
                          env=clean_env(s3_env(garage)), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def tree(root):
    """{relative path: sha256} of the files, and the set of folders (streamhub's own hidden
    names left out)."""
    files, dirs = {}, set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            dirs.add(rel)
        for f in filenames:
            if not f.startswith("."):
                p = Path(dirpath) / f
                files[os.path.relpath(p, root)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files, dirs


def make_library(root, big=3 * PART + 12345):
    files = {
        "films/Big Buck Bunny.mp4": os.urandom(big),
        "music/Sigur Rós/Ágætis byrjun/01 Intro.flac": os.urandom(70_000),
        "notes with spaces.txt": b"hello world\n",
        "deep/a/b/c/d/zero.bin": b"",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "empty folder").mkdir(parents=True)
    (root / "films" / "empty ünder films").mkdir()
    return files


def test_round_trip_local_s3_local_is_identical_and_resumes_as_skips(garage, tmp_path):
    src, back = tmp_path / "src", tmp_path / "back"
    make_library(src)
    (src / ".streamhub-root").write_text("# marker\nroundtripvolume1\n")
    r = run_copy(garage, "--from", f"local:{src}", "--to", "s3://media/rt/lib")
    assert r.returncode == 0, r.stderr
    assert "copied 4 files" in r.stdout and "failed 0" in r.stdout, r.stdout
    assert "identity marker copied" in r.stdout, r.stdout
    # Not a terminal: lines that say how far it is.
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("copy: ")]
    assert any("100% [4/4 files]" in ln for ln in lines), r.stderr
    assert all("MiB/s" in ln and "ETA" in ln for ln in lines), r.stderr
    # In the bucket, under the prefix, with the marker as an object of its own.
    status, body = garage.curl_s3("GET", "rt/lib/notes with spaces.txt")
    assert (status, body) == (200, b"hello world\n")
    status, body = garage.curl_s3("GET", "rt/lib/.streamhub-root")
    assert status == 200 and b"roundtripvolume1" in body, body

    r = run_copy(garage, "--from", "s3://media/rt/lib", "--to", f"local:{back}")
    assert r.returncode == 0, r.stderr
    assert tree(back) == tree(src)
    assert (back / ".streamhub-root").read_text().strip().endswith("roundtripvolume1")
    # Nothing of the copy's own is left in the new library, not even an empty folder.
    assert not list((back / ".streamhub-staging").rglob("*")), "staging left behind"

    # Again: everything is there already, so nothing is written.
    r = run_copy(garage, "--from", f"local:{src}", "--to", "s3://media/rt/lib")
    assert r.returncode == 0, r.stderr
    assert "copied 0 files" in r.stdout and "skipped 4 identical" in r.stdout, r.stdout


def test_killed_copy_leaves_no_partial_object_and_resumes(garage, tmp_path):
    src, back = tmp_path / "src", tmp_path / "back"
    src.mkdir()
    (src / "a1.txt").write_bytes(b"first\n")
    (src / "a2.txt").write_bytes(b"second\n")
    (src / "zz big.bin").write_bytes(os.urandom(160 << 20))
    err = tmp_path / "copy.err"
    with open(err, "wb") as ef:
        p = subprocess.Popen([str(BIN), "storage", "copy", "--from", f"local:{src}", "--to",
                              "s3://media/killed"], env=clean_env(s3_env(garage)),
                             stdout=subprocess.DEVNULL, stderr=ef, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: "copied a2.txt" in err.read_text(errors="replace"), 60,
                 "the small files to be copied")
        # Killed once the big file's multipart upload exists: mid-file, however fast the
        # machine copies (an idle one does 160 MiB in well under a second).
        wait_for(lambda: p.poll() is not None or unfinished_uploads(garage, "killed/zz big.bin"),
                 60, "the big file's upload to begin", every=0.01)
        assert p.poll() is None, "the copy finished before it could be killed"
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    # Staged parts only: no object under the big file's name.
    assert garage.curl_s3("GET", "killed/zz big.bin")[0] == 404
    assert garage.curl_s3("GET", "killed/a1.txt") == (200, b"first\n")
    r = run_copy(garage, "--from", f"local:{src}", "--to", "s3://media/killed")
    assert r.returncode == 0, r.stderr
    assert "copied 1 file (" in r.stdout and "skipped 2 identical" in r.stdout, r.stdout
    r = run_copy(garage, "--from", "s3://media/killed", "--to", f"local:{back}")
    assert r.returncode == 0, r.stderr
    assert tree(back) == tree(src)


def test_dry_run_writes_nothing(garage, tmp_path):
    src = tmp_path / "src"
    files = make_library(src, big=1000)
    r = run_copy(garage, "--dry-run", "--from", f"local:{src}", "--to", "s3://media/dry")
    assert r.returncode == 0, r.stderr
    for rel in files:
        assert f"would copy {rel} (" in r.stdout, r.stdout
    assert f"would copy 4 files ({sum(map(len, files.values()))} bytes)" in r.stdout, r.stdout
    assert "would make folder empty folder/" in r.stdout
    # Nothing under the prefix: copying it back finds no file.
    r = run_copy(garage, "--from", "s3://media/dry", "--to", f"local:{tmp_path / 'back'}")
    assert r.returncode == 0, r.stderr
    assert "copied 0 files" in r.stdout, r.stdout
    assert tree(tmp_path / "back") == ({}, set())


def test_a_different_destination_file_is_reported_and_kept(garage, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_library(src, big=1000)
    (dst / "films").mkdir(parents=True)
    theirs = b"not the same film at all"
    (dst / "films" / "Big Buck Bunny.mp4").write_bytes(theirs)
    # Same size, other bytes: only the checksum tells them apart.
    (dst / "notes with spaces.txt").write_bytes(b"HELLO WORLD\n")
    r = run_copy(garage, "--from", f"local:{src}", "--to", f"local:{dst}")
    assert r.returncode == 1, r
    assert "films/Big Buck Bunny.mp4: the destination has a different file" in r.stderr
    assert "notes with spaces.txt: the destination has a different file of the same size" \
        in r.stderr
    assert "failed 2" in r.stdout and "these failed:" in r.stderr, r
    assert (dst / "films" / "Big Buck Bunny.mp4").read_bytes() == theirs
    assert (dst / "notes with spaces.txt").read_bytes() == b"HELLO WORLD\n"
    # The rest was copied.
    assert (dst / "deep/a/b/c/d/zero.bin").exists() and (dst / "empty folder").is_dir()


@pytest.mark.parametrize("args,code,says", [
    (["--from", "nonsense", "--to", "s3://media/x"], 2, "is not a storage location"),
    (["--from", "local:/no/such/folder", "--to", "s3://media/x"], 2, "does not exist"),
    (["--from", "s3://no-such-bucket/x", "--to", "local:/tmp"], 1,
     "the S3 bucket 'no-such-bucket' does not exist (the bucket in the URL)"),
    (["--from", "s3://media/x", "--to", "s3://media/x"], 2, "the same location"),
])
def test_bad_locations_are_clear_errors(garage, args, code, says):
    r = run_copy(garage, *args)
    assert r.returncode == code, r
    assert says in r.stderr, r.stderr
    assert "panicked" not in r.stderr


def _start(factory, root, data, env, name):
    env = {**(env or {}), "STREAMHUB_LIBRARY_SCAN_INTERVAL_SECS": "10"}
    return factory.start(root, data_dir=data, tls_listen=(), env=env, name=name)


def _search(srv, cred, q):
    r = http_call(srv, "GET", "/api/library?q=" + quote(q) + "&per_page=100",
                  headers=cred.headers, timeout=30)
    return [e["path"] for e in r.json()["entries"]] if r.status == 200 else []


def _check_library(srv, creds, clip, report):
    """Same index and owners: mia's clip is found and hers; boss's report is not hers."""
    assert "mine/clip one.txt" in wait_for(lambda: _search(srv, creds.member, "clip"), 30,
                                           "the clip in the library search")
    r = http_call(srv, "GET", "/media/" + quote("mine/clip one.txt"), headers=creds.member.headers)
    assert (r.status, r.body) == (200, clip), r
    assert_error(http_call(srv, "DELETE", "/media/" + quote("boss/report.txt"),
                           headers=creds.member.headers), 403, "forbidden")
    r = http_call(srv, "PUT", "/media/" + quote("mine/clip one.txt") + "?overwrite=true",
                  headers=creds.member.headers, body=clip)
    assert r.status in (200, 201, 204), r
    r = http_call(srv, "GET", "/media/" + quote("boss/report.txt"), headers=creds.admin.headers)
    assert (r.status, r.body) == (200, report), r


def test_identity_index_and_owners_follow_the_files(garage, tmp_path_factory):
    base = tmp_path_factory.mktemp("switch")
    local1, local2, data = base / "local1", base / "local2", base / "data"
    clip, report = b"mia's clip\n" * 100, b"boss report\n"
    f = ServerFactory(tmp_path_factory)
    try:
        srv = _start(f, local1, data, None, "local1")
        creds = Creds(srv)
        r = http_call(srv, "PUT", "/media/" + quote("mine/clip one.txt"),
                      headers=creds.member.headers, body=clip)
        assert r.status == 201, r
        r = http_call(srv, "PUT", "/media/boss/report.txt", headers=creds.admin.headers,
                      body=report)
        assert r.status == 201, r
        _check_library(srv, creds, clip, report)
        srv.stop()

        r = run_copy(garage, "--from", f"local:{local1}", "--to", "s3://media/switch")
        assert r.returncode == 0 and "identity marker copied" in r.stdout, r
        srv = _start(f, base / "unused", data, garage.env("switch"), "on-s3")
        creds = Creds(srv, add_users=False)
        _check_library(srv, creds, clip, report)
        srv.stop()

        r = run_copy(garage, "--from", "s3://media/switch", "--to", f"local:{local2}")
        assert r.returncode == 0, r
        srv = _start(f, local2, data, None, "local2")
        creds = Creds(srv, add_users=False)
        _check_library(srv, creds, clip, report)
        srv.stop()

        # A prefix that is not this library's (empty): media unavailable, index kept.
        srv = _start(f, base / "unused", data, garage.env("not-this-one"), "wrong-s3")
        creds = Creds(srv, add_users=False)
        r = http_call(srv, "GET", "/media/" + quote("mine/clip one.txt"),
                      headers=creds.member.headers)
        assert r.status == 503, r
        assert "has no .streamhub-root" in srv.stderr_text()
        srv.stop()
        # Another library's marker: refused by the copy, and unavailable to the service.
        status, _ = garage.curl_s3("PUT", "other-lib/.streamhub-root", b"# x\notherlibrary\n")
        assert status == 200
        r = run_copy(garage, "--from", f"local:{local2}", "--to", "s3://media/other-lib")
        assert r.returncode == 1 and "another library's identity marker" in r.stderr, r
        assert garage.curl_s3("GET", "other-lib/boss/report.txt")[0] == 404
        srv = _start(f, base / "unused", data, garage.env("other-lib"), "other-s3")
        creds = Creds(srv, add_users=False)
        r = http_call(srv, "GET", "/media/" + quote("mine/clip one.txt"),
                      headers=creds.member.headers)
        assert r.status == 503, r
        assert "holds another library's .streamhub-root" in srv.stderr_text()
        srv.stop()
        srv = _start(f, local2, data, None, "local2-again")
        creds = Creds(srv, add_users=False)
        assert "mine/clip one.txt" in _search(srv, creds.member, "clip")
    finally:
        f.stop_all()


def test_a_bucket_is_adopted_when_nothing_was_stored_yet(garage, tmp_path_factory):
    """A box first started on the embedded defaults (local disk, nothing uploaded), then
    pointed at a fresh bucket: media works at once, no copy needed."""
    base = tmp_path_factory.mktemp("adopt")
    data = base / "data"
    f = ServerFactory(tmp_path_factory)
    try:
        srv = _start(f, base / "media", data, None, "defaults")
        Creds(srv)
        srv.stop()
        srv = _start(f, base / "unused", data, garage.env("adopted"), "on-s3")
        creds = Creds(srv, add_users=False)
        r = http_call(srv, "PUT", "/media/first.txt", headers=creds.admin.headers, body=b"1\n")
        assert r.status == 201, r
        assert garage.curl_s3("GET", "adopted/.streamhub-root")[0] == 200
    finally:
        f.stop_all()


def test_an_s3_url_without_a_store_configured_says_so(tmp_path):
    """Newcomer pass: with no [s3] at all the copy said "s3.endpoint: must be set when
    storage.backend = "s3"", a key nobody had set."""
    (tmp_path / "src").mkdir()
    r = subprocess.run([str(BIN), "storage", "copy", "--from", f"local:{tmp_path / 'src'}",
                        "--to", "s3://media/x"], env=clean_env(None), capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r
    assert "s3://media/x: no S3 store is configured: set s3.endpoint" in r.stderr, r.stderr
    assert "storage.backend" not in r.stderr, r.stderr
