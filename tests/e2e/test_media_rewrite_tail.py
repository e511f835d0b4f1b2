"""A media file rewritten in place after the service has handed the end of a response to the
socket (attack pass of stop 35). Bytes sent with `sendfile` stay page-cache pages in the
socket until the client reads them, so a rewrite then changed what the client got, under the
old ETag, as a complete response. The end of a long response and every multi-range answer are
now copied and checked: the client gets either the old bytes whole, or a response that ends
short. Never both versions as a complete answer.

The client shrinks its receive buffer and stops reading, so the service's socket holds the
response's tail when the file is rewritten (as the attack pass did it)."""

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

KIB = 1 << 10
MIB = 1 << 20


def _pattern(size):
    return bytes(range(256)) * (size // 256)


def _open(srv, rel, extra=""):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * KIB)
    s.settimeout(30)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(
        f"GET /media/{rel} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n".encode()
    )
    return s


def _read(s, n):
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(min(n - len(out), 64 * KIB))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _rest(s):
    out = bytearray()
    while True:
        try:
            chunk = s.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return bytes(out)


def _server_send_queue(port):
    """Bytes waiting in the service's side of the client connections on `port` (once it has
    handed over the whole response it closes: FIN-WAIT, not established)."""
    out = subprocess.run(
        ["ss", "-tnH", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    # State, Recv-Q, Send-Q, local, peer.
    return sum(int(line.split()[2]) for line in out.splitlines() if line.strip())


def _until_queued(port, at_least):
    """Waits until the service has handed at least `at_least` bytes to its socket and stopped
    (the queue no longer grows): the tail of the response is in the kernel."""
    deadline = time.monotonic() + 20
    last, steady = -1, 0
    while time.monotonic() < deadline:
        q = _server_send_queue(port)
        steady = steady + 1 if q == last else 0
        last = q
        if q >= at_least and steady >= 5:
            return q
        time.sleep(0.05)
    raise AssertionError(f"the service queued {last} bytes, expected at least {at_least}")


def _rewrite(path, size):
    time.sleep(0.02)  # a later clock tick than the file's creation: a new mtime
    with open(path, "r+b") as f:
        f.write(b"\xaa" * size)


def _head_and_body(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    return head, length, body


def _media(tmp_path, name, size):
    root = tmp_path / "media"
    root.mkdir()
    data = _pattern(size)
    (root / name).write_bytes(data)
    return root, data


def _across_rewrite(srv, path, size, read_first, queued, extra=""):
    """GETs `path` with a small receive buffer, reads `read_first` bytes, waits until the
    service has queued at least `queued` bytes and stopped, rewrites the file in place, then
    reads the rest. Returns (head, Content-Length, body)."""
    s = _open(srv, path.name, extra)
    first = _read(s, read_first)
    _until_queued(srv.port, queued)
    _rewrite(path, size)
    return _head_and_body(first + _rest(s))


def _assert_whole_old_or_short(length, body, old):
    if len(body) < length:
        return "short"
    assert len(body) == length
    assert body == old, (
        f"a complete response mixes versions: {sum(1 for i in range(0, len(body), 4096) if body[i:i+4096] != old[i:i+4096])}"
        f" of {len(body) // 4096} blocks differ from the version its ETag names"
    )
    return "old"


@pytest.mark.parametrize(
    "size, read_first",
    [
        # 3 MiB: the whole answer fits in the socket buffers after the first 32 KiB.
        (3 * MIB, 32 * KIB),
        # 64 MiB: everything but the last 2 MiB at the client's full speed, so the service
        # reaches the end; its start went out with `sendfile`, its end is copied.
        (64 * MIB, 62 * MIB),
    ],
    ids=["short", "long"],
)
def test_a_file_rewritten_after_its_end_was_queued_never_arrives_complete_and_mixed(
    servers, tmp_path, size, read_first
):
    root, data = _media(tmp_path, "film.mkv", size)
    srv = servers.start(str(root), tls_listen=(), name="tail")
    head, length, body = _across_rewrite(srv, root / "film.mkv", size, read_first, 1 * MIB)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert length == size
    _assert_whole_old_or_short(length, body, data)


def test_a_multi_range_answer_rewritten_after_it_was_queued_never_arrives_complete_and_mixed(
    servers, tmp_path
):
    size = 3 * MIB
    root, data = _media(tmp_path, "clip.mkv", size)
    srv = servers.start(str(root), tls_listen=(), name="tail-multi")
    ranges = [(i * 192 * KIB, i * 192 * KIB + 64 * KIB - 1) for i in range(16)]
    spec = ",".join(f"{a}-{b}" for a, b in ranges)
    head, length, body = _across_rewrite(
        srv, root / "clip.mkv", size, 16 * KIB, 512 * KIB, f"Range: bytes={spec}\r\n"
    )
    assert head.startswith(b"HTTP/1.1 206"), head
    if len(body) < length:
        return
    boundary = re.search(rb"boundary=([^\r\n;]+)", head).group(1)
    parts = [p for p in body.split(b"--" + boundary) if b"Content-Range" in p]
    assert len(parts) == 16
    for (a, b), part in zip(ranges, parts):
        got = part.split(b"\r\n\r\n", 1)[1][: b - a + 1]
        assert got == data[a : b + 1], f"part {a}-{b} of a complete multi-range answer is from another version"


def test_an_unchanged_long_download_is_whole_after_the_copied_tail(servers, tmp_path):
    size = 64 * MIB
    root, data = _media(tmp_path, "film.mkv", size)
    srv = servers.start(str(root), tls_listen=(), name="tail-whole")
    s = _open(srv, "film.mkv")
    head, length, body = _head_and_body(_rest(s))
    assert length == size and body == data


def test_a_multi_range_answer_whose_file_is_rewritten_between_parts_ends_short(servers, tmp_path):
    # 200 parts of 48 KiB, each read in one chunk (so no part checks on its own), 9.4 MiB in
    # all: the service is still reading parts when the client stops reading, and meets the
    # rewrite when it checks the version after the last one.
    size = 64 * MIB
    root, _ = _media(tmp_path, "film.mkv", size)
    srv = servers.start(
        str(root), tls_listen=(), name="multi-short",
        env={"STREAMHUB_STREAMING_MAX_RANGES": "200"},
    )
    ranges = [(i * 320 * KIB, i * 320 * KIB + 48 * KIB - 1) for i in range(200)]
    spec = ",".join(f"{a}-{b}" for a, b in ranges)
    head, length, body = _across_rewrite(
        srv, root / "film.mkv", size, 16 * KIB, 512 * KIB, f"Range: bytes={spec}\r\n"
    )
    assert head.startswith(b"HTTP/1.1 206"), head
    assert len(body) < length, "an answer whose parts span a rewrite arrived as complete"
    deadline = time.monotonic() + 10
    log = ""
    while "a response body ended early" not in log and time.monotonic() < deadline:
        time.sleep(0.1)
        log = Path(srv.stderr_path).read_text(errors="replace")
    assert "file changed while being read" in log, log[-2000:]
