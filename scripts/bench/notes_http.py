#!/usr/bin/env python3
"""Notes created per second by ONE HTTP client (keep-alive, sequential), for scripts/bench.sh.

Creates a user with the CLI (same data dir as the running server), then POSTs notes for a
fixed time over one connection with HTTP Basic (accepted from loopback) and reports the rate
and latency percentiles. Every create is a durable commit (synchronous=FULL). Loopback only.
Usage: notes_http.py BINARY DATA_DIR PORT [SECONDS]
"""
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import time


def main():
    binary, data_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHUB_")}
    subprocess.run([binary, "user", "add", "notebench", "--password-stdin", "--data-dir", data_dir],
                   input="notebench-password\n", text=True, env=env, capture_output=True)
    auth = "Basic " + base64.b64encode(b"notebench:notebench-password").decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    lat, i = [], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        body = json.dumps({"title": f"bench note {i}", "body": "word " * 80,
                           "tags": ["bench"], "visibility": "public"})
        t = time.perf_counter()
        conn.request("POST", "/api/notes", body=body,
                     headers={"Authorization": auth, "Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            sys.exit(f"create failed: {r.status}")
        lat.append((time.perf_counter() - t) * 1000)
        i += 1
    lat.sort()
    total = sum(lat) / 1000
    print(f"notes created by one HTTP client: {len(lat) / total:.0f} notes/s ({len(lat)} in {total:.1f} s)")
    print(f"create latency p50/p95 (ms): {statistics.median(lat):.2f} / {lat[int(len(lat) * 0.95)]:.2f}")


if __name__ == "__main__":
    main()
