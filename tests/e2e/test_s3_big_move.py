"""A move of an object over S3's 5 GiB CopyObject limit (a real Garage node): streamhub must
copy it in parts (UploadPartCopy with source ranges) and the moved object must hold the same
bytes in the same order. The object is a sparse file with markers at the part boundaries, put
into the bucket straight with curl (Garage stores the zero blocks once, so this stays fast).
"""

import subprocess
import time
from urllib.parse import quote

import pytest

from conftest import ServerFactory, http_call
from test_s3_files import Env
import garage_util

PREFIX = "bigmove"
SIZE = (5 << 30) + (3 << 20) + 7
COPY_PART = 512 << 20
MARKS = [0, COPY_PART - 16, COPY_PART, 10 * COPY_PART + 5, SIZE - 16]


def mark(off):
    return f"@{off:015d}".encode()[:16].ljust(16, b"#")


@pytest.fixture(scope="module")
def env(garage, tmp_path_factory):
    f = ServerFactory(tmp_path_factory)
    root = tmp_path_factory.mktemp("bigmove-unused-root")
    srv = f.start(root, tls_listen=(), env=garage.env(PREFIX), name="bigmove")
    yield Env(srv, garage)
    f.stop_all()


def test_move_of_an_object_over_5_gib_is_a_multipart_copy(env, tmp_path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as fh:
        fh.truncate(SIZE)
        for off in MARKS:
            fh.seek(min(off, SIZE - 16))
            fh.write(mark(off))
    t = time.monotonic()
    r = subprocess.run([
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
        "--aws-sigv4", f"aws:amz:{garage_util.REGION}:s3",
        "--user", f"{garage_util.KEY_ID}:{garage_util.SECRET}",
        "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", str(src),
        f"{env.garage.endpoint}/{garage_util.BUCKET}/{PREFIX}/films/huge.bin"],
        capture_output=True, text=True, timeout=300)
    assert r.stdout == "200", r
    put_secs = time.monotonic() - t
    t = time.monotonic()
    r = env.call("POST", "/api/library/move", cred=env.admin,
                 json_body={"from": "films/huge.bin", "to": "moved/huge.bin"})
    move_secs = time.monotonic() - t
    assert r.status == 200, r
    print(f"PUT {SIZE} B in {put_secs:.1f} s; move in {move_secs:.1f} s")
    assert env.garage.curl_s3("GET", f"{PREFIX}/films/huge.bin")[0] == 404
    for off in MARKS:
        at = min(off, SIZE - 16)
        g = http_call(env.srv, "GET", "/media/" + quote("moved/huge.bin"), timeout=60,
                      headers={"Range": f"bytes={at}-{at + 15}"})
        assert g.status == 206 and g.body == mark(off), (off, g)
    h = http_call(env.srv, "HEAD", "/media/" + quote("moved/huge.bin"))
    assert int(h.header("content-length")) == SIZE, h
    # Garage would take a single CopyObject of this size too (it does not enforce S3's
    # limit), so the object itself must show it was assembled from 11 copied parts: a
    # multipart object's ETag ends in "-<parts>".
    _, head = env.garage.curl_s3("HEAD", f"{PREFIX}/moved/huge.bin", extra=["-I"])
    etag = [ln for ln in head.decode().splitlines() if ln.lower().startswith("etag:")]
    assert etag and etag[0].strip().rstrip('"').endswith("-11"), head
