"""A fault-injecting FUSE mount (faultfs.py) as a stand-in for an NFS/SMB media share.

`FaultMount(backing, mountpoint)` mounts `backing` at `mountpoint` in a process of its own;
`set(mode, ...)` changes what calls on it do (see faultfs.py), `release()` makes it behave
again, `close()` lets every held call go and unmounts (also after a failed test).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _unmount(mountpoint):
    fm = shutil.which("fusermount") or shutil.which("fusermount3") or "fusermount"
    for args in ([fm, "-u"], [fm, "-u", "-z"], ["umount", "-l"]):
        try:
            r = subprocess.run(args + [str(mountpoint)], capture_output=True, text=True)
        except OSError:
            continue
        if r.returncode == 0 or not os.path.ismount(mountpoint):
            return True
    return not os.path.ismount(mountpoint)


class FaultMount:
    def __init__(self, backing, mountpoint, log_dir):
        self.backing = Path(backing)
        self.mountpoint = Path(mountpoint)
        self.control = Path(log_dir) / "faultfs.json"
        self.log_path = Path(log_dir) / "faultfs.log"
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self._gen = 0
        self.release()
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "faultfs.py"), str(self.backing), str(self.mountpoint),
             str(self.control)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 15
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"faultfs did not mount:\n{self.log_text()}")
            time.sleep(0.05)

    def log_text(self):
        try:
            return self.log_path.read_text("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def set(self, mode, ops=None, prefix=None, count=None):
        """A new fault (atomically: the filesystem never reads half a file)."""
        self._gen += 1
        try:
            os.unlink(str(self.control) + ".stats")
        except FileNotFoundError:
            pass
        fault = {"mode": mode, "gen": self._gen}
        if ops:
            fault["ops"] = list(ops)
        if prefix:
            fault["prefix"] = prefix
        if count is not None:
            fault["count"] = count
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(fault))
        os.replace(tmp, self.control)

    def release(self):
        """Everything behaves again; held calls return."""
        self.set("ok")

    def calls(self):
        """Calls the current fault has hit so far."""
        try:
            return json.loads(Path(str(self.control) + ".stats").read_text())["calls"]
        except (OSError, ValueError, KeyError):
            return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.release()
        unmounted = _unmount(self.mountpoint)
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not unmounted:
            _unmount(self.mountpoint)
