"""`streamhub storage copy` where the attack pass broke it: a source rewritten in place while
it is read is never left as a torn copy called done, a destination inside the source (or the
source inside the destination) is refused however the paths are spelt, and a bucket can be
marked as this library's without a copy (`--marker-only`) when the upgrade copy would conflict.
"""

import os
import subprocess
import threading
import time

import pytest

from conftest import BIN, ServerFactory, clean_env, http_call, wait_for
from test_s3_uploads import unfinished_uploads
from test_storage_copy import _start, run_copy, s3_env
from test_upload_faults import Creds

SIZE = 48 << 20


def _rewrite_in_place(path, stop, started):
    """Keeps overwriting a byte near the head and one near the tail, same size, like a
    program saving a file over itself. No fsync: a write reaches the page cache (and the
    file's mtime) at once, while an fsync on a busy disk could stall the writer for longer
    than a fast copy takes, and the copy would rightly be whole."""
    n = 0
    with open(path, "r+b", buffering=0) as f:
        while not stop.is_set():
            n += 1
            for at in (1000, SIZE - 100):
                f.seek(at)
                f.write(n.to_bytes(4, "little"))
            started.set()
            time.sleep(0.001)


@pytest.mark.parametrize("to", ["local", "s3"])
def test_a_source_rewritten_during_the_copy_is_not_called_copied(garage, tmp_path, to):
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    big.write_bytes(b"\0" * SIZE)
    (src / "calm.txt").write_bytes(b"unchanged\n")
    dst = f"local:{tmp_path / 'dst'}" if to == "local" else f"s3://media/torn-{os.getpid()}"
    stop, started = threading.Event(), threading.Event()
    writer = threading.Thread(target=_rewrite_in_place, args=(big, stop, started))
    writer.start()
    try:
        assert started.wait(10), "the writer did not start"
        r = run_copy(garage, "--from", f"local:{src}", "--to", dst)
    finally:
        stop.set()
        writer.join()
    assert r.returncode == 1, r
    assert "big.bin: the source changed while it was copied" in r.stderr, r.stderr
    assert "failed 1" in r.stdout, r.stdout
    if to == "local":
        assert not (tmp_path / "dst" / "big.bin").exists()
        assert (tmp_path / "dst" / "calm.txt").read_bytes() == b"unchanged\n"
    else:
        assert garage.curl_s3("GET", dst[len("s3://media/"):] + "/big.bin")[0] == 404
    # Once the file is left alone, a re-run copies it (no "different file" conflict).
    r = run_copy(garage, "--from", f"local:{src}", "--to", dst)
    assert r.returncode == 0, r
    assert "copied 1 file (" in r.stdout and "skipped 1 identical" in r.stdout, r.stdout


def test_overlapping_locations_are_refused(garage, tmp_path):
    a = tmp_path / "a"
    (a / "sub").mkdir(parents=True)
    (a / "f.txt").write_bytes(b"x\n")
    os.symlink(a, tmp_path / "link")
    cases = [
        (f"local:{a}", f"local:{a}/copy"),
        (f"local:{a}/copy", f"local:{a}"),
        (f"local:{a}/sub/..", f"local:{a}/sub"),
        (f"local:{a}/", f"local:{tmp_path}/link/copy"),
        ("s3://media/ov", "s3://media/ov/copy"),
        ("s3://media/ov/copy/", "s3://media//ov"),
        ("s3://media/ov", "s3://media"),
    ]
    for frm, to in cases:
        r = run_copy(garage, "--from", frm, "--to", to)
        assert r.returncode == 2, (frm, to, r)
        assert "inside" in r.stderr, (frm, to, r.stderr)
    assert not (a / "copy").exists()
    # Siblings with a common start of their names do not overlap.
    r = run_copy(garage, "--from", f"local:{a}", "--to", f"local:{tmp_path}/ab")
    assert r.returncode == 0, r


