"""`s3.secret_access_key_file` as a newcomer meets it (a real Garage node, `garage` fixture):
a file other users can read is warned about at start and by `config check` (like ssh's
"unprotected private key file", a warning, not a refusal); a private one is not; a wrong
secret stops the start naming the key and the file it came from; a file the service cannot
read fails `config check`, naming the key and the file.
"""

import os

from conftest import run_cli

PREFIX = "secretfile"


def secret_env(garage, path):
    env = {**garage.env(PREFIX), "STREAMHUB_S3_SECRET_ACCESS_KEY_FILE": str(path)}
    env["STREAMHUB_S3_SECRET_ACCESS_KEY"] = ""
    return env


def write_secret(path, secret, mode):
    path.write_text(secret + "\n")
    os.chmod(path, mode)


def check(tmp_path, env):
    data = tmp_path / "check-data"
    env = {**env, "STREAMHUB_SERVER_DATA_DIR": str(data),
           "STREAMHUB_STORAGE_MEDIA_ROOT": str(tmp_path)}
    return run_cli(["config", "check"], env=env)


def test_a_secret_file_others_can_read_is_warned_about(servers, garage, tmp_path):
    import garage_util

    secret = tmp_path / "s3-secret"
    write_secret(secret, garage_util.SECRET, 0o644)
    env = secret_env(garage, secret)
    r = check(tmp_path, env)
    assert r.returncode == 0 and r.stdout.strip() == "config ok", r.stderr
    warned = [l for l in r.stderr.splitlines() if l.startswith("warning: ")]
    assert len(warned) == 1, r.stderr
    assert "s3.secret_access_key_file" in warned[0] and str(secret) in warned[0], warned
    assert "0644" in warned[0] and "chmod 600" in warned[0], warned

    # The service starts (a warning, not a refusal) and says the same in its log.
    srv = servers.start(tmp_path, tls_listen=(), env=env, name="s3open")
    assert srv.stop() == 0
    log = srv.stderr_text()
    assert "WARN" in log and "is readable by other users (mode 0644)" in log, log[-2000:]

    os.chmod(secret, 0o600)
    r = check(tmp_path, env)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    srv = servers.start(tmp_path, tls_listen=(), env=env, name="s3private")
    assert srv.stop() == 0
    assert "readable by other users" not in srv.stderr_text()


def test_a_wrong_secret_names_the_key_and_the_file(servers, garage, tmp_path):
    secret = tmp_path / "stale-secret"
    write_secret(secret, "0" * 64, 0o600)
    srv = servers.start(tmp_path, tls_listen=(), env=secret_env(garage, secret), wait=False,
                        name="s3wrong")
    assert srv.proc.wait(timeout=60) != 0, "started with a wrong secret"
    err = srv.stderr_text()
    assert "refused the credentials" in err, err[-2000:]
    assert f"s3.secret_access_key_file = {secret}" in err, err[-2000:]


def test_config_check_names_a_secret_file_it_cannot_read(garage, tmp_path):
    missing = tmp_path / "no-such-secret"
    r = check(tmp_path, secret_env(garage, missing))
    assert r.returncode == 2 and "config ok" not in r.stdout, (r.returncode, r.stderr)
    assert "s3.secret_access_key_file" in r.stderr and str(missing) in r.stderr, r.stderr
    empty = tmp_path / "empty-secret"
    write_secret(empty, "", 0o600)
    r = check(tmp_path, secret_env(garage, empty))
    assert r.returncode == 2 and f"{empty} is empty" in r.stderr, r.stderr
