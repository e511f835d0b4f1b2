"""The service raises its soft limit of open files to the hard limit at start.

Each stream holds its file open (an HTTP/2 connection up to 32 streams): at the usual soft
limit of 1,024, one address's 40 connections of stalled streams made every open and accept
fail with EMFILE (found by an attack pass). nginx and Go programs raise the soft limit the
same way; systemd's default hard limit is 524,288."""

import resource
import subprocess

from conftest import BIN, clean_env


def limits(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line")


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    # This process's own hard limit: raising a hard limit needs CAP_SYS_RESOURCE.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard > 1024, f"the machine's hard limit of open files is {hard}: nothing to raise to"
    p = subprocess.Popen(["prlimit", f"--nofile=1024:{hard}", str(BIN), "serve", "--listen", "127.0.0.1:0",
                          "--media-root", str(media), "--data-dir", str(tmp_path / "data"), "--no-discovery"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_env(), text=True)
    try:
        assert p.stdout.readline().startswith("listening on http://")
        assert limits(p.pid) == (hard, hard)
    finally:
        p.terminate()
        p.wait(10)
