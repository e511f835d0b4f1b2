"""HTTPS with the self-signed certificate, HTTP/2, and SIGHUP certificate reload.

The LAN tests run the server in a network namespace that each test creates and removes
(`ip netns add`, root), with a veth interface holding the "LAN" addresses: the server
listens on 0.0.0.0 inside it, and the verifying client (Python's ssl, run with
`ip netns exec`) connects to those addresses there. No packet reaches the host's interfaces.
"""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import pytest

from conftest import (
    BIN,
    BIN_1M,
    MIB,
    cert_der_from_pem,
    curl,
    curl_fetch,
    fingerprint,
    make_cert,
    media_path,
    parse_content_range,
    parse_multipart_byteranges,
    read_response,
    Server,
    clean_env,
    tls_connect,
    toml_str,
)


def test_https_healthz_with_self_signed_cert(server):
    cert = server.cert_path
    assert cert.exists(), f"no self-signed cert at {cert}"
    for host in ("localhost", "127.0.0.1"):
        r = curl("--cacert", cert, "-w", "\n%{http_code}", server.tls_url("/healthz", host=host))
        assert r.returncode == 0, r.stderr.decode()
        body, _, code = r.stdout.decode().rpartition("\n")
        assert code == "200"
        assert json.loads(body) == {"status": "ok"}


def test_https_rejected_without_trust(server):
    # sanity: the cert is really checked by curl (so the test above means something)
    r = curl("-o", "/dev/null", server.tls_url("/healthz"))
    # 60: peer certificate cannot be authenticated (77: no CA bundle on this host)
    assert r.returncode in (60, 77), r


def test_self_signed_cert_san_and_key_mode(server):
    r = subprocess.run(
        ["openssl", "x509", "-in", str(server.cert_path), "-noout", "-ext", "subjectAltName"],
        capture_output=True, timeout=10,
    )
    assert r.returncode == 0, r.stderr.decode()
    san = r.stdout.decode()
    assert "DNS:localhost" in san and "IP Address:127.0.0.1" in san, san
    key = server.data_dir / "tls" / "key.pem"
    assert key.exists()
    mode = stat.S_IMODE(os.stat(key).st_mode)
    assert mode == 0o600, oct(mode)


def test_self_signed_cert_reused_across_restart(servers, media, tmp_path):
    data = tmp_path / "data"
    s1 = servers.start(media["root"], data_dir=data)
    # serve one request first (the file existing at the listening line is
    # covered by test_readiness.py)
    with tls_connect(s1.tls_port) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_response(c).status == 200
    fp1 = fingerprint(cert_der_from_pem(s1.cert_path))
    with tls_connect(s1.tls_port) as c:
        assert fingerprint(c.getpeercert(binary_form=True)) == fp1
    assert s1.stop() == 0
    s2 = servers.start(media["root"], data_dir=data)
    assert fingerprint(cert_der_from_pem(s2.cert_path)) == fp1
    with tls_connect(s2.tls_port) as c:
        assert fingerprint(c.getpeercert(binary_form=True)) == fp1


def test_http2_over_tls(server):
    r = curl("--http2", "--cacert", server.cert_path, "-o", "/dev/null", "-w", "%{http_version}",
             server.tls_url("/healthz"))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == "2"


def test_http11_over_tls_still_works(server):
    r = curl("--http1.1", "--cacert", server.cert_path, "-o", "/dev/null", "-w", "%{http_version}",
             server.tls_url("/healthz"))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == "1.1"


def test_tls12_client(server):
    r = curl("--tlsv1.2", "--tls-max", "1.2", "--cacert", server.cert_path, "-o", "/dev/null",
             "-w", "%{http_code}", server.tls_url("/healthz"))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"200"


def test_plain_http_to_tls_port_does_not_hang_or_serve(server):
    import socket
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    assert b"status" not in data  # never served in clear text on the TLS port
    assert server.proc.poll() is None


def test_ranges_over_http2(server, media):
    blob = media["data"][BIN_1M]
    url = server.tls_url(media_path(BIN_1M))
    extra = ["--http2", "--cacert", str(server.cert_path)]
    r = curl_fetch(url, headers=["Range: bytes=1000-1999"], extra=extra)
    assert r.http_version == "2"
    assert r.status == 206
    assert parse_content_range(r.header("content-range")) == (1000, 1999, MIB)
    assert r.body == blob[1000:2000]

    r = curl_fetch(url, headers=["Range: bytes=0-9,-10"], extra=extra)
    assert r.status == 206
    parts = parse_multipart_byteranges(r.header("content-type"), r.body)
    assert [d for _, d in parts] == [blob[:10], blob[-10:]]

    r = curl_fetch(url, extra=extra)
    assert r.status == 200 and r.body == blob


