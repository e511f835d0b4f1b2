"""The `listening on ...` lines are the readiness signal (CONTRACT.md, CLI): whatever a
client or supervisor does right after reading them must already work."""

import json
import signal

from conftest import raw_get, toml_str, wait_exit


def test_cert_and_media_root_exist_when_listening_line_printed(servers, tmp_path):
    media_root = tmp_path / "not-yet-created-media"
    srv = servers.start(media_root, data_dir=tmp_path / "fresh-data")
    # nothing else happened since the https line was read
    assert srv.cert_path.is_file(), "listening line printed before <data>/tls/cert.pem exists"
    assert (srv.data_dir / "tls" / "key.pem").is_file()
    assert media_root.is_dir()
    # The root it just created is probed like any other: not "unknown" for the whole first
    # run (which would also turn the non-blocking open off).
    r = raw_get(srv.port, "/readyz")
    assert r.status == 200, r
    assert json.loads(r.body)["checks"]["media_root"]["backend"] == "local", r.body


def test_sigterm_right_after_listening_exits_zero(servers, media):
    srv = servers.start(media["root"])
    srv.signal(signal.SIGTERM)
    rc = wait_exit(srv.proc, 10)
    assert rc == 0, f"SIGTERM right after the listening lines: exit status {rc}"


def test_sighup_right_after_listening_is_not_fatal(servers, media):
    srv = servers.start(media["root"])
    srv.signal(signal.SIGHUP)
    r = raw_get(srv.port, "/healthz")
    assert r.status == 200 and json.loads(r.body) == {"status": "ok"}
    assert srv.proc.poll() is None, f"SIGHUP killed the process (status {srv.proc.returncode})"


def test_unusable_tls_cert_fails_before_listening_line(servers, media, tmp_path):
    missing = tmp_path / "missing-cert.pem"
    cfg = f"[server]\ntls_cert = {toml_str(missing)}\ntls_key = {toml_str(tmp_path / 'missing-key.pem')}\n"
    srv = servers.start(media["root"], config=cfg, wait=False)
    rc = wait_exit(srv.proc, 15)
    lines = srv.drain_stdout()
    assert rc is not None and rc != 0, "serve started with a missing certificate file"
    assert "missing-cert.pem" in srv.stderr_text()
    assert not [l for l in lines if l.startswith("listening")], (
        f"printed {lines!r} although it could never serve"
    )
