#!/usr/bin/env python3
"""Time to first byte of a seek while other players stream (issue 17), for scripts/bench.sh.

    ttfb.py URL FILE_SIZE [PLAYERS] [SECONDS] [READ_KIB]

PLAYERS threads (default 50) each play like a seeking video player, for SECONDS (default 10):
open a connection, send `GET` with `Range: bytes=N-` (N random, open-ended: the player does not
know how much it will watch), time the wait from the request's last byte sent to the first
body byte received, read READ_KIB (default 1024) of the answer, close the connection (a player
that seeks drops the old stream) and seek again. Every answer must be a 206 whose
Content-Range starts at N. Prints one JSON line: count, p50/p90/p99/max in ms, errors.
Loopback only (the URL's host must be 127.0.0.1).
"""
import json
import random
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


def play(host, port, path, size, read_bytes, deadline, seed, out, errors):
    rnd = random.Random(seed)
    buf = bytearray(256 * 1024)
    while time.monotonic() < deadline:
        start = rnd.randrange(0, max(1, size - read_bytes))
        req = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Range: bytes={start}-\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            with socket.create_connection((host, port), timeout=30) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(req)
                t0 = time.perf_counter()
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed before the head")
                    head += chunk
                head, _, body = head.partition(b"\r\n\r\n")
                while not body:
                    body = s.recv(4096)
                    if not body:
                        raise ConnectionError("closed before the first body byte")
                ttfb = time.perf_counter() - t0
                lines = head.decode("latin-1").split("\r\n")
                if not lines[0].startswith("HTTP/1.1 206"):
                    raise ValueError(f"status line {lines[0]!r}")
                cr = [v for v in lines[1:] if v.lower().startswith("content-range:")]
                if not cr or not cr[0].split(":", 1)[1].strip().startswith(f"bytes {start}-"):
                    raise ValueError(f"Content-Range {cr!r} for bytes={start}-")
                got = len(body)
                while got < read_bytes:
                    n = s.recv_into(buf)
                    if n == 0:
                        raise ConnectionError("closed mid-body")
                    got += n
                out.append(ttfb)
        except (OSError, ValueError) as e:
            errors.append(str(e))


def main():
    url, size = sys.argv[1], int(sys.argv[2])
    players = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10
    read_bytes = (int(sys.argv[5]) if len(sys.argv) > 5 else 1024) * 1024
    u = urlsplit(url)
    if u.hostname != "127.0.0.1":
        sys.exit("ttfb.py: loopback only (127.0.0.1)")
    deadline = time.monotonic() + seconds
    out, errors = [], []
    threads = [
        threading.Thread(
            target=play,
            args=(u.hostname, u.port, u.path, size, read_bytes, deadline, i, out, errors),
        )
        for i in range(players)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.sort()

    def pct(p):
        return round(out[min(len(out) - 1, int(p / 100 * len(out)))] * 1000, 2) if out else None

    print(json.dumps({
        "count": len(out), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
        "max_ms": round(out[-1] * 1000, 2) if out else None,
        "errors": len(errors), "first_error": errors[0] if errors else None,
    }))


if __name__ == "__main__":
    main()
