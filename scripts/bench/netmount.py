#!/usr/bin/env python3
"""How the rest of streamhub answers while its media mount hangs, for scripts/bench.sh.

Mounts a fault-injecting FUSE share (tests/e2e/faultfs.py) as the media root, starts the
server with the default storage settings (storage.timeout_secs 15, storage.max_threads 32),
makes every call on the share hang (a dead NFS server on a hard mount), starts READS media
GETs that hang, and then times, SAMPLES times each: GET /healthz, GET /api/notes, POST
/api/notes (a durable SQLite commit) and a login (argon2), plus a media GET once all of
storage's threads are stuck (503 at once). Then lets the share go and times how long media
takes to answer again (no restart). Loopback only; needs root and /dev/fuse.
Usage: netmount.py BINARY WORK_DIR [READS] [SAMPLES]
"""
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from netmount_util import FaultMount  # noqa: E402

PASSWORD = "netmount-bench-pw"


def call(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body)
        h["Content-Type"] = "application/json"
    t = time.perf_counter()
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    payload = r.read()
    secs = time.perf_counter() - t
    conn.close()
    return r.status, dict(r.getheaders()), payload, secs


def start_server(binary, work, media):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHUB_")}
    err = open(work / "server.log", "wb")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--media-root", str(media),
         "--data-dir", str(work / "data"), "--no-discovery"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env)
    line = proc.stdout.readline().decode()
    m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        sys.exit(f"server did not start: {line!r}\n{(work / 'server.log').read_text()[-2000:]}")
    return proc, int(m.group(1))


def setup_admin(port, work):
    deadline = time.monotonic() + 10
    token = None
    while token is None and time.monotonic() < deadline:
        found = re.findall(r"setup token: (\S+)", (work / "server.log").read_text())
        token = found[-1] if found else None
        time.sleep(0.05)
    status, _, _, _ = call(port, "POST", "/api/setup",
                           {"token": token, "name": "root", "password": PASSWORD})
    if status != 201:
        sys.exit(f"setup failed: {status}")
    status, headers, body, _ = call(port, "POST", "/api/login",
                                    {"name": "root", "password": PASSWORD})
    cookie = headers["set-cookie"].split(";", 1)[0] if "set-cookie" in headers else \
        headers["Set-Cookie"].split(";", 1)[0]
    return {"Cookie": cookie, "X-CSRF-Token": json.loads(body)["csrf_token"]}


def row(name, secs):
    ms = sorted(s * 1000 for s in secs)
    return f"| {name} | {statistics.median(ms):.1f} | {ms[-1]:.1f} | {len(ms)} |"


def main():
    binary, work = sys.argv[1], Path(sys.argv[2])
    reads = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    samples = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    work.mkdir(parents=True, exist_ok=True)
    share = work / "share"
    (share / "movies").mkdir(parents=True, exist_ok=True)
    (share / "movies" / "film.bin").write_bytes(os.urandom(4 << 20))
    mount = FaultMount(share, work / "mnt", work)
    proc = None
    try:
        proc, port = start_server(binary, work, mount.mountpoint)
        auth = setup_admin(port, work)
        status, _, _, _ = call(port, "GET", "/media/movies/film.bin")
        assert status == 200, status

        mount.set("hang")
        hung = []

        def reader():
            try:
                hung.append(call(port, "GET", "/media/movies/film.bin", timeout=120)[0])
            except OSError as e:
                hung.append(repr(e))

        threads = [threading.Thread(target=reader, daemon=True) for _ in range(reads)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        while mount.calls() < 16 and time.monotonic() < deadline:
            time.sleep(0.05)

        res = {"healthz": [], "notes_list": [], "note_create": [], "login": []}
        for i in range(samples):
            res["healthz"].append(call(port, "GET", "/healthz")[3])
            res["notes_list"].append(call(port, "GET", "/api/notes", headers=auth)[3])
            s, _, _, secs = call(port, "POST", "/api/notes", {"title": f"n{i}", "body": "b"},
                                 headers=auth)
            assert s == 201, s
            res["note_create"].append(secs)
            s, _, _, secs = call(port, "POST", "/api/login", {"name": "root", "password": PASSWORD})
            assert s == 200, s
            res["login"].append(secs)
        in_flight = reads - len(hung)

        for t in threads:
            t.join(timeout=120)
        stuck_503 = []
        for _ in range(samples):
            s, h, _, secs = call(port, "GET", "/media/movies/film.bin")
            assert s == 503 and h.get("retry-after", h.get("Retry-After")) == "5", (s, h)
            stuck_503.append(secs)

        mount.release()
        t0 = time.perf_counter()
        while call(port, "GET", "/media/movies/film.bin")[0] != 200:
            if time.perf_counter() - t0 > 60:
                sys.exit("media did not come back within 60 s")
            time.sleep(0.05)
        recovered = time.perf_counter() - t0

        print(f"### Hung media mount ({reads} media reads hanging on a FUSE share; "
              f"{in_flight} still in flight during the samples; default storage settings)\n")
        print("| request while the mount hangs | p50 ms | max ms | samples |")
        print("|---|---:|---:|---:|")
        for name, secs in res.items():
            print(row(name, secs))
        print(row("media GET once storage's threads are stuck (503)", stuck_503))
        worst = max(max(res["healthz"]), max(res["notes_list"]), max(res["note_create"]))
        codes = sorted({str(c) for c in hung})
        print(f"\nthe {reads} hung reads ended as: {', '.join(codes)}; media answered again "
              f"{recovered * 1000:.0f} ms after the share came back (no restart)")
        print(f"\nslowest /healthz or notes answer while hung (ms): {worst * 1000:.1f}")
    finally:
        mount.release()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        mount.close()


if __name__ == "__main__":
    main()
