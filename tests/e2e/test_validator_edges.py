"""Validator and Host edges found by the attack pass of stop 35:

- a file's date is a weak validator within its own second (RFC 9110 §8.8.2.2; two, for
  FAT's 2 s steps): it is not sent as Last-Modified then, and `If-Range` with it does not
  match, so a resumed download never joins two versions written within one second;
- a 304 answer to HEAD carries no `Content-Length: 0` (RFC 9110 §8.6);
- two `Host` lines, or a `Host` that is not `host[:port]`, get 400 with a JSON error (RFC 9112
  §3.2), whatever name the first line gives.
"""

import json
import os
import socket
import time
from email.utils import formatdate

from conftest import curl_fetch

MIB = 1 << 20


def _start_of_a_second():
    """Sleeps to just after a whole second: the next 0.9 s are one second of file dates."""
    now = time.time()
    time.sleep(1 - (now % 1) + 0.02)


def _url(srv, rel):
    return f"http://127.0.0.1:{srv.port}/media/{rel}"


def test_a_date_is_sent_and_matched_only_once_its_seconds_are_over(servers, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    srv = servers.start(str(root), tls_listen=(), name="weak-date")
    path = root / "part.bin"
    _start_of_a_second()
    path.write_bytes(b"a" * MIB)
    mtime = os.stat(path).st_mtime
    date = formatdate(int(mtime), usegmt=True)
    r = curl_fetch(_url(srv, "part.bin"), headers=["Range: bytes=0-9"])
    assert time.time() < int(mtime) + 1, "the test ran too slowly to be within the second"
    assert r.status == 206
    assert r.header("etag"), "the entity-tag is always sent"
    assert r.header("last-modified") is None, "a date within its own second was sent"
    # A client holding the date (from anywhere) gets the whole file, not a part that may
    # belong to another version written in the same second.
    r = curl_fetch(_url(srv, "part.bin"), headers=["Range: bytes=10-19", f"If-Range: {date}"])
    assert r.status == 200 and len(r.body) == MIB, r.status

    time.sleep(max(0.0, int(mtime) + 2.05 - time.time()))
    r = curl_fetch(_url(srv, "part.bin"), headers=["Range: bytes=0-9"])
    assert r.header("last-modified") == date
    r = curl_fetch(_url(srv, "part.bin"), headers=["Range: bytes=10-19", f"If-Range: {date}"])
    assert r.status == 206 and r.body == b"a" * 10


def test_a_304_to_head_has_no_content_length(servers, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    (root / "clip.mkv").write_bytes(b"x" * 1000)
    srv = servers.start(str(root), tls_listen=(), name="head-304")
    etag = curl_fetch(_url(srv, "clip.mkv"), method="HEAD").header("etag")
    for method in ("HEAD", None):
        r = curl_fetch(_url(srv, "clip.mkv"), headers=[f"If-None-Match: {etag}"], method=method)
        assert r.status == 304
        assert r.header("content-length") is None, (method, r.header("content-length"))


def _raw(srv, head_lines, target="/media/clip.mkv"):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall((f"GET {target} HTTP/1.1\r\n" + "".join(f"{l}\r\n" for l in head_lines)
               + "Connection: close\r\n\r\n").encode())
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_a_doubled_or_malformed_host_is_a_bad_request(servers, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    (root / "clip.mkv").write_bytes(b"x" * 1000)
    srv = servers.start(str(root), tls_listen=(), name="bad-host")
    ours = f"127.0.0.1:{srv.port}"
    for lines in (
        [f"Host: {ours}", "Host: evil.example"],
        [f"Host: user@{ours}"],
        ["Host: 127.0.0.1:http"],
        ["Host: 127.0.0.1:99999"],
        ["Host: 127.0.0.1:"],
        ["Host: pi<script>"],
        ["Host: localhost:+80"],
        ["Host: [::1]evil.com"],
        ["Host: [fe80::1%25eth0]"],
        ["Host: evil.com\u00e9"],  # not ASCII: it counted as no Host at all
    ):
        status, body = _raw(srv, lines)
        assert b" 400 " in status, (lines, status)
        err = json.loads(body)
        assert err["error"] == "bad_host" and "Host" in err["message"], err
    for target in (f"http://u@{ours}/media/clip.mkv", "http://127.0.0.1:99999/media/clip.mkv"):
        status, body = _raw(srv, [f"Host: {ours}"], target)
        assert b" 400 " in status, (target, status)
        err = json.loads(body)
        assert err["error"] == "bad_host" and "authority" in err["message"], err
    status, _ = _raw(srv, [f"Host: {ours}"])
    assert b" 200 " in status
    # Empty: a name-less request, as HTTP/1.0 tools send (no browser can be made to).
    status, _ = _raw(srv, ["Host:"])
    assert b" 200 " in status
