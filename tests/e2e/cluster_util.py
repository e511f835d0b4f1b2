"""The netns cluster (scripts/netns-cluster.sh) as the multi-node tests drive it: nodes at
10.77.0.I, HTTPS on 8443, asked with curl from the observer namespace 0."""

import hashlib
import json
import os
import sqlite3
import ssl
import subprocess
import time
from pathlib import Path

from conftest import BIN, REPO

SCRIPT = REPO / "scripts" / "netns-cluster.sh"
ADMIN = ("admin", "admin-pass-1")


class Cluster:
    def __init__(self, prefix, base):
        self.prefix = prefix
        self.dir = base
        self.env = {**os.environ, "SHC_PREFIX": prefix, "SHC_DIR": str(base),
                    "STREAMHUB_BIN": str(BIN), "SHC_ADMIN_PASSWORD": ADMIN[1]}
        self.env = {k: v for k, v in self.env.items()
                    if not k.startswith("STREAMHUB_") or k == "STREAMHUB_BIN"}

    def sh(self, *args, timeout=90, check=True):
        r = subprocess.run([str(SCRIPT), *map(str, args)], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"netns-cluster {args}: {r.stdout}\n{r.stderr}"
        return r

    def in_ns(self, i, *cmd, timeout=60):
        return self.sh("exec", i, *cmd, timeout=timeout, check=False)

    def call(self, node, path, auth=ADMIN, method="GET", observer=0, body=None, headers=()):
        """(status, JSON body) of an HTTPS request to node `node` from namespace `observer`."""
        cmd = ["curl", "-sk", "-o", "-", "-w", "\n%{http_code}", "-X", method,
               f"https://10.77.0.{node}:8443{path}"]
        if auth:
            cmd[1:1] = ["-u", f"{auth[0]}:{auth[1]}"]
        if body is not None:
            cmd[1:1] = ["-H", "content-type: application/json", "--data-binary", json.dumps(body)]
        for h in headers:
            cmd[1:1] = ["-H", h]
        r = self.in_ns(observer, *cmd, timeout=30)
        body, _, status = r.stdout.rpartition("\n")
        return int(status or 0), (json.loads(body) if body.strip() else None)

    def peers(self, node):
        status, body = self.call(node, "/api/peers")
        assert status == 200, body
        return body

    def pid(self, node):
        return int((self.dir / f"node{node}" / "pid").read_text())

    def node_id(self, node):
        return self.peers(node)["node"]["id"]

    def kill(self, node):
        """SIGKILL node `node` (a crash) and wait until it is gone."""
        self.sh("kill", node)

    def data_dir(self, node):
        return self.dir / f"node{node}" / "data"

    def query(self, node, sql, args=()):
        """Rows of `sql` on node `node`'s database, opened read-only (safe while it runs: WAL)."""
        db = self.data_dir(node) / "streamhub.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def tls_fingerprint(self, node):
        pem = (self.dir / f"node{node}" / "data" / "tls" / "cert.pem").read_text()
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)




def synced_cluster(prefix, base, nodes=2):
    """A fixture body: `nodes` nodes up and every one synced with every other, taken down
    after (`yield from synced_cluster(...)` in a pytest fixture)."""
    import shutil
    for tool in ("ip", "curl"):
        assert shutil.which(tool), f"{tool} is needed"
    c = Cluster(f"{prefix}{os.getpid() % 100000}", base)
    try:
        c.sh("up", nodes, timeout=120)
        wait_for(lambda: all(c.peers(n)["peers"] and all(p["last_sync"] for p in
                                                         c.peers(n)["peers"])
                             for n in range(1, nodes + 1)),
                 30, "the nodes synced")
        yield c
    finally:
        c.sh("down", check=False)
