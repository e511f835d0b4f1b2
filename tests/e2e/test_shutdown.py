"""SIGTERM: graceful drain of in-flight downloads, bounded by shutdown_grace_secs."""

import re
import signal
import socket
import subprocess
import time

from conftest import BIN_8M, HUGE, HUGE_SIZE, MIB, media_path, raw_get, wait_exit


def _start_slow_download(url, out, rate):
    return subprocess.Popen(
        ["curl", "-sS", "--noproxy", "*", "--limit-rate", rate, "-o", str(out), url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_for_bytes(path, n, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= n:
            return
        assert proc.poll() is None, f"curl ended early: {proc.stderr.read()!r}"
        time.sleep(0.05)
    raise AssertionError(f"download did not reach {n} bytes in {timeout}s")


def _connect_refused(port, timeout=3.0):
    """True once a new TCP connection to port is refused (polls up to timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
        except (ConnectionRefusedError, ConnectionResetError):
            # reset: the SYN raced with the listener being closed
            return True
        else:
            s.close()
        time.sleep(0.05)
    return False


def test_sigterm_drains_inflight_download(servers, media, tmp_path):
    srv = servers.start(media["root"])
    out = tmp_path / "download.bin"
    curl = _start_slow_download(srv.url(media_path(BIN_8M)), out, "2M")
    try:
        _wait_for_bytes(out, MIB, curl)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        assert _connect_refused(srv.port), "new connections still accepted after SIGTERM"
        assert _connect_refused(srv.tls_port), "TLS listener still accepting after SIGTERM"
        assert curl.wait(timeout=30) == 0, curl.stderr.read()
        assert out.read_bytes() == media["data"][BIN_8M]
        rc = wait_exit(srv.proc, 10)
        assert rc == 0, f"exit code {rc}"
        assert time.monotonic() - t0 < 15
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait()


class SlowReader:
    """A raw HTTP client with a small fixed receive buffer (no autotuning), so the
    server really has unsent data in flight while the client reads slowly."""

    def __init__(self, port, target, rcvbuf=64 * 1024):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(20)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            assert chunk, "closed before response head"
            buf += chunk
        head, _, self.body = buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        self.length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))

    def read(self, n, rate=None):
        """Read until n body bytes (or EOF); rate in bytes/s paces the reads."""
        t0 = time.monotonic()
        start = len(self.body)
        while len(self.body) < n:
            try:
                chunk = self.sock.recv(min(65536, n - len(self.body)))
            except ConnectionResetError:
                break
            if not chunk:
                break
            self.body += chunk
            if rate:
                due = t0 + (len(self.body) - start) / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        return self.body

    def close(self):
        self.sock.close()


def test_sigterm_drain_with_data_still_unsent(servers, media):
    # 8 MiB through a 64 KiB receive window at 4 MiB/s: when SIGTERM arrives, MiBs
    # are still in the server's hands, so this really exercises the drain.
    srv = servers.start(media["root"])
    c = SlowReader(srv.port, media_path(BIN_8M))
    try:
        assert c.status == 200 and c.length == 8 * MIB
        c.read(MIB, rate=4 * MIB)
        srv.signal(signal.SIGTERM)
        c.read(8 * MIB, rate=4 * MIB)
        assert len(c.body) == 8 * MIB, f"download cut at {len(c.body)} bytes"
        assert c.body == media["data"][BIN_8M]
        assert wait_exit(srv.proc, 10) == 0
    finally:
        c.close()


def test_sigterm_grace_period_bounds_exit(servers, media):
    srv = servers.start(media["root"], config="[server]\nshutdown_grace_secs = 1\n")
    # 5 GiB never fits in socket buffers: the request is in flight for sure
    c = SlowReader(srv.port, media_path(HUGE), rcvbuf=16 * 1024)
    try:
        assert c.status == 200 and c.length == HUGE_SIZE
        c.read(64 * 1024)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = wait_exit(srv.proc, 1 + 5)
        elapsed = time.monotonic() - t0
        assert rc is not None, "server did not exit within grace + 5 s"
        assert rc == 0, f"exit code {rc}"
        assert elapsed >= 0.5, f"exited after {elapsed:.2f}s: in-flight request not given its grace"
        # the download was cut short: EOF (or reset) long before 5 GiB
        c.read(HUGE_SIZE)
        assert len(c.body) < HUGE_SIZE
    finally:
        c.close()


def test_sigint_also_exits_zero(servers, media):
    srv = servers.start(media["root"])
    assert raw_get(srv.port, "/healthz").status == 200
    srv.signal(signal.SIGINT)
    assert wait_exit(srv.proc, 10) == 0
