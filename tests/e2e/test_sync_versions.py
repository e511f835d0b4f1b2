"""A peer that speaks another sync API version is refused with a clear status, never
half-synced (issue 13, "Trust"). Real streamhub nodes on 127.0.0.1 with static peers
(`sync.peers`, no mDNS); the other-version peers are small TLS servers played here: one whose
only ALPN protocol is `streamhub-sync/2`, and one that speaks `streamhub-sync/1` on the wire
but answers `hello` with another API version.
"""

import json
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import AUTH_PW, BIN, basic_auth, cli_add_user, http_call, make_cert, wait_for


class FakePeer:
    """A TLS server on 127.0.0.1 offering `alpn`; `reply` answers every HTTP request."""

    def __init__(self, tmp_path, alpn, reply=None):
        cert, key = make_cert(tmp_path, f"fake-{alpn[0].replace('/', '-')}")
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(alpn)
        # No client certificate asked for: OpenSSL would check it against a CA (the node's
        # is self-signed), and what is tested here is what comes after the handshake.
        self.ctx.verify_mode = ssl.CERT_NONE
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hellos = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(raw,), daemon=True).start()

    def one(self, raw):
        raw.settimeout(10)
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
            f = s.makefile("rb")
            while True:
                line = f.readline()
                if not line:
                    return
                length = 0
                while (h := f.readline().strip()):
                    k, _, v = h.decode().partition(":")
                    if k.lower() == "content-length":
                        length = int(v)
                f.read(length)
                if b"/sync/v1/hello" in line:
                    self.hellos += 1
                status, body = self.reply(line) if self.reply else (404, b"{}")
                s.sendall(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                          f"content-length: {len(body)}\r\n\r\n".encode() + body)
        except (ssl.SSLError, OSError):
            pass
        finally:
            raw.close()

    def close(self):
        self.sock.close()


def node(servers, tmp_path, peer_port):
    key = subprocess.run([str(BIN), "cluster", "new"], capture_output=True, text=True,
                         check=True).stdout.strip()
    data = tmp_path / "data"
    cli_add_user(data, "root", admin=True, init=True)
    media = tmp_path / "media"
    media.mkdir()
    return servers.start(media, data_dir=data, env={
        "STREAMHUB_SYNC_CLUSTER_KEY": key,
        "STREAMHUB_SYNC_PEERS": f"127.0.0.1:{peer_port}",
        "STREAMHUB_SYNC_INTERVAL_SECS": "1",
    })


def peer_error(srv):
    r = http_call(srv, "GET", "/api/peers", headers=basic_auth("root", AUTH_PW), tls=True)
    assert r.status == 200, r.body
    (p,) = json.loads(r.body)["peers"]
    return p


@pytest.mark.parametrize("kind", ["alpn", "hello"])
def test_a_peer_of_another_sync_version_is_refused_with_a_clear_status(servers, tmp_path, kind):
    if kind == "alpn":
        fake = FakePeer(tmp_path, ["streamhub-sync/2"])
        expect = "does not speak streamhub-sync/1"
    else:
        def v2(line):
            return 409, json.dumps({"error": "api_version",
                                    "message": "this node speaks sync API 2; the peer sent 1"}).encode()
        fake = FakePeer(tmp_path, ["streamhub-sync/1"], reply=v2)
        expect = "speaks sync API 2"
    try:
        srv = node(servers, tmp_path, fake.port)
        p = wait_for(lambda: (lambda q: q if q["last_error"] else None)(peer_error(srv)), 15,
                     "the peer's error")
        assert expect in p["last_error"], p
        assert p["online"] is False and p["last_sync"] is None and p["id"] is None, p
        if kind == "alpn":
            assert fake.hellos == 0, "nothing is sent to a peer of another version"
    finally:
        fake.close()


def sync_client(tmp_path):
    """A TLS client offering the sync ALPN with a certificate of its own: anybody, as far as
    the cluster is concerned."""
    cert, key = make_cert(tmp_path, "outsider")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["streamhub-sync/1"])
    ctx.load_cert_chain(cert, key)
    return ctx


def test_before_membership_bodies_are_small_and_slow_ones_are_cut(servers, tmp_path):
    """The attack run held 1.6 GB and every connection slot with `hello` bodies of 2 MB sent
    a byte at a time: before a peer proves membership its bodies are at most 4 KiB and must
    arrive within the body deadline (2 s here), and a connection that has not proved
    membership is closed after the header timeout (4 s here)."""
    fake = FakePeer(tmp_path, ["streamhub-sync/2"])
    try:
        (tmp_path / "m").mkdir()
        srv = servers.start(tmp_path / "m", data_dir=tmp_path / "d", env={
            "STREAMHUB_SYNC_CLUSTER_KEY": subprocess.run(
                [str(BIN), "cluster", "new"], capture_output=True, text=True,
                check=True).stdout.strip(),
            "STREAMHUB_SYNC_PEERS": f"127.0.0.1:{fake.port}",
            "STREAMHUB_SERVER_BODY_READ_TIMEOUT_SECS": "2",
            "STREAMHUB_SERVER_HEADER_READ_TIMEOUT_SECS": "4",
        })
        ip, port = srv.https[0]
        ctx = sync_client(tmp_path)

        def connect():
            s = ctx.wrap_socket(socket.create_connection((ip, port), timeout=10))
            assert s.selected_alpn_protocol() == "streamhub-sync/1"
            return s

        def status(s):
            line = s.makefile("rb").readline()
            return int(line.split()[1]) if line else None

        # A big hello is refused before it is read.
        s = connect()
        s.sendall(b"POST /sync/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: 100000\r\n\r\n")
        assert status(s) == 413
        s.close()
        # A trickled one is cut at the body deadline.
        s = connect()
        s.sendall(b"POST /sync/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: 1000\r\n\r\n{")
        t0 = time.monotonic()
        assert status(s) == 408
        assert time.monotonic() - t0 < 6
        s.close()
        # A connection that said hello but never proved membership does not stay open.
        s = connect()
        body = json.dumps({"api": 1, "nonce": "A" * 43}).encode()
        s.sendall(b"POST /sync/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  + f"content-length: {len(body)}\r\n\r\n".encode() + body)
        f = s.makefile("rb")
        assert int(f.readline().split()[1]) == 200
        t0 = time.monotonic()
        s.settimeout(15)
        while f.read(1):
            pass
        assert time.monotonic() - t0 < 9, "the server closed the non-member's connection"
        s.close()
    finally:
        fake.close()
