"""The attack pass's F1: clients that stop reading must not hold the whole send pool.

Three addresses with 130 downloads each that read nothing held every one of the box's 384
frames (128 per address), and every other response waited behind them: `/healthz` took 53 s.
Now a response that waits for the pool closes a stalled connection of the address holding the
most, so the rest of the LAN is answered within a second or so, and a paused player of a
normal client (one frame held) is left alone.
"""

import os
import socket
import time

import pytest

from conftest import BIN_8M, MIB, read_response, wait_for
from test_abuse_conn import h2_zero_window

ATTACKERS = ("127.0.0.3", "127.0.0.4", "127.0.0.5")
PLAYER = "127.0.0.2"
PROBE = "127.0.0.6"


def stalled_download(port, src, path):
    """A GET whose body is never read: a tiny receive window, so the box's frame stays out."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return s


def h1_attack(port, src, path):
    """130 downloads that read nothing: more than the address's share of 128 frames."""
    return [stalled_download(port, src, path) for _ in range(130)]


def h2_attack(port, src, path, conns=5):
    """`conns` HTTP/2 connections of 32 downloads each, with a 1-byte window: each stream is
    sent one byte and holds its frame (a zero window holds none: the body is never read)."""
    return h2_zero_window(port, src, conns, 32, path, window=1)


def test_many_addresses_do_not_queue_ahead_of_everyone_else(servers, media):
    # The attack pass on the rule above: 40 addresses x 4 HTTP/2 connections x 32 streams
    # that read nothing. Each address stays under its share, so 4,700 streams waited for the
    # pool in arrival order, and every frame freed went to the next of them: a probe from
    # another address waited 23 s. Now a freed frame goes to the address holding least.
    srv = servers.start(media["root"], tls_listen=())
    path = f"/media/{BIN_8M}"
    socks = []
    try:
        for a in range(40):
            socks += h2_attack(srv.port, f"127.0.3.{a + 1}", path, conns=4)
        wait_pool_full(srv)
        for what, headers in (("/healthz", ""), (path, "Range: bytes=0-65535\r\n"),
                              ("/healthz", "")):
            r, took = timed_get(srv.port, PROBE, what, headers)
            assert r.status in (200, 206), r
            assert took < 8, f"{what} waited {took:.1f} s behind 40 addresses' stalled streams"
    finally:
        for s in socks:
            s.close()


def wait_pool_full(srv, answered=384):
    """Until `answered` downloads have their answer head and the box has stopped sending
    (its CPU time stands still: each socket first takes about a megabyte into its send
    buffer, which on a loaded machine takes seconds), and 3 s more, so every frame out
    counts as stalled."""
    wait_for(lambda: srv.stderr_text().count(f'path="/media/{BIN_8M}" status=') >= answered,
             timeout=60, what=f"{answered} downloads answered")

    def cpu():
        with open(f"/proc/{srv.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def still():
        before = cpu()
        time.sleep(0.5)
        return cpu() - before < 0.05

    wait_for(still, timeout=60, what="the box to stop sending")
    time.sleep(3)


def timed_get(port, src, path, headers=""):
    s = socket.socket()
    s.settimeout(20)
    s.bind((src, 0))
    t0 = time.monotonic()
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n".encode())
        r = read_response(s, timeout=20)
        return r, time.monotonic() - t0
    finally:
        s.close()


def read_all(s, limit=30):
    s.settimeout(limit)
    got = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            return got
        got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        if body and len(body) >= 8 * MIB:
            return got


@pytest.mark.parametrize("attack", [h1_attack, h2_attack], ids=["http1", "http2"])
def test_clients_that_stop_reading_give_way_to_the_rest(servers, media, attack):
    srv = servers.start(media["root"], tls_listen=())
    path = f"/media/{BIN_8M}"
    # A normal client's two paused players: one frame each, never the ones closed.
    players = [stalled_download(srv.port, PLAYER, path) for _ in range(2)]
    attackers = []
    try:
        for src in ATTACKERS:
            attackers += attack(srv.port, src, path)
        # Every frame of the pool is out (3 x 128) and has been for longer than the 2 s
        # after which a frame counts as stalled.
        wait_pool_full(srv, 2 + 384)
        for what, headers in (("/healthz", ""), (path, "Range: bytes=1000000-1065535\r\n")):
            r, took = timed_get(srv.port, PROBE, what, headers)
            assert r.status in (200, 206), r
            assert took < 8, f"{what} waited {took:.1f} s behind clients that read nothing"
            if headers:
                assert len(r.body) == 65536
        log = srv.stderr_text()
        assert "send pool full: closed a connection that stopped reading" in log, (
            log.count(f'path="/media/{BIN_8M}" status='), log.count("dropped"), log[-600:])
        closed = [line for line in log.splitlines() if "send pool full" in line]
        assert all(PLAYER not in line for line in closed), closed
        assert any(a in line for line in closed for a in ATTACKERS), closed
        # The paused players were not cut: each reads its whole file now.
        for p in players:
            got = read_all(p)
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            assert len(body) == 8 * MIB, f"a paused player got {len(body)} of {8 * MIB} bytes"
    finally:
        for s in attackers + players:
            s.close()
    r, took = timed_get(srv.port, PROBE, "/healthz")
    assert r.status == 200 and took < 2
