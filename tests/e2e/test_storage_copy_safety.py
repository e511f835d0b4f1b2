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

from test_storage_copy import run_copy

SIZE = 48 << 20


def _rewrite_in_place(path, stop):
    """Keeps overwriting a byte near the head and one near the tail, same size, like a
    program saving a file over itself."""
    n = 0
    with open(path, "r+b") as f:
        while not stop.is_set():
            n += 1
            for at in (1000, SIZE - 100):
                f.seek(at)
                f.write(n.to_bytes(4, "little"))
                f.flush()
                os.fsync(f.fileno())
            time.sleep(0.002)


@pytest.mark.parametrize("to", ["local", "s3"])
def test_a_source_rewritten_during_the_copy_is_not_called_copied(garage, tmp_path, to):
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    big.write_bytes(b"\0" * SIZE)
    (src / "calm.txt").write_bytes(b"unchanged\n")
    dst = f"local:{tmp_path / 'dst'}" if to == "local" else f"s3://media/torn-{os.getpid()}"
    stop = threading.Event()
    writer = threading.Thread(target=_rewrite_in_place, args=(big, stop))
    writer.start()
    try:
        r = run_copy(garage, "--from", f"local:{src}", "--to", dst)
    finally:
        stop.set()
        writer.join()
    assert r.returncode == 1, r
    assert "big.bin: the source changed while it was copied" in r.stderr, r.stderr
    assert "failed 1" in r.stderr, r.stderr
    if to == "local":
        assert not (tmp_path / "dst" / "big.bin").exists()
        assert (tmp_path / "dst" / "calm.txt").read_bytes() == b"unchanged\n"
    else:
        assert garage.curl_s3("GET", dst[len("s3://media/"):] + "/big.bin")[0] == 404
    # Once the file is left alone, a re-run copies it (no "different file" conflict).
    r = run_copy(garage, "--from", f"local:{src}", "--to", dst)
    assert r.returncode == 0, r
    assert "copied 1 files" in r.stdout and "skipped 1 identical" in r.stdout, r.stdout


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
