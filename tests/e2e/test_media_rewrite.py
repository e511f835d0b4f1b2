"""A media file rewritten in place while it is downloaded (attack pass F1): the download ends
short, so the client knows it is incomplete, instead of getting a mix of the two versions
under the first one's ETag as a complete response. The service log says why."""

import socket
from pathlib import Path
import time

from test_media_rewrite_tail import _rest

MIB = 1 << 20
SIZE = 64 * MIB


def _download(srv, rel, rewrite=None):
    """GET over plain HTTP with a small receive window, reading slowly enough that the
    server is mid-file when `rewrite` runs (after the first MiB). Returns (Content-Length,
    body bytes received before the server closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(30)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(f"GET /media/{rel} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "closed before the head"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
                 .split(b":")[1])
    got = len(body)
    while got < MIB:
        chunk = s.recv(65536)
        assert chunk, "closed early"
        got += len(chunk)
    if rewrite:
        rewrite()
    got += len(_rest(s))
    return length, got


def _media(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    (root / "film.mkv").write_bytes(bytes(range(256)) * (SIZE // 256))
    return root


def test_a_file_rewritten_during_a_download_ends_it_short(servers, tmp_path):
    root = _media(tmp_path)
    srv = servers.start(str(root), tls_listen=(), name="rewrite")
    path = root / "film.mkv"

    def dd_conv_notrunc():
        time.sleep(0.05)  # a later clock tick than the file's creation: a new mtime
        with open(path, "r+b") as f:
            f.seek(0)
            f.write(b"\xaa" * MIB)

    length, got = _download(srv, "film.mkv", dd_conv_notrunc)
    assert length == SIZE
    assert got < length, "a download that spanned a rewrite arrived as complete"
    deadline = time.monotonic() + 10
    log = ""
    while "a response body ended early" not in log and time.monotonic() < deadline:
        time.sleep(0.1)
        log = Path(srv.stderr_path).read_text(errors="replace")
    assert "a response body ended early" in log and "file changed while being read" in log, log[-2000:]


def test_an_unchanged_file_downloads_whole(servers, tmp_path):
    root = _media(tmp_path)
    srv = servers.start(str(root), tls_listen=(), name="unchanged")
    length, got = _download(srv, "film.mkv")
    assert (length, got) == (SIZE, SIZE)
