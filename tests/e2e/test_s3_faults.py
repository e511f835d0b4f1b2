"""The S3 backend when the object store is wrong or gone (a real Garage node, `garage`
fixture): a wrong secret, a missing bucket or an unreachable endpoint stop the start with a
message naming the key to fix; Garage stopped while the service is idle makes media answer
503 with Retry-After at once, while notes and /healthz keep answering, and media comes back
by itself when Garage does.
"""

import socket
import time

import pytest

from conftest import (
    AUTH_PW,
    cli_add_user,
    http_call,
    must_login,
    new_token,
)

PREFIX = "faults"


def start_failure(servers, tmp_path, env):
    """Starts a server that must refuse to start; returns its stderr."""
    root = tmp_path / "unused-root"
    root.mkdir(exist_ok=True)
    srv = servers.start(root, tls_listen=(), env=env, wait=False, name="s3bad")
    rc = srv.proc.wait(timeout=60)
    assert rc != 0, "the server started with a broken [s3] config"
    assert not any(line.startswith("listening on") for line in srv.stdout_lines or [])
    return srv.stderr_text()


def test_wrong_secret_names_the_credentials(servers, garage, tmp_path):
    env = {**garage.env(PREFIX), "STREAMHUB_S3_SECRET_ACCESS_KEY": "0" * 64}
    err = start_failure(servers, tmp_path, env)
    assert "s3.secret_access_key" in err, err[-2000:]


def test_missing_bucket_names_the_bucket(servers, garage, tmp_path):
    env = {**garage.env(PREFIX), "STREAMHUB_S3_BUCKET": "no-such-bucket"}
    err = start_failure(servers, tmp_path, env)
    assert "s3.bucket" in err and "no-such-bucket" in err, err[-2000:]


def test_unreachable_endpoint_names_the_endpoint(servers, garage, tmp_path):
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**garage.env(PREFIX), "STREAMHUB_S3_ENDPOINT": f"http://127.0.0.1:{port}"}
    t0 = time.monotonic()
    err = start_failure(servers, tmp_path, env)
    assert "s3.endpoint" in err, err[-2000:]
    assert time.monotonic() - t0 < 30


def test_garage_down_while_idle_media_503_fast_notes_answer(servers, garage, tmp_path):
    status, _ = garage.curl_s3("PUT", f"{PREFIX}/clip.bin", b"0123456789")
    assert status == 200
    root = tmp_path / "unused-root"
    root.mkdir()
    env = {**garage.env(PREFIX), "STREAMHUB_STORAGE_TIMEOUT_SECS": "3"}
    srv = servers.start(root, tls_listen=(), env=env, name="s3down")
    cli_add_user(srv.data_dir, "mia")
    cred = new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-notes")
    assert http_call(srv, "GET", "/media/clip.bin").body == b"0123456789"
    garage.stop()
    try:
        t0 = time.monotonic()
        r = http_call(srv, "GET", "/media/clip.bin", timeout=30)
        took = time.monotonic() - t0
        assert r.status == 503, r
        assert r.json()["error"] == "storage_unavailable", r
        assert int(r.header("retry-after")) > 0, r
        assert took < 2.0, f"503 took {took:.2f} s"
        for path in ("/healthz", "/api/notes"):
            t0 = time.monotonic()
            r = http_call(srv, "GET", path, headers=cred.headers, timeout=10)
            assert r.status == 200, (path, r)
            assert time.monotonic() - t0 < 1.0, path
    finally:
        garage.start()
    deadline = time.monotonic() + 20
    while True:
        r = http_call(srv, "GET", "/media/clip.bin", timeout=30)
        if r.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status == 200 and r.body == b"0123456789", r


def test_garage_stopped_mid_stream_cuts_the_connection(servers, garage, tmp_path):
    """The client sees a cut connection and a prefix of the right bytes, never wrong ones."""
    import random
    import subprocess

    body = random.Random("midstream").randbytes(64 * 1024 * 1024)
    status, _ = garage.curl_s3("PUT", f"{PREFIX}/long.bin", body)
    assert status == 200
    root = tmp_path / "unused-root"
    root.mkdir()
    env = {**garage.env(PREFIX), "STREAMHUB_STORAGE_TIMEOUT_SECS": "3"}
    srv = servers.start(root, tls_listen=(), env=env, name="s3mid")
    out = tmp_path / "got.bin"
    curl = subprocess.Popen(["curl", "-sS", "--limit-rate", "4M", "-o", str(out),
                             srv.url("/media/long.bin")], stderr=subprocess.PIPE)
    try:
        wait_for_size(out, 1024 * 1024)
        garage.kill()
        rc = curl.wait(timeout=60)
    finally:
        if curl.poll() is None:
            curl.kill()
        garage.start()
    got = out.read_bytes()
    assert rc != 0, "curl finished as if the whole file had arrived"
    assert len(got) < len(body)
    assert got == body[:len(got)], "bytes differ from the object's"


def wait_for_size(path, n, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} bytes")