def test_upgrade_with_a_bucket_that_moved_on_is_marked_without_a_copy(garage, tmp_path_factory):
    """DEPLOY.md's upgrade: the bucket has a file changed since the switch (a full copy stops
    at it, exit 1, no marker) and lacks one deleted since (a full copy would bring it back).
    The 503 names `--marker-only`; that writes the marker and nothing else."""
    base = tmp_path_factory.mktemp("upgrade2")
    old_root, data = base / "media", base / "data"
    f = ServerFactory(tmp_path_factory)
    try:
        srv = _start(f, old_root, data, None, "local-first")
        creds = Creds(srv)
        for name in ("kept.txt", "deleted.txt"):
            r = http_call(srv, "PUT", "/media/" + name, headers=creds.admin.headers, body=b"old\n")
            assert r.status == 201, r
        srv.stop()
        # The bucket as the old version left it: kept.txt changed, deleted.txt gone.
        assert garage.curl_s3("PUT", "upgrade2/kept.txt", b"new in the bucket\n")[0] == 200

        srv = _start(f, base / "unused", data, garage.env("upgrade2"), "upgraded")
        creds = Creds(srv, add_users=False)
        r = http_call(srv, "GET", "/media/kept.txt", headers=creds.admin.headers)
        assert r.status == 503 and "--marker-only" in r.body.decode(), r
        srv.stop()

        r = run_copy(garage, "--from", f"local:{old_root}", "--to", "s3://media/upgrade2")
        assert r.returncode == 1 and "identity marker" not in r.stdout + r.stderr, r
        assert garage.curl_s3("GET", "upgrade2/.streamhub-root")[0] == 404
        assert garage.curl_s3("DELETE", "upgrade2/deleted.txt")[0] in (200, 204)

        r = run_copy(garage, "--marker-only", "--from", f"local:{old_root}", "--to",
                     "s3://media/upgrade2")
        assert r.returncode == 0 and "identity marker copied (no files)" in r.stdout, r
        r = run_copy(garage, "--marker-only", "--from", f"local:{old_root}", "--to",
                     "s3://media/upgrade2")
        assert r.returncode == 0 and "already there" in r.stdout, r
        srv = _start(f, base / "unused", data, garage.env("upgrade2"), "after-marker")
        creds = Creds(srv, add_users=False)
        r = http_call(srv, "GET", "/media/kept.txt", headers=creds.admin.headers)
        assert (r.status, r.body) == (200, b"new in the bucket\n"), r
        r = http_call(srv, "GET", "/media/deleted.txt", headers=creds.admin.headers)
        assert r.status == 404, r
    finally:
        f.stop_all()


def test_markers_are_never_replaced_nor_nested(garage, tmp_path_factory):
    base = tmp_path_factory.mktemp("nest")
    src = base / "src"
    src.mkdir()
    (src / ".streamhub-root").write_text("# marker\nthislibrary\n")
    (src / "a.txt").write_bytes(b"a\n")
    assert garage.curl_s3("PUT", "other/.streamhub-root", b"# marker\notherlibrary\n")[0] == 200
    r = run_copy(garage, "--marker-only", "--from", f"local:{src}", "--to", "s3://media/other")
    assert r.returncode == 1 and "another library's identity marker" in r.stderr, r
    assert garage.curl_s3("GET", "other/.streamhub-root")[1] == b"# marker\notherlibrary\n"
    # A library lives at nest/inner: nest (and the whole bucket) may not become another one.
    assert garage.curl_s3("PUT", "nest/inner/.streamhub-root", b"# m\ninnerlibrary\n")[0] == 200
    assert garage.curl_s3("PUT", "nest/inner/x.txt", b"x\n")[0] == 200
    for to in ("s3://media/nest", "s3://media/"):
        for extra in ([], ["--marker-only"]):
            r = run_copy(garage, *extra, "--from", f"local:{src}", "--to", to)
            assert r.returncode == 1 and "must not nest" in r.stderr, (to, extra, r)
    assert garage.curl_s3("GET", "nest/.streamhub-root")[0] == 404
    assert garage.curl_s3("GET", "nest/a.txt")[0] == 404
    # Nor may a library begin inside it.
    r = run_copy(garage, "--from", f"local:{src}", "--to", "s3://media/nest/inner/deeper")
    assert r.returncode == 1 and "lies inside another library" in r.stderr, r
    assert garage.curl_s3("GET", "nest/inner/deeper/a.txt")[0] == 404
    f = ServerFactory(tmp_path_factory)
    try:
        srv = _start(f, base / "unused", base / "data", garage.env("nest"), "on-nest")
        creds = Creds(srv)
        r = http_call(srv, "GET", "/media/inner/x.txt", headers=creds.admin.headers)
        assert r.status == 503 and "must not nest" in r.body.decode(), r
        r = http_call(srv, "DELETE", "/media/inner/x.txt", headers=creds.admin.headers)
        assert r.status == 503, r
        srv.stop()
        srv = _start(f, base / "unused", base / "data2", garage.env("nest/inner/deeper"),
                     "in-nest")
        creds = Creds(srv)
        r = http_call(srv, "PUT", "/media/y.txt", headers=creds.admin.headers, body=b"y\n")
        assert r.status == 503 and "lies inside another library" in r.body.decode(), r
    finally:
        f.stop_all()
    assert garage.curl_s3("GET", "nest/inner/x.txt") == (200, b"x\n")
    assert garage.curl_s3("GET", "nest/inner/deeper/y.txt")[0] == 404
    assert garage.curl_s3("GET", "nest/inner/deeper/.streamhub-root")[0] == 404


