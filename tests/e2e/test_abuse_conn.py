"""Issue 12, items 1 and 2 and the slow-body finding: one client address must not take every
connection slot or grow the box's memory without bound, and the rest of the LAN is served.

The attacking clients use other loopback source addresses (127.0.0.3 and up) than the
clients that check the service (127.0.0.2), as two boxes on a LAN would.
"""

import json
import socket
import time

import h2.config
import h2.connection
import h2.settings
import pytest

from conftest import BIN_8M, read_response, rss_kib, wait_all_closed

ATTACKER = "127.0.0.3"
OTHER = "127.0.0.2"


def connect(port, src, timeout=10):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def get(port, path, src=OTHER, headers="", timeout=10):
    s = connect(port, src, timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n".encode())
        return read_response(s, timeout=timeout)
    finally:
        s.close()




def test_silent_plain_connections_get_the_header_timeout_not_the_idle_one(servers, media):
    # A connection that never sends a byte used to be kept for idle_timeout_secs (60 s).
    srv = servers.start(media["root"], tls_listen=(),
                        config="[server]\nheader_read_timeout_secs = 2\nidle_timeout_secs = 60\n")
    socks = [connect(srv.port, ATTACKER) for _ in range(30)]
    try:
        closed = wait_all_closed(socks, 10)
        assert len(closed) == len(socks), f"only {len(closed)}/{len(socks)} closed within 10 s"
        assert min(closed.values()) >= 1.0, "closed before the header timeout"
        assert get(srv.port, "/healthz").status == 200
    finally:
        for s in socks:
            s.close()


def hold_slots(port, src, n):
    """n connections from `src`, each holding its slot with half a request head."""
    held = [connect(port, src) for _ in range(n)]
    for s in held:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
    return held


def test_one_address_cannot_take_every_slot(servers, media):
    srv = servers.start(media["root"], tls_listen=(), config=(
        "[server]\nmax_connections = 40\nmax_connections_per_ip = 10\n"
        "header_read_timeout_secs = 60\n"))
    held = hold_slots(srv.port, ATTACKER, 10)
    try:
        time.sleep(0.3)
        # The 11th connection from that address is refused with an answer it can read.
        r = get(srv.port, "/healthz", src=ATTACKER)
        assert r.status == 429, r
        assert r.header("retry-after") == "5"
        assert r.json()["error"] == "too_many_connections"
        assert "max_connections_per_ip" in r.json()["message"]
        # The rest of the LAN is served at once.
        t0 = time.monotonic()
        assert get(srv.port, "/healthz", src=OTHER).status == 200
        assert time.monotonic() - t0 < 1
        # A slot comes back when one of the address's connections ends.
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            r = get(srv.port, "/healthz", src=ATTACKER)
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.status == 200, r
    finally:
        for s in held:
            s.close()


def test_per_address_cap_zero_is_off(servers, media):
    # Behind a reverse proxy every client has the proxy's address.
    srv = servers.start(media["root"], tls_listen=(), config=(
        "[server]\nmax_connections = 60\nmax_connections_per_ip = 0\n"
        "header_read_timeout_secs = 60\n"))
    held = hold_slots(srv.port, ATTACKER, 30)
    try:
        assert get(srv.port, "/healthz", src=ATTACKER).status == 200
    finally:
        for s in held:
            s.close()


def test_a_trickled_json_body_is_cut_at_the_body_deadline(servers, media):
    # 1,100 logins sending one byte every few seconds used to hold every slot for minutes.
    srv = servers.start(media["root"], tls_listen=(),
                        config="[server]\nbody_read_timeout_secs = 2\n")
    s = connect(srv.port, ATTACKER, timeout=15)
    try:
        s.sendall(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 60000\r\n\r\n{")
        t0 = time.monotonic()
        s.settimeout(0.5)
        got = b""
        while time.monotonic() - t0 < 10:
            try:
                s.sendall(b" ")
            except OSError:
                break
            try:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got:
                    break
            except socket.timeout:
                pass
        elapsed = time.monotonic() - t0
        assert got.startswith(b"HTTP/1.1 408"), got[:200]
        assert 1.5 <= elapsed < 6, elapsed
        body = got.split(b"\r\n\r\n", 1)[1]
        if body:
            assert json.loads(body.decode(errors="replace").strip() or "{}").get("error") in (None, "body_timeout")
    finally:
        s.close()


def h2_zero_window(port, src, conns, streams, path, window=0):
    """`conns` HTTP/2 (h2c) connections, each asking for `streams` downloads of `path` with a
    flow-control window of `window` bytes (zero: the server may send nothing); returns the
    open sockets."""
    out = []
    for _ in range(conns):
        s = connect(port, src)
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        for _ in range(streams):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                 (":authority", "127.0.0.1")], end_stream=True)
        s.sendall(c.data_to_send())
        out.append(s)
    return out


def probe_p99(port, n=20):
    times = []
    for i in range(n):
        t0 = time.monotonic()
        assert get(port, "/healthz", timeout=5).status == 200
        r = get(port, f"/media/{BIN_8M}", headers=f"Range: bytes={i * 65536}-{i * 65536 + 65535}\r\n", timeout=5)
        assert r.status == 206 and len(r.body) == 65536
        times.append(time.monotonic() - t0)
    times.sort()
    return times[int(len(times) * 0.99) - 1] if len(times) > 1 else times[0]


def test_http2_streams_with_a_closed_window_hold_bounded_memory(servers, media):
    # 250 connections x 64 such streams took the box from 12 to 1,043 MiB, and it stayed there.
    srv = servers.start(media["root"], tls_listen=())
    pid = srv.proc.pid
    get(srv.port, "/healthz")
    time.sleep(1)
    idle = rss_kib(pid)
    socks = h2_zero_window(srv.port, ATTACKER, 200, 64, f"/media/{BIN_8M}")
    try:
        time.sleep(3)
        during = rss_kib(pid)
        p99 = probe_p99(srv.port)
        during = max(during, rss_kib(pid))
        # The < 1 s p99 target is measured by scripts/abuse/h2-zero-window.sh; here: no hang.
        assert p99 < 3.0, f"other clients waited {p99:.2f} s"
        assert during - idle <= 64 * 1024, f"RSS grew by {(during - idle) // 1024} MiB under the attack"
    finally:
        for s in socks:
            s.close()
    # Memory goes back once the attack ends (the allocator is trimmed every few seconds).
    deadline = time.monotonic() + 30
    while rss_kib(pid) - idle > 8 * 1024 and time.monotonic() < deadline:
        time.sleep(1)
    after = rss_kib(pid)
    assert after - idle <= 8 * 1024, f"RSS {after // 1024} MiB after the attack, idle was {idle // 1024} MiB"
