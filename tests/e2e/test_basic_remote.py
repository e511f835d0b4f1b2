"""HTTP Basic from another machine: refused over plain HTTP (the password would cross the
LAN in clear), accepted over HTTPS.

"Another machine" is a pair of network namespaces joined by a veth link that this test
creates and removes (`ip netns add`); the server listens on the private address inside one,
curl runs in the other. No packet reaches the host's real interfaces.
"""

import os
import subprocess
import uuid

import pytest

from conftest import AUTH_PW, BIN, clean_env, cli_add_user

SERVER_IP, CLIENT_IP = "10.213.7.1", "10.213.7.2"


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture()
def netns():
    tag = uuid.uuid4().hex[:6]
    srv_ns, cli_ns = f"shsrv{tag}", f"shcli{tag}"
    veth_s, veth_c = f"vs{tag}", f"vc{tag}"
    sh("ip", "netns", "add", srv_ns)
    sh("ip", "netns", "add", cli_ns)
    try:
        sh("ip", "link", "add", veth_s, "netns", srv_ns, "type", "veth", "peer", "name", veth_c,
           "netns", cli_ns)
        for ns, dev, ip in ((srv_ns, veth_s, SERVER_IP), (cli_ns, veth_c, CLIENT_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield srv_ns, cli_ns
    finally:
        sh("ip", "netns", "del", srv_ns, check=False)
        sh("ip", "netns", "del", cli_ns, check=False)


def test_basic_needs_tls_from_a_remote_peer(netns, tmp_path):
    srv_ns, cli_ns = netns
    data, media = tmp_path / "data", tmp_path / "media"
    media.mkdir()
    cli_add_user(data, "remy", init=True)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", srv_ns, str(BIN), "serve",
         "--listen", f"{SERVER_IP}:0", "--tls-listen", f"{SERVER_IP}:0",
         "--media-root", str(media), "--data-dir", str(data), "--no-discovery"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env())
    try:
        ports = {}
        while len(ports) < 2:
            line = proc.stdout.readline()
            assert line, "server exited before listening"
            scheme, _, rest = line.strip().removeprefix("listening on ").partition("://")
            ports[scheme] = rest.rsplit(":", 1)[1]
        cert = data / "tls" / "cert.pem"

        def curl(url, *extra):
            r = sh("ip", "netns", "exec", cli_ns, "curl", "-s", "-w", "\n%{http_code}",
                   "-u", f"remy:{AUTH_PW}", *extra, url, check=False)
            body, _, code = r.stdout.rpartition("\n")
            return int(code), body

        code, body = curl(f"http://{SERVER_IP}:{ports['http']}/api/me")
        assert code == 401 and '"basic_not_allowed"' in body, body
        code, body = curl(f"https://{SERVER_IP}:{ports['https']}/api/me", "--cacert", str(cert),
                          "--resolve", f"{SERVER_IP}:{ports['https']}:{SERVER_IP}")
        # the self-signed certificate names the listen address, so curl verifies it
        assert code == 200 and '"remy"' in body, body
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert os.path.exists(data / "streamhub.db")


def _get_v6(host, port, headers):
    """GET /api/me over an AF_INET6 socket to `host` (an IPv4-mapped address works too)."""
    import socket

    from conftest import read_response

    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((host, port))
        lines = ["GET /api/me HTTP/1.1", f"Host: [{host}]:{port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return read_response(s)


def test_basic_from_loopback_on_a_dual_stack_listener(module_servers, auth_media):
    """Issue 12: on a `[::]` listener an IPv4 loopback client arrives as ::ffff:127.0.0.1, and
    Basic was refused (`basic_not_allowed`) while ::1 worked: both are this machine."""
    from conftest import assert_error, basic_auth

    srv = module_servers.start(auth_media["root"], name="dual-stack", listen=("[::]:0",),
                               tls_listen=())
    cli_add_user(srv.data_dir, "vera")
    for host in ("::1", "::ffff:127.0.0.1"):
        r = _get_v6(host, srv.port, basic_auth("vera", AUTH_PW))
        assert r.status == 200, (host, r)
        assert r.json()["auth"] == "basic" and r.json()["name"] == "vera", (host, r.json())
        # a wrong password is a wrong password, not a refusal of Basic itself
        r = _get_v6(host, srv.port, basic_auth("vera", "not the password"))
        assert_error(r, 401, "unauthorized")
