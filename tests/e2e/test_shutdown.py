"""SIGTERM: graceful drain of in-flight downloads, bounded by shutdown_grace_secs."""

import signal
import socket
import subprocess
import time

from conftest import BIN_8M, MIB, media_path, wait_exit


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
        except ConnectionRefusedError:
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


def test_sigterm_grace_period_bounds_exit(servers, media, tmp_path):
    srv = servers.start(media["root"], config="[server]\nshutdown_grace_secs = 1\n")
    out = tmp_path / "slow.bin"
    curl = _start_slow_download(srv.url(media_path(BIN_8M)), out, "100K")
    try:
        _wait_for_bytes(out, 50_000, curl)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = wait_exit(srv.proc, 1 + 5)
        elapsed = time.monotonic() - t0
        assert rc is not None, "server did not exit within grace + 5 s"
        assert rc == 0, f"exit code {rc}"
        assert elapsed >= 0.5, f"exited after {elapsed:.2f}s: in-flight request not given its grace"
        # the download was cut short
        curl.wait(timeout=10)
        assert curl.returncode != 0
        assert out.stat().st_size < 8 * MIB
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait()


def test_sigint_also_exits_zero(servers, media):
    srv = servers.start(media["root"])
    srv.signal(signal.SIGINT)
    assert wait_exit(srv.proc, 10) == 0