def _tls_get(sock, path="/healthz"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return read_response(sock)


def test_sighup_reloads_certificate(servers, media, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    c1, k1 = make_cert(certs, "one")
    c2, k2 = make_cert(certs, "two")
    live_cert, live_key = certs / "live.cert.pem", certs / "live.key.pem"
    live_cert.write_bytes(c1.read_bytes())
    live_key.write_bytes(k1.read_bytes())
    fp1 = fingerprint(cert_der_from_pem(c1))
    fp2 = fingerprint(cert_der_from_pem(c2))
    assert fp1 != fp2

    cfg = f"[server]\ntls_cert = {toml_str(live_cert)}\ntls_key = {toml_str(live_key)}\n"
    srv = servers.start(media["root"], config=cfg)

    old = tls_connect(srv.tls_port)
    assert fingerprint(old.getpeercert(binary_form=True)) == fp1
    r = _tls_get(old)
    assert r.status == 200 and r.header("connection", "").lower() != "close"

    # curl with the first cert as the only trust anchor works
    ok = curl("--cacert", c1, "-o", "/dev/null", "-w", "%{http_code}", srv.tls_url("/healthz"))
    assert ok.stdout == b"200", ok

    # replace files atomically, then SIGHUP
    tmpc, tmpk = certs / "new.cert.tmp", certs / "new.key.tmp"
    tmpc.write_bytes(c2.read_bytes())
    tmpk.write_bytes(k2.read_bytes())
    os.replace(tmpk, live_key)
    os.replace(tmpc, live_cert)
    srv.signal(signal.SIGHUP)

    deadline = time.monotonic() + 5
    seen = None
    while time.monotonic() < deadline:
        with tls_connect(srv.tls_port) as c:
            seen = fingerprint(c.getpeercert(binary_form=True))
        if seen == fp2:
            break
        time.sleep(0.1)
    assert seen == fp2, "new connections still get the old certificate after SIGHUP"
    assert srv.proc.poll() is None, "SIGHUP killed the server"

    # openssl s_client agrees
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{srv.tls_port}", "-servername", "localhost"],
        input=b"", capture_output=True, timeout=15,
    )
    pem = r.stdout.decode(errors="replace")
    start = pem.find("-----BEGIN CERTIFICATE-----")
    end = pem.find("-----END CERTIFICATE-----")
    assert start != -1, pem
    import ssl as _ssl
    der = _ssl.PEM_cert_to_DER_cert(pem[start:end + len("-----END CERTIFICATE-----")] + "\n")
    assert fingerprint(der) == fp2

    # and curl trusting only the new cert works
    ok = curl("--cacert", c2, "-o", "/dev/null", "-w", "%{http_code}", srv.tls_url("/healthz"))
    assert ok.stdout == b"200", ok

    # the old keep-alive connection is still served
    r = _tls_get(old)
    assert r.status == 200
    assert json.loads(r.body) == {"status": "ok"}
    r = _tls_get(old, media_path(BIN_1M))
    assert r.status == 200 and r.body == media["data"][BIN_1M]
    old.close()


def test_sighup_with_broken_cert_keeps_serving(servers, media, tmp_path):
    c1, k1 = make_cert(tmp_path, "one")
    live_cert, live_key = tmp_path / "live.cert.pem", tmp_path / "live.key.pem"
    live_cert.write_bytes(c1.read_bytes())
    live_key.write_bytes(k1.read_bytes())
    fp1 = fingerprint(cert_der_from_pem(c1))
    cfg = f"[server]\ntls_cert = {toml_str(live_cert)}\ntls_key = {toml_str(live_key)}\n"
    srv = servers.start(media["root"], config=cfg)
    with tls_connect(srv.tls_port) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_response(c).status == 200
    live_cert.write_text("this is not a certificate\n")
    srv.signal(signal.SIGHUP)
    # the process must survive and keep the last good certificate
    with tls_connect(srv.tls_port) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_response(c).status == 200
    time.sleep(0.5)
    assert srv.proc.poll() is None, "a bad certificate on SIGHUP killed the server"
    with tls_connect(srv.tls_port) as c:
        assert fingerprint(c.getpeercert(binary_form=True)) == fp1


# --- the self-signed certificate on the LAN -----------------------------------------------

LAN_IP, LAN_IP2, LAN_IP3, LAN_IP6 = "10.77.0.1", "10.77.0.2", "10.77.0.3", "fd77::1"

# Runs inside the namespace: one TLS handshake that trusts only CAFILE and checks that the
# certificate is good for NAME (an IP address or a DNS name), as a browser would.
VERIFY = r"""
import json, socket, ssl, sys
addr, port, name, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
try:
    with socket.create_connection((addr, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            print(json.dumps({"ok": True, "der": tls.getpeercert(binary_form=True).hex()}))
except ssl.SSLCertVerificationError as e:
    print(json.dumps({"ok": False, "error": e.verify_message}))
"""


def sh(*args, check=True):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=check,
                          timeout=30)