def test_a_marker_changed_while_the_service_runs_blocks_media_until_it_is_back(
        garage, tmp_path_factory):
    base = tmp_path_factory.mktemp("watch")
    f = ServerFactory(tmp_path_factory)
    try:
        srv = _start(f, base / "unused", base / "data", garage.env("watch"), "watched")
        creds = Creds(srv)
        r = http_call(srv, "PUT", "/media/a.txt", headers=creds.admin.headers, body=b"a\n")
        assert r.status == 201, r
        mine = garage.curl_s3("GET", "watch/.streamhub-root")[1]

        def media():
            r = http_call(srv, "GET", "/media/a.txt", headers=creds.admin.headers)
            return r.status, r.body.decode(errors="replace")

        for planted, says in ((None, "was deleted"),
                              (b"# m\notherlibrary\n", "another library"),
                              (b"garbage garbage\n garbage", ".streamhub-root"),
                              (b"x" * (9 << 20), "too large")):
            if planted is None:
                assert garage.curl_s3("DELETE", "watch/.streamhub-root")[0] in (200, 204)
            else:
                assert garage.curl_s3("PUT", "watch/.streamhub-root", planted)[0] == 200
            status, body = wait_for(lambda: (m := media())[0] == 503 and m, 20,
                                    f"media to be blocked ({says})")
            assert says in body, body
            r = http_call(srv, "GET", "/readyz")
            assert r.status == 503 and says in r.body.decode(), r
            assert garage.curl_s3("PUT", "watch/.streamhub-root", mine)[0] == 200
            wait_for(lambda: media() == (200, "a\n"), 20, "media back with the marker")
    finally:
        f.stop_all()


