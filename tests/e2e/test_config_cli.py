"""CLI contract: `config default`, `config check`, env overrides, listeners, defaults."""

import re
import subprocess

import pytest

from conftest import BIN, LISTEN_RE, REPO, Server, clean_env, raw_get, spawn, udp_ports, wait_exit


def run(args, env=None, cwd=None, timeout=20):
    return subprocess.run(
        [str(BIN)] + [str(a) for a in args],
        capture_output=True, env=clean_env(env), cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def test_config_default_matches_repo_file():
    r = run(["config", "default"])
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == (REPO / "config" / "streamhub.toml").read_text()


def test_config_check_accepts_default(tmp_path):
    cfg = tmp_path / "ok.toml"
    cfg.write_bytes(run(["config", "default"]).stdout)
    r = run(["config", "check", "--config", cfg])
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == "config ok"


@pytest.mark.parametrize(
    "body,key",
    [
        ('[server]\nmax_connections = "lots"\n', "max_connections"),
        ("[server]\nbogus_key_xyz = 1\n", "bogus_key_xyz"),
        ('[server]\nlisten = ["nonsense"]\n', "listen"),
        ("[streaming]\nmax_ranges = -3\n", "max_ranges"),
        ('[storage]\nallow_symlink_escape = "sometimes"\n', "allow_symlink_escape"),
        ("[nosuchsection]\nx = 1\n", "nosuchsection"),
    ],
)
def test_config_check_rejects_bad_values(tmp_path, body, key):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    r = run(["config", "check", "--config", cfg])
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err)
    assert re.search(rf"^error: \S*{re.escape(key)}\S*: ", err, re.M), err
    assert b"config ok" not in r.stdout


@pytest.mark.parametrize(
    "body,env,hint",
    [
        ('[s3]\nbukcet = "media"\n', {}, "did you mean s3.bucket?"),
        ('[sever]\nlisten = []\n', {}, "did you mean [server]?"),
        ("", {"STREAMHUB_S3_ENDPIONT": "http://127.0.0.1:3900"}, "did you mean STREAMHUB_S3_ENDPOINT?"),
    ],
)
def test_config_check_suggests_the_key_a_typo_meant(tmp_path, body, env, hint):
    """A newcomer typed `bukcet`: the error names the key it most likely meant, and says which
    file and variables were read, so a typo is fixed without reading the code."""
    cfg = tmp_path / "typo.toml"
    cfg.write_text(body)
    r = run(["config", "check", "--config", cfg], env=env)
    err = r.stderr.decode()
    assert r.returncode == 2 and hint in err, (r.returncode, err)
    assert f"note: read {cfg}" in err, err
    for var in env:
        assert var in err.split("note:")[-1], err


def test_config_check_names_what_it_read_and_suggests_nothing_for_another_word(tmp_path):
    cfg = tmp_path / "ok.toml"
    cfg.write_text("[server]\npassword = 1\n")
    r = run(["config", "check", "--config", cfg])
    err = r.stderr.decode()
    assert r.returncode == 2 and "server.password: unknown key" in err and "did you mean" not in err, err
    cfg.write_bytes(run(["config", "default"]).stdout)
    r = run(["config", "check", "--config", cfg], env={"STREAMHUB_SERVER_MAX_CONNECTIONS": "64"})
    err = r.stderr.decode()
    assert r.returncode == 0 and r.stdout.decode().strip() == "config ok", err
    note = next(line for line in err.splitlines() if line.startswith("note: read"))
    assert note.startswith(f"note: read {cfg}, overridden by "), err
    assert "STREAMHUB_SERVER_MAX_CONNECTIONS" in note.split(), err