class Lan:
    """A network namespace with a "LAN" interface, lan0."""

    def __init__(self, ns):
        self.ns = ns

    def add(self, cidr, *extra):
        return sh("ip", "-n", self.ns, "addr", "add", cidr, "dev", "lan0", *extra, check=False)

    def remove(self, cidr):
        sh("ip", "-n", self.ns, "addr", "del", cidr, "dev", "lan0")

    def serve(self, data, media, workdir, tls_listen="0.0.0.0:0"):
        workdir.mkdir(parents=True, exist_ok=True)
        err_path = workdir / f"server.{time.monotonic_ns()}.stderr.log"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, str(BIN), "serve", "--listen", "127.0.0.1:0",
                 "--tls-listen", tls_listen, "--media-root", str(media), "--data-dir",
                 str(data), "--no-discovery"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=clean_env())
        srv = Server(proc, err_path, media, data, workdir)
        self.servers.append(srv)
        try:
            srv.wait_listening(1, 1)
        except Exception:
            srv.stop(timeout=3)
            raise
        return srv

    def verify(self, srv, addr, name=None):
        """Handshake with `addr` checking the name `name` (default: the address itself)."""
        r = sh("ip", "netns", "exec", self.ns, sys.executable, "-c", VERIFY, addr, srv.tls_port,
               name or addr, srv.cert_path)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


