#!/usr/bin/env python3
"""Upload throughput and memory, for scripts/bench.sh (loopback only).

Against the running streamhub (PID, PORT, its DATA_DIR and MEDIA_DIR), with a file of
SIZE_MIB random bytes (page-cached, so the client is not the limit):
  - reference: `dd bs=1M conv=fsync` copying the file into the media folder (same disk);
  - `PUT /media/...` with curl (streamed, fsync + rename at the end);
  - tus: POST (creation) then one PATCH with the whole body with curl (what tus-js-client
    does with its default chunk size), then tuspy with 64 MiB chunks (a real tus client);
Each upload is timed from the first byte sent to the answer (the service's fsync included,
as dd's conv=fsync includes it). While each upload runs, the service's VmRSS is sampled every
20 ms; the growth is the peak minus the value just before. Interleaved runs; medians.
Usage: uploads.py BINARY DATA_DIR MEDIA_DIR PORT PID [SIZE_MIB] [RUNS]
"""
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

USER, PASSWORD = "uploadbench", "uploadbench-password"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class RssPeak:
    def __init__(self, pid):
        self.pid, self.base, self.peak = pid, rss_kib(pid), 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_kib(self.pid))

    @property
    def growth_mib(self):
        return (self.peak - self.base) / 1024


def drop_dirty():
    # Start every run with no dirty pages of an earlier one still being written back.
    subprocess.run(["sync"], check=True)


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    binary, data_dir, media_dir, port, pid = sys.argv[1:6]
    size_mib = int(sys.argv[6]) if len(sys.argv) > 6 else 4096
    runs = int(sys.argv[7]) if len(sys.argv) > 7 else 2
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHUB_")}
    subprocess.run([binary, "user", "add", USER, "--password-stdin", "--data-dir", data_dir],
                   input=PASSWORD + "\n", text=True, env=env, capture_output=True)
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(f"{base}/api/tokens", method="POST",
                                 data=json.dumps({"label": "bench"}).encode(),
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    token = json.load(urllib.request.urlopen(req))["token"]
    bearer = f"Authorization: Bearer {token}"

    src_dir = os.path.join(os.path.dirname(os.path.abspath(media_dir)), "upload-src")
    os.makedirs(src_dir, exist_ok=True)
    src = os.path.join(src_dir, f"src-{size_mib}.bin")
    if not os.path.exists(src) or os.path.getsize(src) != size_mib << 20:
        with open(src, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
    with open(src, "rb") as f:  # into the page cache, and the reference digest
        h = hashlib.sha256()
        while chunk := f.read(8 << 20):
            h.update(chunk)
    digest = h.hexdigest()
    out_dir = os.path.join(media_dir, "upload-bench")
    os.makedirs(out_dir, exist_ok=True)

    def dd(i):
        dst = os.path.join(out_dir, f"dd-{i}.bin")
        drop_dirty()
        secs = timed(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync", "status=none"])
        os.remove(dst)
        return secs, 0.0

    def put(i):
        name = f"put-{i}.bin"
        drop_dirty()
        with RssPeak(pid) as rss:
            secs = timed(["curl", "-sS", "--fail", "-H", bearer, "-T", src,
                          f"{base}/media/upload-bench/{name}"])
        check_and_remove(name)
        return secs, rss.growth_mib

    def tus_curl(i):
        name = f"tus-{i}.bin"
        meta = "filename " + base64.b64encode(name.encode()).decode() + \
               ",folder " + base64.b64encode(b"upload-bench").decode()
        out = subprocess.run(["curl", "-sS", "--fail", "-D", "-", "-o", "/dev/null", "-X", "POST",
                              "-H", bearer, "-H", "Tus-Resumable: 1.0.0",
                              "-H", f"Upload-Length: {size_mib << 20}",
                              "-H", f"Upload-Metadata: {meta}", f"{base}/api/tus/"],
                             check=True, capture_output=True, text=True).stdout
        loc = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                   if line.lower().startswith("location:"))
        drop_dirty()
        with RssPeak(pid) as rss:
            secs = timed(["curl", "-sS", "--fail", "-X", "PATCH", "-H", bearer,
                          "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                          "-H", "Content-Type: application/offset+octet-stream",
                          "-T", src, f"{base}{loc}"])  # streamed; --data-binary would load it
        check_and_remove(name)
        return secs, rss.growth_mib

    def tuspy(i):
        from tusclient import client
        name = f"tuspy-{i}.bin"
        c = client.TusClient(f"{base}/api/tus/", headers={"Authorization": f"Bearer {token}"})
        up = c.uploader(src, chunk_size=64 << 20,
                        metadata={"filename": name, "folder": "upload-bench"})
        drop_dirty()
        with RssPeak(pid) as rss:
            t = time.perf_counter()
            up.upload()
            secs = time.perf_counter() - t
        check_and_remove(name)
        return secs, rss.growth_mib

    def check_and_remove(name):
        path = os.path.join(out_dir, name)
        if os.path.getsize(path) != size_mib << 20:
            sys.exit(f"{name}: wrong size")
        if run_index == 0:  # the content once per kind (hashing 4 GiB costs time)
            with open(path, "rb") as f:
                hh = hashlib.sha256()
                while chunk := f.read(8 << 20):
                    hh.update(chunk)
            if hh.hexdigest() != digest:
                sys.exit(f"{name}: content differs from the source")
        os.remove(path)

    kinds = {"dd": dd, "put": put, "tus_curl": tus_curl}
    try:
        import tusclient  # noqa: F401
        kinds["tuspy"] = tuspy
    except ImportError:
        print("tuspy not installed: tus client row skipped", file=sys.stderr)
    results = {k: [] for k in kinds}
    for run_index in range(runs):
        for kind, fn in kinds.items():
            results[kind].append(fn(run_index))
    dd_mibs = size_mib / statistics.median(s for s, _ in results["dd"])
    summary = {"size_mib": size_mib, "runs": runs, "dd_mibs": round(dd_mibs, 1)}
    for kind in kinds:
        if kind == "dd":
            continue
        mibs = size_mib / statistics.median(s for s, _ in results[kind])
        summary[f"{kind}_mibs"] = round(mibs, 1)
        summary[f"{kind}_vs_dd"] = round(mibs / dd_mibs, 2)
        summary[f"{kind}_rss_growth_mib"] = round(max(g for _, g in results[kind]), 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
