"""One-shot uploads to S3 (PUT) whose multipart upload cannot be aborted when they fail (a real
Garage node, `garage` fixture): streamhub killed -9 half-way (no abort at all), or Garage
killed half-way (the abort cannot reach it). Either way the unfinished multipart upload must
not stay in the bucket: streamhub records its own uploads in its data dir and aborts the
recorded ones at the next start, or once the store is back.
"""

import os
import socket
import time

from conftest import AUTH_PW, cli_add_user, must_login, new_token, wait_for
from test_s3_uploads import unfinished_uploads

PREFIX = "crash"
PART = 5 * 1024 * 1024


def start(servers, garage, tmp_path, name, data=None):
    env = {
        **garage.env(PREFIX),
        "STREAMHUB_S3_PART_SIZE_MIB": "5",
        "STREAMHUB_UPLOADS_MAX_BYTES": str(1 << 30),
        "STREAMHUB_STORAGE_TIMEOUT_SECS": "3",
        # The sweep that retries aborts runs every min(expiry, 60) s: 2 s here.
        "STREAMHUB_UPLOADS_TUS_EXPIRY_SECS": "2",
    }
    root = tmp_path / "unused-root"
    root.mkdir(exist_ok=True)
    return servers.start(root, data_dir=data or tmp_path / "data", tls_listen=(), env=env,
                         name=name)


def open_put(srv, token, rel, announced):
    """A PUT whose body is sent by the caller on the returned socket."""
    head = (f"PUT /media/{rel} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in token.headers.items())
            + f"Content-Length: {announced}\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(head)
    return s


def send(s, n):
    while n:
        k = min(n, 1 << 20)
        s.sendall(os.urandom(k))
        n -= k


def member(srv):
    cli_add_user(srv.data_dir, "mia")
    return new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-s3-crash")


def test_kill_9_mid_put_then_restart_aborts_the_unfinished_upload(servers, garage, tmp_path):
    srv = start(servers, garage, tmp_path, "s3crash")
    token = member(srv)
    rel, key = "k9/movie.bin", f"{PREFIX}/k9/movie.bin"
    s = open_put(srv, token, rel, 4 * PART)
    try:
        send(s, 2 * PART + 1000)
        wait_for(lambda: unfinished_uploads(garage, key), 15, "the multipart upload to start")
        srv.proc.kill()
        srv.proc.wait(timeout=10)
    finally:
        s.close()
    time.sleep(1)
    assert unfinished_uploads(garage, key), "nothing left to clean up: the test proves nothing"
    start(servers, garage, tmp_path, "s3crash2", data=srv.data_dir)
    wait_for(lambda: not unfinished_uploads(garage, key), 15,
             "the dead process's multipart upload to be aborted after the restart")
    assert garage.curl_s3("GET", key)[0] == 404
    assert not list((srv.data_dir / "s3-staging").iterdir()), "its record is left"


def test_garage_killed_mid_put_the_upload_is_aborted_once_it_is_back(servers, garage, tmp_path):
    srv = start(servers, garage, tmp_path, "s3gkill")
    token = member(srv)
    rel, key = "gk/movie.bin", f"{PREFIX}/gk/movie.bin"
    s = open_put(srv, token, rel, 4 * PART)
    try:
        send(s, PART + 1000)
        wait_for(lambda: unfinished_uploads(garage, key), 15, "the multipart upload to start")
        garage.kill()
        try:
            # The next part cannot reach the store: the upload fails and its abort too.
            send(s, PART)
        except OSError:
            pass
        s.settimeout(30)
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 5"), answer
    finally:
        s.close()
        garage.start()
    assert srv.proc.poll() is None
    wait_for(lambda: not unfinished_uploads(garage, key), 20,
             "the upload whose abort failed to be aborted once Garage is back")
    assert garage.curl_s3("GET", key)[0] == 404
    wait_for(lambda: not list((srv.data_dir / "s3-staging").iterdir()), 10,
             "its record to go")