@pytest.fixture()
def lan():
    ns = f"shtls{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", ns)
    net = Lan(ns)
    net.servers = []
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # a veth pair inside the namespace (no dummy driver everywhere); both ends up, so
        # lan0 has a carrier and counts as an up interface
        sh("ip", "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
        sh("ip", "-n", ns, "addr", "add", f"{LAN_IP}/24", "dev", "lan0")
        net.has_v6 = net.add(f"{LAN_IP6}/64", "nodad").returncode == 0
        for dev in ("lan0", "lan1"):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield net
    finally:
        for srv in net.servers:
            srv.stop(timeout=5)
        sh("ip", "netns", "del", ns, check=False)


def host_local_name():
    host = socket.gethostname().lower().rstrip(".")
    if not host or host == "localhost":
        return None
    return host.split(".")[0] + ".local"


def cert_text(path):
    r = sh("openssl", "x509", "-in", path, "-noout", "-text")
    return r.stdout


def sans(path):
    r = sh("openssl", "x509", "-in", path, "-noout", "-ext", "subjectAltName")
    return {s.strip() for s in r.stdout.splitlines()[1].split(",")}


def log_lines(srv, needle):
    return [line for line in srv.stderr_text().splitlines() if needle in line]


def test_self_signed_cert_covers_the_lan_address_and_host_local(lan, tmp_path):
    data, media = tmp_path / "data", tmp_path / "media"
    media.mkdir()
    srv = lan.serve(data, media, tmp_path / "s1")
    names = sans(srv.cert_path)
    assert f"IP Address:{LAN_IP}" in names, names
    assert {"DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"} <= names
    # 0.0.0.0 serves IPv4 only: no IPv6 LAN address, never a link-local one
    assert not any(n.startswith("IP Address:FD77") or n.startswith("IP Address:FE80")
                   for n in names), names

    ok = lan.verify(srv, LAN_IP)
    assert ok["ok"], ok
    assert ok["der"] == cert_der_from_pem(srv.cert_path).hex()
    local = host_local_name()
    if local:
        assert f"DNS:{local}" in names, names
        assert lan.verify(srv, LAN_IP, local)["ok"]
    # the name check is real: an address the certificate does not name is refused
    refused = lan.verify(srv, LAN_IP, "10.77.0.99")
    assert not refused["ok"] and "mismatch" in refused["error"].lower(), refused

    # a server certificate as browsers want it
    text = cert_text(srv.cert_path)
    assert re.search(r"Extended Key Usage:.*\n\s*TLS Web Server Authentication\s*\n", text), text
    assert re.search(r"Key Usage: critical\n\s*Digital Signature\s*\n", text), text
    assert "CA:FALSE" in text, text

    def when(field):
        r = sh("openssl", "x509", "-in", srv.cert_path, "-noout", f"-{field}")
        value = r.stdout.strip().split("=", 1)[1]
        return datetime.strptime(value, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)

    now = datetime.now(timezone.utc)
    assert when("startdate") <= now
    lifetime = when("enddate") - when("startdate")
    assert 700 <= lifetime.days <= 825, lifetime  # Apple refuses longer, even when trusted
    assert log_lines(srv, "covering these names") and LAN_IP in log_lines(
        srv, "covering these names")[0]


def test_self_signed_cert_kept_until_a_new_address_appears(lan, tmp_path):
    data, media = tmp_path / "data", tmp_path / "media"
    media.mkdir()
    srv = lan.serve(data, media, tmp_path / "s1")
    first = srv.cert_path.read_bytes()
    assert srv.stop() == 0

    # nothing changed: the same certificate, byte for byte
    srv = lan.serve(data, media, tmp_path / "s2")
    assert srv.cert_path.read_bytes() == first
    kept = log_lines(srv, "covers these names; kept")
    assert kept and LAN_IP in kept[0], srv.stderr_text()
    assert not log_lines(srv, "replacing"), srv.stderr_text()
    assert srv.stop() == 0

    # the box got another address: a new certificate naming both, and a warning saying why
    assert lan.add(f"{LAN_IP2}/24").returncode == 0
    srv = lan.serve(data, media, tmp_path / "s3")
    second = srv.cert_path.read_bytes()
    assert second != first
    for addr in (LAN_IP, LAN_IP2):
        assert lan.verify(srv, addr)["ok"], addr
    warned = log_lines(srv, "replacing the self-signed certificate")
    assert warned and "WARN" in warned[0] and f"does not cover {LAN_IP2}" in warned[0], warned
    mode = stat.S_IMODE(os.stat(data / "tls" / "key.pem").st_mode)
    assert mode == 0o600, oct(mode)
    assert sorted(p.name for p in (data / "tls").iterdir()) == ["cert.pem", "key.pem"]
    assert srv.stop() == 0

    # the address went away again: the certificate still covers every name wanted, kept
    lan.remove(f"{LAN_IP2}/24")
    srv = lan.serve(data, media, tmp_path / "s4")
    assert srv.cert_path.read_bytes() == second
    assert lan.verify(srv, LAN_IP)["ok"]


def test_sighup_makes_a_certificate_for_a_new_address(lan, tmp_path):
    data, media = tmp_path / "data", tmp_path / "media"
    media.mkdir()
    srv = lan.serve(data, media, tmp_path / "s1")
    first = srv.cert_path.read_bytes()
    assert lan.add(f"{LAN_IP3}/24").returncode == 0
    srv.signal(signal.SIGHUP)
    deadline, seen = time.monotonic() + 10, None
    while time.monotonic() < deadline:
        seen = lan.verify(srv, LAN_IP3)
        if seen["ok"]:
            break
        time.sleep(0.1)
    assert seen["ok"], seen
    assert srv.cert_path.read_bytes() != first
    assert seen["der"] == cert_der_from_pem(srv.cert_path).hex()
    assert lan.verify(srv, LAN_IP)["ok"]
    assert srv.proc.poll() is None


def test_ipv6_wildcard_names_the_ipv6_lan_address(lan, tmp_path):
    if not lan.has_v6:
        pytest.skip("no IPv6 in the namespace")
    data, media = tmp_path / "data", tmp_path / "media"
    media.mkdir()
    srv = lan.serve(data, media, tmp_path / "s1", tls_listen="[::]:0")
    names = sans(srv.cert_path)
    assert "IP Address:FD77:0:0:0:0:0:0:1" in names and f"IP Address:{LAN_IP}" in names, names
    assert not any(n.startswith("IP Address:FE80") for n in names), names
    for addr in (LAN_IP6, LAN_IP):
        ok = lan.verify(srv, addr)
        assert ok["ok"], (addr, ok)
