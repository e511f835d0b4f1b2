#!/usr/bin/env python3
"""Streaming and uploads through streamhub's S3 backend against the same Garage directly,
for scripts/bench.sh (loopback only).

Starts one Garage node (tests/e2e/garage_util.py, GARAGE_BIN) and streamhub on it
(`[storage] backend = "s3"`, proxy mode), then, interleaved, RUNS times each:
  - a whole FILE_MIB object downloaded through streamhub (`GET /media/…`) and straight
    from Garage (a SigV4-signed GET, curl --aws-sigv4): MiB/s, ratio;
  - the time to the first byte of an open-ended seek (`Range: bytes=N-`, N random), both
    ways, 20 samples per run: median;
  - the same GET and upload through nginx as a plain reverse proxy to Garage (proxy_pass,
    no buffering of requests or answers): what relaying alone costs on this machine, the
    ceiling for a proxying server;
  - an UPLOAD_MIB upload through streamhub (`PUT /media/…`, an S3 multipart upload) and
    straight to Garage (curl -T, one signed PUT): MiB/s, ratio, and streamhub's VmRSS growth
    while it runs (sampled every 20 ms; peak minus the value just before).
Prints a markdown table, then one JSON line.
Usage: s3.py BINARY WORK_DIR [FILE_MIB] [UPLOAD_MIB] [RUNS]
"""
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import garage_util  # noqa: E402
from uploads import RssPeak, rss_kib  # noqa: E402  (the same sampling as the local upload bench)

PASSWORD = "s3-bench-password"


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body)
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, payload


def start_server(binary, work, garage):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHUB_")}
    env.update(garage.env())
    err = open(work / "server.log", "wb")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"),
         "--no-discovery"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env)
    line = proc.stdout.readline().decode()
    m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        sys.exit(f"server did not start: {line!r}\n{(work / 'server.log').read_text()[-2000:]}")
    return proc, int(m.group(1))


def bearer(port, work):
    deadline = time.monotonic() + 10
    token = None
    while token is None and time.monotonic() < deadline:
        found = re.findall(r"setup token: (\S+)", (work / "server.log").read_text())
        token = found[-1] if found else None
        time.sleep(0.05)
    status, _, _ = call(port, "POST", "/api/setup",
                        {"token": token, "name": "root", "password": PASSWORD})
    if status != 201:
        sys.exit(f"setup failed: {status}")
    status, headers, body = call(port, "POST", "/api/login",
                                 {"name": "root", "password": PASSWORD})
    cookie = headers["set-cookie"].split(";", 1)[0]
    auth = {"Cookie": cookie, "X-CSRF-Token": json.loads(body)["csrf_token"]}
    status, _, body = call(port, "POST", "/api/tokens", {"label": "s3 bench"}, auth)
    if status not in (200, 201):
        sys.exit(f"token: {status} {body[:200]!r}")
    return json.loads(body)["token"]


