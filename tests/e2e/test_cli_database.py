"""Which database the offline commands (`user`, `notes`, `backup`) use.

A person ran `streamhub user add alice --admin` from their home folder: it said "user alice
added" and made a new, empty ./data/streamhub.db, while the service kept its own. The
commands must find the service's database as the service does (`--data-dir`, `--config`,
STREAMHUB_* variables, the installed /etc/streamhub/streamhub.toml), say which one they use,
and create a new one only when asked (`--init`).
"""

import os
import stat
from pathlib import Path

import pytest

from conftest import AUTH_PW, must_login, run_cli, start_auth_server, toml_str

SYSTEM_CONFIG = Path("/etc/streamhub/streamhub.toml")


@pytest.fixture(scope="module")
def srv(module_servers, auth_media):
    return start_auth_server(module_servers, auth_media["root"], name="clidb")


@pytest.fixture
def elsewhere(tmp_path):
    """An unrelated folder to run commands from (like a home folder)."""
    d = tmp_path / "home"
    d.mkdir()
    return d


def no_system_config():
    assert not SYSTEM_CONFIG.exists(), (
        f"{SYSTEM_CONFIG} exists on this machine: these tests need a machine where streamhub "
        "is not installed (the CLI would read that file)")


@pytest.mark.parametrize("argv", [
    ["user", "add", "alice", "--admin", "--password-stdin"],
    ["user", "list"],
    ["user", "passwd", "alice", "--password-stdin"],
    ["user", "del", "alice"],
    ["notes", "export", "out"],
    ["notes", "import", "out"],
    ["backup", "copy.db"],
], ids=["add", "list", "passwd", "del", "export", "import", "backup"])
def test_no_flags_in_another_folder_refuses_and_creates_nothing(elsewhere, argv):
    no_system_config()
    if argv[:2] == ["notes", "import"]:
        (elsewhere / "out").mkdir()
        (elsewhere / "out" / "revisions.jsonl").write_text("")
    r = run_cli(argv, stdin=AUTH_PW + "\n", cwd=elsewhere)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", r.stdout
    want = str(elsewhere / "data" / "streamhub.db")
    assert f"no database at {want}" in r.stderr, r.stderr
    assert "--init" in r.stderr and "--data-dir" in r.stderr, r.stderr
    assert "added" not in r.stdout
    assert not (elsewhere / "data").exists(), "a new data folder was created"
    assert not (elsewhere / "copy.db").exists()


def test_environment_variable_finds_the_running_service(srv, elsewhere):
    r = run_cli(["user", "add", "envy", "--password-stdin"], stdin=AUTH_PW + "\n", cwd=elsewhere,
                env={"STREAMHUB_SERVER_DATA_DIR": str(srv.data_dir)})
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    db = Path(srv.data_dir).resolve() / "streamhub.db"
    assert f"database: {db} (STREAMHUB_SERVER_DATA_DIR)" in r.stderr, r.stderr
    assert must_login(srv, "envy", AUTH_PW).role == "member"
    assert not (elsewhere / "data").exists()


def test_config_file_is_named(srv, elsewhere):
    cfg = elsewhere / "hub.toml"
    cfg.write_text(f"[server]\ndata_dir = {toml_str(srv.data_dir)}\n")
    r = run_cli(["user", "add", "cfg-user", "--password-stdin", "--config", cfg],
                stdin=AUTH_PW + "\n", cwd=elsewhere)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    r = run_cli(["user", "list", "--config", cfg], cwd=elsewhere)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert f"(server.data_dir in {cfg})" in r.stderr, r.stderr
    assert any(l.startswith("cfg-user\tmember\t") for l in r.stdout.splitlines()), r.stdout
    assert must_login(srv, "cfg-user", AUTH_PW).role == "member"


def test_relative_data_dir_is_shown_in_full(srv, elsewhere):
    rel = os.path.relpath(srv.data_dir, elsewhere)
    r = run_cli(["user", "add", "rel", "--password-stdin", "--data-dir", rel],
                stdin=AUTH_PW + "\n", cwd=elsewhere)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    line = next(l for l in r.stderr.splitlines() if l.startswith("database: "))
    shown = line.removeprefix("database: ").split(" (")[0]
    assert os.path.isabs(shown), line
    assert Path(shown).resolve() == (Path(srv.data_dir) / "streamhub.db").resolve(), line
    assert r.stdout.strip() == "user rel added (member)", r.stdout


def test_init_creates_a_private_database_that_the_service_then_uses(servers, auth_media, tmp_path):
    data = tmp_path / "new-box" / "data"
    r = run_cli(["user", "add", "first", "--admin", "--password-stdin", "--init",
                 "--data-dir", data], stdin=AUTH_PW + "\n")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert f"database: {data / 'streamhub.db'} (--data-dir)" in r.stderr, r.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "streamhub.db").stat().st_mode) == 0o600
    # Once it exists, no flag is needed to use it again.
    r = run_cli(["user", "list", "--data-dir", data])
    assert r.returncode == 0 and r.stdout.startswith("first\tadmin\t"), (r.stdout, r.stderr)
    srv = servers.start(auth_media["root"], data_dir=data, name="after-init")
    assert must_login(srv, "first", AUTH_PW).role == "admin"


def test_init_tightens_an_existing_data_dir(tmp_path):
    data = tmp_path / "loose"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    r = run_cli(["user", "add", "x", "--password-stdin", "--init", "--data-dir", data],
                stdin=AUTH_PW + "\n")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_export_never_writes_through_a_planted_link(srv, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    os.chmod(victim, 0o644)
    out = tmp_path / "export"
    out.mkdir()
    os.symlink(victim, out / "revisions.jsonl")
    r = run_cli(["notes", "export", out, "--data-dir", srv.data_dir])
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert victim.read_text() == "do not touch"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_backup_into_a_folder_writes_a_dated_file(srv, tmp_path):
    dest = tmp_path / "backups"
    dest.mkdir()
    r = run_cli(["backup", dest, "--data-dir", srv.data_dir])
    assert r.returncode == 0, r.stderr
    files = list(dest.iterdir())
    assert len(files) == 1 and files[0].name.startswith("streamhub-") and files[0].suffix == ".db"
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_init_without_a_terminal_to_ask_on_creates_nothing(tmp_path):
    """Newcomer pass: `user add admin --admin --init` with no terminal failed ("use
    --password-stdin") but had already made a new, empty database, which later commands
    then used without --init."""
    data = tmp_path / "data"
    r = run_cli(["user", "add", "admin", "--admin", "--init", "--data-dir", data])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "cannot ask for a password" in r.stderr and "--password-stdin" in r.stderr, r.stderr
    assert not (data / "streamhub.db").exists(), "a database was created"
