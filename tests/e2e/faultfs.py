#!/usr/bin/env python3
"""A fault-injecting FUSE passthrough filesystem, standing in for an NFS/SMB media share.

    python3 faultfs.py BACKING MOUNTPOINT CONTROL

mounts BACKING at MOUNTPOINT (foreground; `fusermount -u MOUNTPOINT` ends it). CONTROL is
a JSON file the filesystem re-reads whenever it changes; a test rewrites it (atomically,
see `FaultFs.set` in netmount_util.py) to make calls on the mount

    {"mode": "ok"}                               behave (the default, and a missing file)
    {"mode": "hang", "ops": [...], "prefix": P}  block until the mode changes (a hung server)
    {"mode": "eio", ...}                         fail with EIO
    {"mode": "estale", "count": N, ...}          fail with ESTALE N times, then behave

`ops` limits a fault to some operations (names of fusepy's methods: "open", "read",
"getattr", "readdir", ...; default all), `prefix` to paths under P (as seen inside the
mount, e.g. "/movies"; default everything). Every change of the file is a new fault:
an `estale` count starts again. `calls` in STATS (CONTROL + ".stats", rewritten at each
faulted call) counts the calls a fault hit, so a test can see that the fault was reached.

Reads go straight to this process (`direct_io`) and the kernel keeps no names or
attributes (`entry_timeout=0`, `attr_timeout=0`): a fault applies to the next call, as on
a server that just went away, not after a cache expires.
"""

import errno
import json
import os
import sys
import threading
import time

from fuse import FUSE, FuseOSError, Operations

POLL = 0.02


class Control:
    """The current fault, re-read when CONTROL changes (by its mtime and size)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.sig = None
        self.fault = {"mode": "ok"}
        self.hits = 0

    def current(self):
        try:
            st = os.stat(self.path)
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            sig = None
        with self.lock:
            if sig != self.sig:
                self.sig = sig
                self.hits = 0
                try:
                    with open(self.path) as f:
                        self.fault = json.load(f) if sig else {"mode": "ok"}
                except (OSError, ValueError):
                    self.fault = {"mode": "ok"}
            return self.fault

    def applies(self, fault, op, path):
        if fault.get("mode", "ok") == "ok":
            return False
        ops = fault.get("ops")
        if ops and op not in ops:
            return False
        prefix = fault.get("prefix")
        if prefix and not (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
            return False
        return True

    def hit(self):
        # The file is written under the lock: two calls hitting at once wrote it in either
        # order, and a stale count written last stayed (a test waited for 16 hung writes
        # while the file said 15; seen in CI).
        with self.lock:
            self.hits += 1
            n = self.hits
            try:
                tmp = self.path + ".stats.tmp"
                with open(tmp, "w") as f:
                    json.dump({"calls": n}, f)
                os.replace(tmp, self.path + ".stats")
            except OSError:
                pass
        return n

    def check(self, op, path):
        """Applies the current fault to one call: returns normally, raises, or blocks."""
        fault = self.current()
        if not self.applies(fault, op, path):
            return
        mode = fault["mode"]
        if mode == "hang":
            self.hit()
            # Held until the test changes the fault (the server comes back).
            while True:
                time.sleep(POLL)
                now = self.current()
                if now is not fault and not (
                    now.get("mode") == "hang" and self.applies(now, op, path)
                ):
                    return
                fault = now
        if mode == "eio":
            self.hit()
            raise FuseOSError(errno.EIO)
        if mode == "estale":
            with self.lock:
                left = fault.get("count", 1) - self.hits
            if left > 0:
                self.hit()
                raise FuseOSError(errno.ESTALE)


class FaultFs(Operations):
    def __init__(self, backing, control):
        self.backing = os.path.realpath(backing)
        self.ctl = control

    def _full(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def __call__(self, op, path, *args):
        self.ctl.check(op, path)
        return super().__call__(op, path, *args)

    # Metadata.
    def access(self, path, mode):
        if not os.access(self._full(path), mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.lstat(self._full(path))
        return {
            k: getattr(st, k)
            for k in (
                "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
                "st_nlink", "st_size", "st_uid", "st_ino",
            )
        }

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def readlink(self, path):
        return os.readlink(self._full(path))

    def statfs(self, path):
        st = os.statvfs(self._full(path))
        return {
            k: getattr(st, k)
            for k in (
                "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax",
            )
        }

    # Changes.
    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path), uid, gid)

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def unlink(self, path):
        os.unlink(self._full(path))

    def rename(self, old, new):
        os.rename(self._full(old), self._full(new))

    def link(self, target, name):
        os.link(self._full(name), self._full(target))

    def symlink(self, name, target):
        os.symlink(name, self._full(target))

    def utimens(self, path, times=None):
        os.utime(self._full(path), times)

    # Files.
    def open(self, path, flags):
        return os.open(self._full(path), flags & ~os.O_NONBLOCK)

    def create(self, path, mode, fi=None):
        return os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    def read(self, path, length, offset, fh):
        return os.pread(fh, length, offset)

    def write(self, path, buf, offset, fh):
        return os.pwrite(fh, buf, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._full(path), length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    def fsync(self, path, datasync, fh):
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def opendir(self, path):
        if not os.path.isdir(self._full(path)):
            raise FuseOSError(errno.ENOTDIR)
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: faultfs.py BACKING MOUNTPOINT CONTROL")
    backing, mountpoint, control = sys.argv[1:]
    FUSE(
        FaultFs(backing, Control(control)),
        mountpoint,
        foreground=True,
        nothreads=False,
        allow_other=True,
        default_permissions=True,
        direct_io=True,
        entry_timeout=0,
        attr_timeout=0,
        fsname="faultfs",
    )


if __name__ == "__main__":
    main()