def test_serve_with_bad_config_fails_fast(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nmax_connections = "lots"\n')
    r = run(["serve", "--config", cfg, "--listen", "127.0.0.1:0", "--media-root", tmp_path,
             "--data-dir", tmp_path / "d", "--no-discovery"], timeout=20)
    assert r.returncode != 0
    assert "max_connections" in r.stderr.decode()
    assert b"listening" not in r.stdout


@pytest.mark.parametrize("flag,value,hint", [
    ("--tls-listen", "", "give --listen alone"),
    ("--listen", "8080", "expected IP:PORT"),
    ("--tls-listen", "localhost:8443", "expected IP:PORT"),
])
def test_a_bad_listen_address_says_what_is_wanted(tmp_path, flag, value, hint):
    r = run(["serve", flag, value, "--media-root", tmp_path, "--data-dir", tmp_path / "d",
             "--no-discovery"], timeout=20)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert flag in err and hint in err, err
    assert not (tmp_path / "d").exists(), "nothing is created for a refused command line"


def _serve_env(tmp_path, env, args=(), cwd=None):
    proc, err = spawn(["serve", *args], tmp_path, env=env, cwd=cwd)
    return Server(proc, err, None, None, tmp_path)


def test_env_overrides_bind_loopback_only(tmp_path):
    env = {
        "STREAMHUB_SERVER_LISTEN": "127.0.0.1:0",
        "STREAMHUB_SERVER_TLS_LISTEN": "",
        "STREAMHUB_DISCOVERY_ENABLED": "false",
    }
    srv = _serve_env(tmp_path, env, ["--media-root", tmp_path / "m", "--data-dir", tmp_path / "d"])
    try:
        srv.wait_listening(1, 0)
        assert srv.http[0][0] == "127.0.0.1"
        assert raw_get(srv.port, "/healthz").status == 200
    finally:
        rc = srv.stop()
    lines = srv.drain_stdout()
    assert rc == 0
    assert [l for l in lines if l.startswith("listening on")] == [f"listening on http://127.0.0.1:{srv.port}"]
    assert all(LISTEN_RE.match(l) for l in lines), lines


def test_env_multiple_listeners_and_bool_forms(tmp_path):
    env = {
        "STREAMHUB_SERVER_LISTEN": "127.0.0.1:0,127.0.0.1:0",
        "STREAMHUB_SERVER_TLS_LISTEN": "127.0.0.1:0",
        "STREAMHUB_DISCOVERY_ENABLED": "no",
        "STREAMHUB_STORAGE_ALLOW_SYMLINK_ESCAPE": "0",
    }
    srv = _serve_env(tmp_path, env, ["--media-root", tmp_path / "m", "--data-dir", tmp_path / "d"])
    try:
        srv.wait_listening(2, 1)
        # HTTP lines first, then TLS
        kinds = [l.split("://")[0] for l in srv.stdout_lines]
        assert kinds == ["listening on http", "listening on http", "listening on https"], srv.stdout_lines
        for _, port in srv.http:
            assert raw_get(port, "/healthz").status == 200
    finally:
        srv.stop()


@pytest.mark.parametrize("var,val", [("STREAMHUB_BOGUS", "1"), ("STREAMHUB_DISCOVERY_ENABLED", "maybe")])
def test_bad_env_var_rejected(tmp_path, var, val):
    env = {"STREAMHUB_SERVER_LISTEN": "127.0.0.1:0", "STREAMHUB_SERVER_TLS_LISTEN": "",
           "STREAMHUB_DISCOVERY_ENABLED": "false", var: val}
    proc, err = spawn(["serve", "--media-root", tmp_path / "m", "--data-dir", tmp_path / "d"],
                      tmp_path, env=env)
    rc = wait_exit(proc, 15)
    if rc is None:
        proc.kill()
        proc.wait()
    out = proc.stdout.read().decode()
    proc.stdout.close()
    assert rc is not None and rc != 0, f"serve kept running with {var}={val}"
    assert var in err.read_text(), err.read_text()
    assert "listening" not in out


def test_cli_listen_replaces_both_lists(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nlisten = ["127.0.0.1:0"]\ntls_listen = ["127.0.0.1:0"]\n[discovery]\nenabled = false\n')
    srv = _serve_env(tmp_path, None, ["--config", cfg, "--listen", "127.0.0.1:0",
                                      "--media-root", tmp_path / "m", "--data-dir", tmp_path / "d"])
    try:
        srv.wait_listening(1, 0)
        assert raw_get(srv.port, "/healthz").status == 200
    finally:
        srv.stop()
    lines = srv.drain_stdout()
    assert lines == [f"listening on http://127.0.0.1:{srv.port}"], lines


def test_cli_tls_listen_only(tmp_path):
    srv = _serve_env(tmp_path, None, ["--tls-listen", "127.0.0.1:0", "--media-root", tmp_path / "m",
                                      "--data-dir", tmp_path / "d", "--no-discovery"])
    try:
        srv.wait_listening(0, 1)
    finally:
        srv.stop()
    lines = srv.drain_stdout()
    assert lines == [f"listening on https://127.0.0.1:{srv.tls_port}"], lines


def test_embedded_defaults_create_dirs_in_cwd(tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    env = {
        "STREAMHUB_SERVER_LISTEN": "127.0.0.1:0",
        "STREAMHUB_SERVER_TLS_LISTEN": "127.0.0.1:0",
        # never announce on the network from a test
        "STREAMHUB_DISCOVERY_ENABLED": "false",
    }
    srv = _serve_env(tmp_path, env, [], cwd=work)
    try:
        srv.wait_listening(1, 1)
        assert raw_get(srv.port, "/healthz").status == 200
        assert (work / "media").is_dir()
        assert (work / "data").is_dir()
        assert (work / "data" / "tls" / "cert.pem").is_file()
        assert (work / "data" / "tls" / "key.pem").is_file()
        assert raw_get(srv.port, "/healthz").status == 200
        r = subprocess.run(
            ["curl", "-sS", "--noproxy", "*", "--cacert", str(work / "data" / "tls" / "cert.pem"),
             f"https://localhost:{srv.tls_port}/healthz"],
            capture_output=True, timeout=20,
        )
        assert r.returncode == 0, r.stderr.decode()
    finally:
        assert srv.stop() == 0


def test_config_check_without_file_uses_defaults():
    r = run(["config", "check"])
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == "config ok"


def test_env_bad_value_names_key(tmp_path):
    env = {"STREAMHUB_SERVER_LISTEN": "127.0.0.1:0", "STREAMHUB_SERVER_TLS_LISTEN": "",
           "STREAMHUB_DISCOVERY_ENABLED": "false", "STREAMHUB_SERVER_MAX_CONNECTIONS": "lots"}
    proc, err = spawn(["serve", "--media-root", tmp_path / "m", "--data-dir", tmp_path / "d"],
                      tmp_path, env=env)
    rc = wait_exit(proc, 15)
    if rc is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    assert rc is not None and rc != 0, "serve kept running with STREAMHUB_SERVER_MAX_CONNECTIONS=lots"
    assert "max_connections" in err.read_text().lower(), err.read_text()


def test_stdout_only_listening_lines_even_at_debug(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[log]\nlevel = "debug"\n')
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f.txt").write_text("hi")
    srv = _serve_env(tmp_path, None, ["--config", cfg, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
                                      "--media-root", tmp_path / "m", "--data-dir", tmp_path / "d",
                                      "--no-discovery"])
    try:
        srv.wait_listening(1, 1)
        assert raw_get(srv.port, "/media/f.txt").status == 200
        assert raw_get(srv.port, "/media/missing").status == 404
        assert raw_get(srv.port, "/media/../x").status == 400
    finally:
        assert srv.stop() == 0
    lines = srv.drain_stdout()
    assert len(lines) == 2 and all(LISTEN_RE.match(l) for l in lines), lines
    assert srv.stderr_text().strip(), "debug level produced no logs on stderr"


DISCOVERY_OFF = "LAN discovery (mDNS) is off: no TLS listener"


@pytest.mark.parametrize(
    "args,env,warnings",
    [
        ([], None, 1),  # the default: discovery.enabled = true
        (["--no-discovery"], None, 0),
        ([], {"STREAMHUB_DISCOVERY_ENABLED": "false"}, 0),
    ],
    ids=["default", "no-discovery-flag", "env-false"],
)
def test_discovery_without_a_lan_tls_listener_opens_no_socket_and_says_why(
        tmp_path, args, env, warnings):
    # Discovery advertises the HTTPS port: with only a plain listener on loopback there is
    # nothing to advertise, so even with discovery on no mDNS socket is opened (this test runs
    # on the host's network, and must stay off it), and a warning says why. With discovery
    # off, nothing is said at warn level. Real mDNS is tested in namespaces
    # (test_peers_discovery.py).
    srv = _serve_env(tmp_path, env, ["--listen", "127.0.0.1:0", "--media-root", tmp_path / "m",
                                     "--data-dir", tmp_path / "d", *args])
    try:
        srv.wait_listening(1, 0)
        assert raw_get(srv.port, "/healthz").status == 200
        assert 5353 not in udp_ports(srv.proc.pid)
    finally:
        assert srv.stop() == 0
    err = srv.stderr_text()
    warned = [l for l in err.splitlines() if DISCOVERY_OFF in l and "WARN" in l]
    assert len(warned) == warnings, err


def _check(cfg_text, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg_text)
    r = run(["config", "check", "--config", cfg], cwd=tmp_path)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_config_check_validates_what_serve_would(tmp_path):
    """Issue 14: `config check` said "config ok" for a `tls_key` that does not exist, then
    `serve` failed without naming it. Now it checks the TLS files (exist, parse, fit), the
    media root and the data dir (there or creatable; writable), naming the key."""
    from conftest import make_cert, toml_str
    a_cert, a_key = make_cert(tmp_path, "a")
    b_cert, b_key = make_cert(tmp_path, "b")
    good = f"[server]\ntls_cert = {toml_str(a_cert)}\ntls_key = {toml_str(a_key)}\n"
    code, out, err = _check(good, tmp_path)
    assert code == 0 and out.strip() == "config ok", err

    missing = tmp_path / "gone.key.pem"
    code, out, err = _check(
        f"[server]\ntls_cert = {toml_str(a_cert)}\ntls_key = {toml_str(missing)}\n", tmp_path)
    assert code == 2 and "config ok" not in out, (code, out)
    assert re.search(r"^error: server\.tls_key: .*gone\.key\.pem", err, re.M), err

    code, out, err = _check(
        f"[server]\ntls_cert = {toml_str(a_cert)}\ntls_key = {toml_str(b_key)}\n", tmp_path)
    assert code == 2 and "does not fit" in err, err

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    code, out, err = _check(
        f"[server]\ntls_cert = {toml_str(garbage)}\ntls_key = {toml_str(a_key)}\n", tmp_path)
    assert code == 2 and "server.tls_cert" in err, err

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, out, err = _check(
        f"[server]\ndata_dir = {toml_str(blocker / 'data')}\n"
        f"[storage]\nmedia_root = {toml_str(blocker / 'media')}\n", tmp_path)
    assert code == 2, (code, out, err)
    assert "server.data_dir" in err and "storage.media_root" in err, err
    # Nothing was created by the check.
    assert not (tmp_path / "data").exists()


def test_output_to_a_closed_pipe_is_not_a_panic(tmp_path):
    """`streamhub peers | head -1` panicked (the attack run): a reader that went away ends
    the command quietly, exit 0, for every command that prints."""
    import os
    r_end, w_end = os.pipe()
    os.close(r_end)
    try:
        for args in (["cluster", "new"], ["config", "default"]):
            p = subprocess.run([str(BIN), *args], stdout=w_end, stderr=subprocess.PIPE,
                               env=clean_env(), timeout=30)
            assert p.returncode == 0 and b"panicked" not in p.stderr, (args, p.returncode, p.stderr)
    finally:
        os.close(w_end)


def test_config_check_speaks_of_the_cluster_key_only_when_peers_are_listed(tmp_path):
    """A single box (the defaults: no peers) needs no cluster key, so `config check` says
    nothing about one; with `sync.peers` listed and no key it says the box syncs with none."""
    code, out, err = _check("", tmp_path)
    assert code == 0 and out.strip() == "config ok", err
    assert "cluster" not in err, err
    code, out, err = _check('[sync]\npeers = ["192.0.2.7:8443"]\n', tmp_path)
    assert code == 0 and out.strip() == "config ok", err
    notes = [l for l in err.splitlines() if "sync.cluster_key is empty" in l]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "sync.peers" in notes[0], err


def test_config_check_says_it_did_not_contact_the_s3_store(tmp_path):
    """Newcomer pass: a wrong secret or a missing bucket is "config ok" (the store is not
    contacted), which the output did not say."""
    cfg = tmp_path / "s3.toml"
    cfg.write_text('[storage]\nbackend = "s3"\n[s3]\nendpoint = "http://127.0.0.1:9"\n'
                   'bucket = "media"\naccess_key_id = "GK1"\nsecret_access_key = "x"\n')
    r = run(["config", "check", "--config", cfg])
    err = r.stderr.decode()
    assert r.returncode == 0 and r.stdout.decode().strip() == "config ok", err
    assert "note: the S3 store was not contacted" in err, err
