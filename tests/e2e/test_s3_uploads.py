"""Uploads to S3 at constant memory (a real Garage node, `garage` fixture): a 256 MiB PUT
streams its parts to the store as they arrive, an upload of unknown length holds at most one
part, and an upload cut off half-way leaves neither an object nor an unfinished multipart
upload in the bucket.
"""

import hashlib
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import (
    AUTH_PW,
    ServerFactory,
    cli_add_user,
    must_login,
    new_token,
    rss_kib,
    wait_for,
)

PREFIX = "uploads"
PART = 5 * 1024 * 1024
# What "flat" means (the bound for a 4 GiB upload; the benchmark measures that one).
MAX_GROWTH_MIB = 16


class RssPeak:
    """The server's VmRSS growth while a block runs (sampled every 10 ms)."""

    def __init__(self, pid):
        self.pid, self.base, self.peak = pid, rss_kib(pid), 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def growth_mib(self):
        return (self.peak - self.base) / 1024


@pytest.fixture(scope="module")
def env(garage, tmp_path_factory):
    f = ServerFactory(tmp_path_factory)
    root = tmp_path_factory.mktemp("s3-uploads-unused-root")
    extra = {
        **garage.env(PREFIX),
        "STREAMHUB_S3_PART_SIZE_MIB": "5",
        "STREAMHUB_UPLOADS_MAX_BYTES": str(1 << 30),
    }
    srv = f.start(root, tls_listen=(), env=extra, name="s3uploads")
    cli_add_user(srv.data_dir, "mia")
    token = new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-s3-uploads")
    yield srv, garage, token
    f.stop_all()


def random_file(path, mib):
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            b = os.urandom(1 << 20)
            h.update(b)
            f.write(b)
    return h.hexdigest()


def bucket_sha(garage, key, tmp_path):
    """SHA-256 of an object read straight from Garage (streamed to a file), or None."""
    out = tmp_path / "from-bucket.bin"
    r = subprocess.run(
        ["curl", "-sS", "-o", str(out), "-w", "%{http_code}",
         "--aws-sigv4", f"aws:amz:{garage_region()}:s3", "--user", garage_user(),
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         f"{garage.endpoint}/media/{key}"],
        capture_output=True, text=True, timeout=120)
    if r.stdout != "200":
        return None
    h = hashlib.sha256()
    with open(out, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    out.unlink()
    return h.hexdigest()


def garage_region():
    import garage_util
    return garage_util.REGION


def garage_user():
    import garage_util
    return f"{garage_util.KEY_ID}:{garage_util.SECRET}"


def unfinished_uploads(garage, key):
    """The multipart uploads Garage still holds for `key` (ListMultipartUploads). curl signs
    the query as written, so its parameters go in SigV4's sorted order."""
    from urllib.parse import quote
    r = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
         "--aws-sigv4", f"aws:amz:{garage_region()}:s3", "--user", garage_user(),
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         f"{garage.endpoint}/media?prefix={quote(key, safe='')}&uploads="],
        capture_output=True, timeout=60)
    body, _, status = r.stdout.rpartition(b"\n")
    assert status == b"200", r.stdout
    return re.findall(rb"<UploadId>([^<]+)</UploadId>", body)


def put_file(srv, token, rel, src, chunked=False):
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"]
    for k, v in token.headers.items():
        args += ["-H", f"{k}: {v}"]
    if chunked:
        # From a pipe: curl sends it chunked, with no length announced.
        args += ["-H", "Transfer-Encoding: chunked", "-T", "-"]
        with open(src, "rb") as f:
            r = subprocess.run(args + [srv.url(f"/media/{rel}")], stdin=f,
                               capture_output=True, text=True, timeout=300)
    else:
        r = subprocess.run(args + ["-T", str(src), srv.url(f"/media/{rel}")],
                           capture_output=True, text=True, timeout=300)
    return int(r.stdout or 0)


def test_a_256_mib_put_streams_to_the_store_at_flat_memory(env, tmp_path):
    srv, garage, token = env
    src = tmp_path / "big.bin"
    digest = random_file(src, 256)
    with RssPeak(srv.proc.pid) as rss:
        status = put_file(srv, token, "big/256.bin", src)
    assert status == 201
    assert rss.growth_mib <= MAX_GROWTH_MIB, f"VmRSS grew {rss.growth_mib:.1f} MiB"
    assert bucket_sha(garage, f"{PREFIX}/big/256.bin", tmp_path) == digest
    # 52 parts of 5 MiB (the last one short), none held whole in memory
    r = subprocess.run(["curl", "-sSI", srv.url("/media/big/256.bin")], capture_output=True,
                       text=True, timeout=30)
    assert re.search(r'(?i)etag: "[0-9a-f]+-52"', r.stdout), r.stdout


def test_an_upload_of_unknown_length_holds_at_most_one_part(env, tmp_path):
    srv, garage, token = env
    src = tmp_path / "chunked.bin"
    digest = random_file(src, 48)
    with RssPeak(srv.proc.pid) as rss:
        status = put_file(srv, token, "big/chunked.bin", src, chunked=True)
    assert status == 201
    assert rss.growth_mib <= MAX_GROWTH_MIB, f"VmRSS grew {rss.growth_mib:.1f} MiB"
    assert bucket_sha(garage, f"{PREFIX}/big/chunked.bin", tmp_path) == digest


@pytest.mark.parametrize("cut_at", [PART // 2, 2 * PART + 12345])
def test_a_put_cut_off_half_way_leaves_nothing_in_the_bucket(env, cut_at):
    srv, garage, token = env
    rel = f"cut/at-{cut_at}.bin"
    announced = 4 * PART
    head = (f"PUT /media/{rel} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in token.headers.items())
            + f"Content-Length: {announced}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(head)
        left = cut_at
        while left:
            n = min(left, 1 << 20)
            s.sendall(os.urandom(n))
            left -= n
        time.sleep(0.5)
    key = f"{PREFIX}/{rel}"

    def clean():
        return garage.curl_s3("GET", key)[0] == 404 and not unfinished_uploads(garage, key)

    wait_for(clean, timeout=15, what="the cut upload's multipart upload to be aborted")
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        srv.url(f"/media/{rel}")], capture_output=True, text=True, timeout=30)
    assert r.stdout == "404"
