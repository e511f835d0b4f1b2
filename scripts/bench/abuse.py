#!/usr/bin/env python3
"""Issue 12's attacks against a release build, on loopback only, default configuration.

    scripts/bench/abuse.py BIN WORKDIR [SECONDS]     (`scripts/bench.sh abuse` runs it)

For each attack, run for SECONDS (default 20) from 127.0.0.3 while a probe on 127.0.0.2 asks
for /healthz and a 64 KiB media range in turn: the probe's p99 and worst latency, the server's
peak RSS during the attack, and its RSS 60 s after the attack ended, against its idle RSS.
The targets (docs/PERFORMANCE.md, "Under abuse"): p99 < 1 s, peak ≤ 64 MiB, back within
8 MiB of idle 60 s after. Prints one markdown table.
"""

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

BIN, WORK = sys.argv[1], sys.argv[2]
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 20
HOST, ATTACKER, PROBE = "127.0.0.1", "127.0.0.3", "127.0.0.2"
PW = "correct horse battery staple"
HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def call(port, method, path, body=None, headers=None, src=ATTACKER, timeout=10):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout, source_address=(src, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Server:
    def __init__(self):
        self.data, self.media = f"{WORK}/data", f"{WORK}/media"
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.media, exist_ok=True)
        with open(f"{self.media}/big.bin", "wb") as f:
            f.write(os.urandom(64 << 20))
        subprocess.run([BIN, "user", "add", "mia", "--data-dir", self.data, "--init", "--password-stdin"],
                       input=PW + "\n", text=True, check=True, capture_output=True)
        s = socket.socket()
        s.bind((HOST, 0))
        self.port = s.getsockname()[1]
        s.close()
        # The service refuses STREAMHUB_* variables it does not know (STREAMHUB_BIN is ours).
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHUB_")}
        env.update(STREAMHUB_SERVER_LISTEN=f"{HOST}:{self.port}", STREAMHUB_SERVER_TLS_LISTEN="",
                   STREAMHUB_SERVER_DATA_DIR=self.data, STREAMHUB_STORAGE_MEDIA_ROOT=self.media)
        self.log = open(f"{WORK}/serve.log", "wb")
        self.proc = subprocess.Popen([BIN, "serve", "--no-discovery"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(100):
            if self.proc.poll() is not None:
                sys.exit(f"streamhub exited at start; see {WORK}/serve.log")
            try:
                if call(self.port, "GET", "/healthz", src=PROBE)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        status, body = call(self.port, "POST", "/api/login", json.dumps({"name": "mia", "password": PW}),
                            {"Content-Type": "application/json"}, src=PROBE)
        assert status == 200, body

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


class Probe(threading.Thread):
    """Another client on the LAN: /healthz and a 64 KiB range, one after the other."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.times, self.failures, self.stop = port, [], 0, threading.Event()

    def run(self):
        rnd = random.Random(1)
        while not self.stop.is_set():
            start = rnd.randrange(0, 60 << 20)
            for path, hdr in (("/healthz", {}), ("/media/big.bin", {"Range": f"bytes={start}-{start + 65535}"})):
                t = time.monotonic()
                try:
                    status, _ = call(self.port, "GET", path, headers=hdr, src=PROBE, timeout=5)
                    ok = status in (200, 206)
                except OSError:
                    ok = False
                self.times.append(time.monotonic() - t if ok else 5.0)
                self.failures += not ok
            time.sleep(0.05)


def h2_zero_window(port, stop):
    subprocess.run([sys.executable, f"{HERE}/../abuse/h2zero.py", HOST, str(port), "/media/big.bin", "250", "64",
                    str(SECONDS), ATTACKER], capture_output=True, check=False)


def idle_sockets(port, stop):
    """1,030 connections that never send a byte, reopened as the server closes them."""
    socks = []
    while not stop.is_set():
        socks = [s for s in socks if s.fileno() >= 0]
        while len(socks) < 1030 and not stop.is_set():
            s = socket.socket()
            s.bind((ATTACKER, 0))
            s.settimeout(1)
            try:
                s.connect((HOST, port))
            except OSError:
                s.close()
                break
            socks.append(s)
        time.sleep(1)
        for s in list(socks):
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    s.close()
            except BlockingIOError:
                pass
            except OSError:
                s.close()
    for s in socks:
        s.close()


def login_flood(port, stop):
    """400 logins at once with unknown names, round after round."""
    def one(i):
        try:
            call(port, "POST", "/api/login", json.dumps({"name": f"nobody{i}", "password": "x" * 12}),
                 {"Content-Type": "application/json"}, timeout=30)
        except OSError:
            pass
    while not stop.is_set():
        ts = [threading.Thread(target=one, args=(i,)) for i in range(400)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


def tus_flood(port, stop):
    """tus uploads announcing 60 GB each, 3,000 of them, as a member (HTTP Basic)."""
    import base64
    auth = "Basic " + base64.b64encode(f"mia:{PW}".encode()).decode()
    n = 0
    while not stop.is_set() and n < 3000:
        try:
            call(port, "POST", "/api/tus/", headers={"Authorization": auth, "Tus-Resumable": "1.0.0",
                                                      "Upload-Length": str(60 * 10**9),
                                                      "Upload-Metadata": "filename " + base64.b64encode(f"f{n}".encode()).decode()})
        except OSError:
            pass
        n += 1


ATTACKS = [("HTTP/2 zero window, 250 × 64 streams", h2_zero_window),
           ("1,030 silent connections", idle_sockets),
           ("400 parallel logins, unknown names", login_flood),
           ("3,000 tus uploads announcing 60 GB", tus_flood)]


def main():
    srv = Server()
    rows = []
    try:
        time.sleep(2)
        for label, attack in ATTACKS:
            idle = rss_kib(srv.proc.pid)
            probe, stop = Probe(srv.port), threading.Event()
            t = threading.Thread(target=attack, args=(srv.port, stop), daemon=True)
            probe.start()
            t.start()
            peak, end = idle, time.monotonic() + SECONDS
            while time.monotonic() < end:
                peak = max(peak, rss_kib(srv.proc.pid))
                time.sleep(0.25)
            stop.set()
            t.join(60)
            probe.stop.set()
            probe.join()
            time.sleep(60)
            after = rss_kib(srv.proc.pid)
            times = sorted(probe.times) or [0.0]
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            rows.append((label, idle, peak, after, p99, times[-1], probe.failures, len(times)))
            print(f"[abuse] {label}: idle {idle} KiB, peak {peak}, 60 s after {after}; probe p99 {p99:.3f} s",
                  file=sys.stderr, flush=True)
    finally:
        srv.stop()
    print(f"| attack (from 127.0.0.3, {SECONDS:.0f} s) | idle RSS | peak RSS | 60 s after | other client p99 / worst | probe failures |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, idle, peak, after, p99, worst, fails, n in rows:
        print(f"| {label} | {idle / 1024:.1f} MiB | {peak / 1024:.1f} MiB | {after / 1024:.1f} MiB | "
              f"{p99 * 1000:.0f} / {worst * 1000:.0f} ms | {fails} of {n} |")


if __name__ == "__main__":
    main()
