"""Zero-copy media bodies (issue 17, `http::sendfile`): over plain HTTP/1.x a cached file is
sent with sendfile, each body frame a placeholder that the connection pairs with a file
region. What a user checks: every byte is the file's, whatever the requests on one connection
look like, and a file the kernel will not describe to the service is still served (copied).
"""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import BIN, clean_env


def _responses(sock, n, heads):
    """Reads `n` pipelined responses; `heads[i]` says response i has no body (HEAD)."""
    buf, out = b"", []
    sock.settimeout(20)
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {len(out)} responses"
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        length = 0 if heads[len(out)] or status == 304 else int(hdrs.get("content-length", "0"))
        while len(buf) < length:
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed inside response {len(out)}"
            buf += chunk
        out.append((status, hdrs, buf[:length]))
        buf = buf[length:]
    return out, buf


def test_pipelined_mixed_requests_get_exactly_their_bytes(server):
    """Ranges, multi-ranges, HEADs, 304s, 404s and whole files pipelined on one
    connection, written in one burst: each answer carries its own bytes and nothing else."""
    rel = "bin1m.bin"
    data = (Path(server.media_root) / rel).read_bytes()
    size = len(data)
    etag = subprocess.run(
        ["curl", "-sI", server.url(f"/media/{rel}")], capture_output=True, text=True
    ).stdout.lower().split("etag: ")[1].splitlines()[0].strip()
    rnd = random.Random(7)
    reqs = []  # (method, headers, expected (status, body or None for "check below"))
    for _ in range(40):
        a = rnd.randrange(size - 1)
        b = min(size - 1, a + rnd.choice([0, 1, 4095, 65535, 200_000]))
        reqs.append(("GET", {"Range": f"bytes={a}-{b}"}, (206, data[a:b + 1])))
        kind = rnd.randrange(6)
        if kind == 0:
            reqs.append(("HEAD", {"Range": f"bytes={a}-{b}"}, (206, b"")))
        elif kind == 1:
            reqs.append(("GET", {"If-None-Match": etag}, (304, b"")))
        elif kind == 2:
            reqs.append(("GET", {}, (404, None)))
        elif kind == 3:
            reqs.append(("GET", {"Range": f"bytes=-{b - a + 1}"}, (206, data[size - (b - a + 1):])))
        elif kind == 4:
            reqs.append(("GET", {"Range": "bytes=0-9,100-199"}, (206, None)))
    reqs.append(("GET", {}, (200, data)))
    wire = b""
    for method, hdrs, (status, _) in reqs:
        target = f"/media/{rel}" if status != 404 else "/media/no-such-file.bin"
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        wire += ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(wire)
        got, extra = _responses(s, len(reqs), [m == "HEAD" for m, _, _ in reqs])
    assert extra == b"", f"{len(extra)} bytes after the last response"
    for i, ((method, hdrs, (status, body)), (st, h, b)) in enumerate(zip(reqs, got)):
        assert st == status, f"request {i} {method} {hdrs}: {st}"
        if body is not None:
            assert b == body, f"request {i} {method} {hdrs}: wrong bytes ({len(b)} vs {len(body)})"
        elif "multipart" in h.get("content-type", ""):
            assert data[0:10] in b and data[100:200] in b, f"request {i}: parts missing"
            assert b"\0" * 64 not in b.replace(data[0:10], b"").replace(data[100:200], b"")


def test_http10_and_connection_close_get_the_whole_file(server):
    rel = "bin1m.bin"
    data = (Path(server.media_root) / rel).read_bytes()
    for req in (
        f"GET /media/{rel} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        f"GET /media/{rel} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        f"GET /media/{rel} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=1000-\r\nConnection: close\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(req.encode())
            got, _ = _responses(s, 1, [False])
            status, _, body = got[0]
        want = data[1000:] if "Range" in req else data
        assert status in (200, 206) and body == want, req.split("\r\n")[0]


def test_a_file_the_service_may_not_write_is_copied_and_correct(tmp_path_factory):
    """Linux lets only a process that may write a file ask what of it is cached, and the
    zero-copy path needs to know. Run as `nobody`, a root-owned file (0644) is copied,
    the log says so once, and the bytes are right; a file nobody owns is served as well."""
    if os.geteuid() != 0:
        raise AssertionError("this test runs the server as nobody and needs root")
    base = Path(tempfile.mkdtemp(prefix="zc-", dir="/tmp"))
    try:
        media, data_dir = base / "media", base / "data"
        media.mkdir()
        data_dir.mkdir()
        theirs = os.urandom(3 << 20)
        (media / "root-owned.bin").write_bytes(theirs)
        (media / "root-owned.bin").chmod(0o644)
        mine = os.urandom(1 << 20)
        (media / "own.bin").write_bytes(mine)
        for p in (base, media, data_dir, media / "own.bin"):
            shutil.chown(p, "nobody", "nogroup")
        base.chmod(0o755)
        cfg = base / "c.toml"
        cfg.write_text('[log]\nlevel = "info"\n')
        cfg.chmod(0o644)
        err = open(base / "stderr.log", "wb")
        proc = subprocess.Popen(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(BIN),
             "serve", "--config", str(cfg), "--listen", "127.0.0.1:0",
             "--media-root", str(media), "--data-dir", str(data_dir), "--no-discovery"],
            stdout=subprocess.PIPE, stderr=err, env=clean_env(), stdin=subprocess.DEVNULL)
        try:
            line = proc.stdout.readline().decode()
            assert line.startswith("listening on http://"), (line, (base / "stderr.log").read_text())
            url = line.split()[-1].strip()
            for name, want in (("root-owned.bin", theirs), ("own.bin", mine)):
                # A player's small range is one chunk, which is offered for zero-copy (so
                # the kernel is asked); the end of a longer read is copied in any case.
                for rng in (None, (70000, 600000), (70000, 99999)):
                    args = ["curl", "-sf", f"{url}/media/{name}"]
                    if rng:
                        args += ["-H", f"Range: bytes={rng[0]}-{rng[1]}"]
                    got = subprocess.run(args, capture_output=True, timeout=60).stdout
                    exp = want[rng[0]:rng[1] + 1] if rng else want
                    assert got == exp, f"{name} {rng}: {len(got)} bytes, not the file's"
            time.sleep(0.3)
            log = (base / "stderr.log").read_text("utf-8", "replace")
            assert log.count("zero-copy sends refused") == 1, log[-3000:]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            err.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
