"""The CLI and `config check` where `serve` refuses a network filesystem or an unmounted share
(newcomer findings): `config check` reports what `serve` would refuse, in the same words,
with a non-zero exit; `user add`/`backup` with the data dir (or the backup) on a FUSE mount
(standing in for NFS/SMB, faultfs.py via netmount_util.FaultMount) refuse as `serve` does,
before touching anything: no database, no `-journal`/`-wal` file, no empty backup is left.
Runs as root (mounting FUSE); always unmounted at teardown.
"""

import hashlib
import re

import pytest

from conftest import AUTH_PW, cli_add_user, run_cli, spawn, toml_str, user_cli, wait_exit
from netmount_util import FaultMount

# What `serve` says (src/lib.rs StartError::DataDirNotLocal, storage/local/mount.rs).
DATA_DIR_REFUSAL = re.compile(
    r"server\.data_dir \(\S+\) is on a fuse filesystem: the database \(accounts, notes\) "
    r"would not be safe there")
NOT_A_MOUNT = "the media root is not a mount point (storage.require_mount = true)"


@pytest.fixture()
def mount(tmp_path):
    with FaultMount(tmp_path / "share", tmp_path / "mnt", tmp_path) as m:
        yield m


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def serve_refusal(tmp_path, media_root, data_dir, env=None):
    """The stderr of a `serve` that must refuse to start."""
    proc, err = spawn(["serve", "--listen", "127.0.0.1:0", "--media-root", media_root,
                       "--data-dir", data_dir, "--no-discovery"], tmp_path / "serve", env=env)
    rc = wait_exit(proc, 20)
    if rc is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    text = err.read_text()
    assert rc not in (None, 0), text
    return text


def config_check(tmp_path, body, env=None):
    cfg = tmp_path / "check.toml"
    cfg.write_text(body)
    return run_cli(["config", "check", "--config", cfg], env=env)


def test_config_check_refuses_what_serve_refuses_in_its_words(mount, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    # A data dir on a FUSE mount (not made yet: it would be made there).
    data = mount.mountpoint / "data"
    r = config_check(tmp_path, f"[server]\ndata_dir = {toml_str(data)}\n"
                               f"[storage]\nmedia_root = {toml_str(media)}\n")
    assert r.returncode == 2 and "config ok" not in r.stdout, (r.returncode, r.stdout, r.stderr)
    checked = DATA_DIR_REFUSAL.search(r.stderr)
    assert checked, r.stderr
    served = DATA_DIR_REFUSAL.search(serve_refusal(tmp_path, media, data))
    assert served and served.group(0) == checked.group(0)
    assert files_under(mount.backing) == [], "neither the check nor serve made anything"

    # require_mount on a plain folder; the same on the mount passes.
    local_data = tmp_path / "data"
    r = config_check(tmp_path, f"[server]\ndata_dir = {toml_str(local_data)}\n"
                               f"[storage]\nmedia_root = {toml_str(media)}\nrequire_mount = true\n")
    assert r.returncode == 2 and "config ok" not in r.stdout, (r.returncode, r.stderr)
    assert re.search(r"^error: storage\.media_root: " + re.escape(NOT_A_MOUNT), r.stderr,
                     re.M), r.stderr
    assert NOT_A_MOUNT in serve_refusal(tmp_path, media, local_data,
                                        env={"STREAMHUB_STORAGE_REQUIRE_MOUNT": "true"})
    # A media root that is not there at all: the same refusal from both.
    gone = tmp_path / "gone"
    r = config_check(tmp_path, f"[server]\ndata_dir = {toml_str(local_data)}\n"
                               f"[storage]\nmedia_root = {toml_str(gone)}\nrequire_mount = true\n")
    assert r.returncode == 2 and NOT_A_MOUNT in r.stderr, (r.returncode, r.stderr)
    assert NOT_A_MOUNT in serve_refusal(tmp_path, gone, local_data,
                                        env={"STREAMHUB_STORAGE_REQUIRE_MOUNT": "true"})
    assert not gone.exists()
    r = config_check(tmp_path, f"[server]\ndata_dir = {toml_str(local_data)}\n"
                               f"[storage]\nmedia_root = {toml_str(mount.mountpoint)}\n"
                               "require_mount = true\n")
    assert r.returncode == 0 and r.stdout.strip() == "config ok", r.stderr


def test_user_add_on_a_network_data_dir_refuses_and_leaves_nothing(mount, tmp_path):
    # A real database, made on the share's backing folder, then reached through the mount.
    cli_add_user(mount.backing / "data", "alice", init=True)
    before = files_under(mount.backing)
    db = mount.backing / "data" / "streamhub.db"
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for init in (False, True):
        r = user_cli(mount.mountpoint / "data", "add", "bob", password=AUTH_PW, init=init)
        assert r.returncode != 0, r
        assert DATA_DIR_REFUSAL.search(r.stderr), r.stderr
        assert "SQLite" in r.stderr and "sqlite error" not in r.stderr.lower(), r.stderr
    r = user_cli(mount.mountpoint / "data", "list")
    assert r.returncode != 0 and DATA_DIR_REFUSAL.search(r.stderr), r.stderr
    assert files_under(mount.backing) == before, "no -journal, -wal or -shm left behind"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest

    # A new data dir on the mount with --init: refused before the folder is made.
    r = user_cli(mount.mountpoint / "new", "add", "carol", password=AUTH_PW, init=True)
    assert r.returncode != 0 and DATA_DIR_REFUSAL.search(r.stderr), r.stderr
    assert not (mount.backing / "new").exists()


def test_backup_from_or_to_a_network_filesystem_refuses_and_leaves_nothing(mount, tmp_path):
    local = tmp_path / "data"
    cli_add_user(local, "alice", init=True)
    cli_add_user(mount.backing / "data", "alice", init=True)
    before = files_under(mount.backing)

    # The data dir on the mount.
    r = run_cli(["backup", tmp_path / "copy.db", "--data-dir", mount.mountpoint / "data"])
    assert r.returncode != 0 and DATA_DIR_REFUSAL.search(r.stderr), r.stderr
    assert not (tmp_path / "copy.db").exists()

    # The destination on the mount: a file, and a folder (a dated file in it).
    for dest in (mount.mountpoint / "copy.db", mount.mountpoint):
        r = run_cli(["backup", dest, "--data-dir", local])
        assert r.returncode != 0, r
        assert "on a fuse filesystem" in r.stderr and "local" in r.stderr, r.stderr
        assert "sqlite error" not in r.stderr.lower(), r.stderr
    assert files_under(mount.backing) == before, "no backup, -journal or -wal left behind"

    # A local destination still works.
    r = run_cli(["backup", tmp_path / "copy.db", "--data-dir", local])
    assert r.returncode == 0 and "integrity ok" in r.stdout, r.stderr
