"""HTTPS with the self-signed certificate, HTTP/2, and SIGHUP certificate reload."""

import json
import os
import signal
import stat
import subprocess
import time

from conftest import (
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