def random_file(path, mib):
    if not path.exists() or path.stat().st_size != mib << 20:
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
    h = hashlib.sha256()
    with open(path, "rb") as f:  # into the page cache, and the reference digest
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def sigv4():
    return ["--aws-sigv4", f"aws:amz:{garage_util.REGION}:s3",
            "--user", f"{garage_util.KEY_ID}:{garage_util.SECRET}",
            "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]


NGINX_CONF = """daemon off;
worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def start_nginx(work, upstream):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = garage_util._free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, port=port, upstream=upstream))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"nginx did not start: {(work / 'nginx-error.log').read_text()[-1000:]}")


def curl(args):
    r = subprocess.run(["curl", "-sS", "--fail", *args], capture_output=True, text=True,
                       check=True)
    return r.stdout


def main():
    binary, work = sys.argv[1], Path(sys.argv[2])
    file_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    upload_mib = int(sys.argv[4]) if len(sys.argv) > 4 else 4096
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    work.mkdir(parents=True, exist_ok=True)
    # A new Garage each run (its layout and keys are made once per data folder).
    shutil.rmtree(work / "garage", ignore_errors=True)
    shutil.rmtree(work / "data", ignore_errors=True)
    garage = garage_util.Garage(work / "garage")
    garage.workdir.mkdir(parents=True, exist_ok=True)
    garage.start()
    proc = ngx = None
    try:
        ngx, ngx_port = start_nginx(work, garage.s3_port)
        via_nginx = f"http://127.0.0.1:{ngx_port}/{garage_util.BUCKET}"
        proc, port = start_server(binary, work, garage)
        token = bearer(port, work)
        auth = ["-H", f"Authorization: Bearer {token}"]
        sh = f"http://127.0.0.1:{port}"
        direct = f"{garage.endpoint}/{garage_util.BUCKET}"

        src = work / f"file-{file_mib}.bin"
        digest = random_file(src, file_mib)
        curl([*auth, "-T", str(src), f"{sh}/media/bench/file.bin"])
        out = subprocess.run(["curl", "-sS", "--fail", *auth, f"{sh}/media/bench/file.bin"],
                             capture_output=True, check=True).stdout
        if hashlib.sha256(out).hexdigest() != digest:
            sys.exit("the object read back through streamhub differs from the file")
        del out
        up = work / f"upload-{upload_mib}.bin"
        random_file(up, upload_mib)

        def get_sh():
            return float(curl([*auth, "-o", "/dev/null", "-w", "%{speed_download}",
                               f"{sh}/media/bench/file.bin"]))

        def get_direct():
            return float(curl([*sigv4(), "-o", "/dev/null", "-w", "%{speed_download}",
                               f"{direct}/bench/file.bin"]))

        def get_nginx():
            return float(curl([*sigv4(), "-o", "/dev/null", "-w", "%{speed_download}",
                               f"{via_nginx}/bench/file.bin"]))

        def put_nginx(i):
            t = time.perf_counter()
            curl([*sigv4(), "-T", str(up), f"{via_nginx}/bench/nginx-{i}.bin"])
            secs = time.perf_counter() - t
            garage.curl_s3("DELETE", f"bench/nginx-{i}.bin")
            return upload_mib / secs

        def seeks(args, url):
            ttfb = []
            for _ in range(20):
                at = random.randrange(0, (file_mib << 20) - (1 << 20))
                # Only the first MiB: a player reads on, but what is timed is the start.
                t = curl([*args, "-H", f"Range: bytes={at}-{at + (1 << 20) - 1}",
                          "-o", "/dev/null", "-w", "%{time_starttransfer}", url])
                ttfb.append(float(t) * 1000)
            return statistics.median(ttfb)

        def put_sh(i):
            with RssPeak(proc.pid) as rss:
                t = time.perf_counter()
                curl([*auth, "-T", str(up), f"{sh}/media/bench/up-{i}.bin"])
                secs = time.perf_counter() - t
            status, _, _ = call(port, "HEAD", f"/media/bench/up-{i}.bin",
                                headers={"Authorization": f"Bearer {token}"})
            if status != 200:
                sys.exit(f"the upload through streamhub is not there: {status}")
            garage.curl_s3("DELETE", f"bench/up-{i}.bin")
            return upload_mib / secs, rss.growth_mib

        def put_direct(i):
            t = time.perf_counter()
            curl([*sigv4(), "-T", str(up), f"{direct}/bench/direct-{i}.bin"])
            secs = time.perf_counter() - t
            garage.curl_s3("DELETE", f"bench/direct-{i}.bin")
            return upload_mib / secs

        res = {k: [] for k in ("get_sh", "get_direct", "get_nginx", "seek_sh", "seek_direct",
                               "put_sh", "put_direct", "put_nginx", "rss")}
        for i in range(runs):
            res["get_sh"].append(get_sh() / (1 << 20))
            res["get_direct"].append(get_direct() / (1 << 20))
            res["get_nginx"].append(get_nginx() / (1 << 20))
            res["seek_sh"].append(seeks(auth, f"{sh}/media/bench/file.bin"))
            res["seek_direct"].append(seeks(sigv4(), f"{direct}/bench/file.bin"))
        for i in range(max(2, runs // 2)):
            mibs, growth = put_sh(i)
            res["put_sh"].append(mibs)
            res["rss"].append(growth)
            res["put_direct"].append(put_direct(i))
            res["put_nginx"].append(put_nginx(i))
        med = {k: statistics.median(v) for k, v in res.items() if k != "rss"}
        summary = {
            "file_mib": file_mib, "upload_mib": upload_mib, "runs": runs,
            "get_mibs": round(med["get_sh"], 1), "get_direct_mibs": round(med["get_direct"], 1),
            "get_ratio": round(med["get_sh"] / med["get_direct"], 2),
            "get_worst_ratio": round(min(a / b for a, b in zip(res["get_sh"],
                                                               res["get_direct"])), 2),
            "get_nginx_mibs": round(med["get_nginx"], 1),
            "get_nginx_ratio": round(med["get_nginx"] / med["get_direct"], 2),
            "put_nginx_mibs": round(med["put_nginx"], 1),
            "put_nginx_ratio": round(med["put_nginx"] / med["put_direct"], 2),
            "seek_ttfb_ms": round(med["seek_sh"], 2),
            "seek_ttfb_direct_ms": round(med["seek_direct"], 2),
            "put_mibs": round(med["put_sh"], 1), "put_direct_mibs": round(med["put_direct"], 1),
            "put_ratio": round(med["put_sh"] / med["put_direct"], 2),
            "upload_rss_growth_mib": round(max(res["rss"]), 1),
            "idle_rss_mib": round(rss_kib(proc.pid) / 1024, 1),
        }
        print("| S3 (Garage 2.5.0, loopback) | streamhub | Garage direct | ratio |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| GET {file_mib} MiB, MiB/s (median of {runs}; worst ratio "
              f"{summary['get_worst_ratio']}) | {summary['get_mibs']} | "
              f"{summary['get_direct_mibs']} | {summary['get_ratio']} |")
        print(f"| reference: nginx proxy_pass to Garage, GET MiB/s / upload MiB/s | "
              f"{summary['get_nginx_mibs']} / {summary['put_nginx_mibs']} | | "
              f"{summary['get_nginx_ratio']} / {summary['put_nginx_ratio']} |")
        print(f"| seek, time to first byte, ms (median) | {summary['seek_ttfb_ms']} | "
              f"{summary['seek_ttfb_direct_ms']} | |")
        print(f"| upload {upload_mib} MiB, MiB/s (median of {len(res['put_sh'])}) | "
              f"{summary['put_mibs']} | {summary['put_direct_mibs']} | {summary['put_ratio']} |")
        print(f"| streamhub VmRSS growth during the upload, MiB (max) | "
              f"{summary['upload_rss_growth_mib']} | | |")
        print(json.dumps(summary))
    finally:
        if ngx is not None:
            ngx.terminate()
            ngx.wait(timeout=10)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        garage.stop()


if __name__ == "__main__":
    main()