def test_dry_run_makes_no_folder_and_bad_markers_name_their_side(garage, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a\n")
    r = run_copy(garage, "--dry-run", "--from", f"local:{src}", "--to", f"local:{tmp_path}/new")
    assert r.returncode == 0 and "would copy a.txt" in r.stdout, r
    assert not (tmp_path / "new").exists()
    # A huge object where the destination's marker would be: named, not read whole.
    assert garage.curl_s3("PUT", "huge/.streamhub-root", b"x" * (9 << 20))[0] == 200
    r = run_copy(garage, "--from", f"local:{src}", "--to", "s3://media/huge")
    assert r.returncode == 1, r
    assert "the identity marker of s3://media/huge" in r.stderr, r.stderr
    assert "too large to be a marker" in r.stderr, r.stderr
    (src / ".streamhub-root").mkdir()
    r = run_copy(garage, "--from", f"local:{src}", "--to", f"local:{tmp_path}/dst")
    assert r.returncode == 1, r
    assert f"the identity marker of local:{src}" in r.stderr, r.stderr
    assert "server log" not in r.stderr, r.stderr


def test_entries_left_out_are_counted_and_named(garage, tmp_path):
    """What the service does not serve is not copied either, but never silently: the summary
    counts it and stderr names each entry (a local source and an S3 one)."""
    src = tmp_path / "src"
    (src / "real").mkdir(parents=True)
    (src / "real" / "in.txt").write_bytes(b"in\n")
    (src / "ok.txt").write_bytes(b"ok\n")
    (src / ".hidden.txt").write_bytes(b"h\n")
    os.mkfifo(src / "fifo")
    (tmp_path / "outside.txt").write_bytes(b"out\n")
    os.symlink(tmp_path / "outside.txt", src / "escape.txt")
    os.symlink("real", src / "alias")
    r = run_copy(garage, "--from", f"local:{src}", "--to", "s3://media/leftout-local")
    assert r.returncode == 0, r
    assert "copied 2 files" in r.stdout and "left out 4" in r.stdout, r.stdout
    for name in (".hidden.txt", "fifo", "escape.txt", "alias (a link to a folder)"):
        assert f"  {name}\n" in r.stderr, (name, r.stderr)
    assert garage.curl_s3("GET", "leftout-local/.hidden.txt")[0] == 404

    for key in ("leftout-s3/a.txt", "leftout-s3/sub/.dot.txt", "leftout-s3/sub/../up.txt"):
        assert garage.curl_s3("PUT", key, b"x\n", extra=("--path-as-is",))[0] == 200
    r = run_copy(garage, "--from", "s3://media/leftout-s3", "--to", f"local:{tmp_path / 'back'}")
    assert r.returncode == 0, r
    assert "copied 1 file (" in r.stdout and "left out 2" in r.stdout, r.stdout
    assert "  sub/.dot.txt\n" in r.stderr and "  sub/../\n" in r.stderr, r.stderr


@pytest.mark.parametrize("to", ["local", "s3"])
def test_a_file_written_at_the_name_during_the_copy_is_kept_and_said_so(garage, tmp_path, to):
    """Someone puts a file at the destination name while its copy is under way: theirs is
    kept, and the copy says that is what happened (it said "not found" before)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(SIZE))
    planted = b"written by someone else\n"
    if to == "local":
        dst_dir = tmp_path / "dst"
        dst = f"local:{dst_dir}"
        staged = lambda: any(p.is_file() for p in (dst_dir / ".streamhub-staging").rglob("*"))

        def plant():
            (dst_dir / "big.bin").write_bytes(planted)
    else:
        key = f"planted-{os.getpid()}"
        dst = f"s3://media/{key}"
        staged = lambda: unfinished_uploads(garage, f"{key}/big.bin")

        def plant():
            assert garage.curl_s3("PUT", f"{key}/big.bin", planted)[0] == 200
    err = tmp_path / "copy.err"
    with open(err, "wb") as ef:
        p = subprocess.Popen([str(BIN), "storage", "copy", "--from", f"local:{src}", "--to", dst],
                             env=clean_env(s3_env(garage)), stdout=subprocess.PIPE, stderr=ef,
                             stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: p.poll() is not None or staged(), 60, "the copy to begin", every=0.005)
        assert p.poll() is None, "the copy finished before a file could be planted"
        plant()
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    stderr = err.read_text()
    assert p.returncode == 1, stderr
    assert "big.bin: something else was written at this name in the destination during the " \
           "copy; it was left alone" in stderr, stderr
    assert "failed 1" in out.decode(), out
    if to == "local":
        assert (tmp_path / "dst" / "big.bin").read_bytes() == planted
    else:
        assert garage.curl_s3("GET", f"{key}/big.bin") == (200, planted)


def _two_copies_at_once(garage, tmp_path, dest_x, dest_y):
    """Library X (60 MiB) and library Y (20 MiB), copied at the same moment; Y ends first."""
    runs = {}
    for name, size, dest in (("x", 60 << 20, dest_x), ("y", 20 << 20, dest_y)):
        src = tmp_path / name
        src.mkdir()
        (src / ".streamhub-root").write_text(f"# marker\nlibrary{name}{os.getpid()}\n")
        (src / f"{name}.bin").write_bytes(os.urandom(size))
        runs[name] = subprocess.Popen(
            [str(BIN), "storage", "copy", "--from", f"local:{src}", "--to", dest],
            env=clean_env(s3_env(garage)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, stdin=subprocess.DEVNULL)
    return {k: (p.wait(timeout=300), *p.communicate()) for k, p in runs.items()}


def test_two_copies_into_one_place_at_once_never_both_claim_it(garage, tmp_path):
    """Attack pass 3: two copies into the same prefix both said "identity marker copied",
    the second over the first. Now the one that ends last finds the other's marker and says
    the destination got mixed, without writing its own."""
    key = f"same-{os.getpid()}"
    out = _two_copies_at_once(garage, tmp_path, f"s3://media/{key}", f"s3://media/{key}")
    assert out["y"][0] == 0 and "identity marker copied" in out["y"][1], out["y"]
    assert out["x"][0] == 1, out["x"]
    assert "identity marker NOT written" in out["x"][1], out["x"]
    assert "got another library's identity marker while this copy ran" in out["x"][2], out["x"]
    status, body = garage.curl_s3("GET", f"{key}/.streamhub-root")
    assert status == 200 and f"libraryy{os.getpid()}".encode() in body, body


def test_two_copies_one_inside_the_other_at_once_never_nest(garage, tmp_path):
    key = f"nest-{os.getpid()}"
    out = _two_copies_at_once(garage, tmp_path, f"s3://media/{key}", f"s3://media/{key}/inner")
    assert out["y"][0] == 0, out["y"]
    assert out["x"][0] == 1 and "it did not when this copy began" in out["x"][2], out["x"]
    assert garage.curl_s3("GET", f"{key}/.streamhub-root")[0] == 404
    assert garage.curl_s3("GET", f"{key}/inner/.streamhub-root")[0] == 200


def test_names_with_control_characters_never_reach_the_terminal_raw(garage, tmp_path):
    """Attack pass 3: a name holding an escape sequence or a newline was printed as it is,
    so a file in the source could recolour the admin's terminal or forge report lines."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "esc\x1b[31mRED\x1b[0m.txt").write_bytes(b"e\n")
    (src / "two\nFAILED forged.txt").write_bytes(b"n\n")
    (src / "fine.txt").write_bytes(b"f\n")
    r = run_copy(garage, "--from", f"local:{src}", "--to", f"s3://media/ctl-{os.getpid()}")
    assert r.returncode == 0, r
    assert "\x1b" not in r.stderr + r.stdout, repr(r.stderr)
    assert "esc\\u{1b}[31mRED\\u{1b}[0m.txt" in r.stderr, r.stderr
    assert "two\\u{a}FAILED forged.txt" in r.stderr, r.stderr
    assert not any(line.startswith("FAILED forged") for line in r.stderr.splitlines()), r.stderr
