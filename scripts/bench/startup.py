#!/usr/bin/env python3
"""Start-to-READY time and binary size, for scripts/bench.sh.

Starts `streamhub serve` as systemd would see it (NOTIFY_SOCKET set) and measures the time
from exec to the READY=1 datagram: once with an empty data dir (first start: makes the
self-signed certificate and the database) and N times warm. Loopback only.
Usage: startup.py BINARY WORKDIR [RUNS]
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def start_to_ready(binary, work, fresh):
    data = os.path.join(work, "data")
    if fresh and os.path.exists(data):
        shutil.rmtree(data)
    os.makedirs(os.path.join(work, "media"), exist_ok=True)
    sock_path = os.path.join(work, "notify.sock")
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHUB_")}
    env["NOTIFY_SOCKET"] = sock_path
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
         "--media-root", os.path.join(work, "media"), "--data-dir", data, "--no-discovery"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while True:
            msg = sock.recv(4096).decode()
            if "READY=1" in msg:
                return (time.perf_counter() - t0) * 1000
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        sock.close()


def main():
    binary, work = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    os.makedirs(work, exist_ok=True)
    first = start_to_ready(binary, work, fresh=True)
    warm = [start_to_ready(binary, work, fresh=False) for _ in range(runs)]
    stripped = os.path.join(tempfile.mkdtemp(), "streamhub")
    subprocess.run(["strip", "-o", stripped, binary], check=True)
    print(f"first start to READY (ms): {first:.1f}")
    print(f"warm start to READY, median of {runs} (ms): {statistics.median(warm):.1f}")
    print(f"binary size (MiB): {os.path.getsize(binary) / 2**20:.2f}")
    print(f"binary size stripped (MiB): {os.path.getsize(stripped) / 2**20:.2f}")


if __name__ == "__main__":
    main()
