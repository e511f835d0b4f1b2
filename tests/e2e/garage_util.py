"""A real single-node Garage (S3-compatible object store) for the S3 backend tests.

`scripts/test.sh` installs Garage (pinned version, cached between runs) and exports
`GARAGE_BIN`. Without it the S3 tests fail: they are never skipped.

Garage has no "port 0" mode whose port it reports back, so each start picks free loopback
ports (bind to port 0, read the port, close) and retries with new ones if Garage cannot
bind them (another process took one in between).
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

REGION = "garage"
BUCKET = "media"
# Garage accepts imported keys of this shape: "GK" + 24 hex digits, a 64-hex-digit secret.
KEY_ID = "GK5e7ea3b0c0ffee0123456789"
SECRET = "5ec7e7" + "0" * 58
START_TIMEOUT = 30.0


def garage_bin():
    path = os.environ.get("GARAGE_BIN")
    if not path:
        raise RuntimeError(
            "GARAGE_BIN is not set: run scripts/test.sh, which installs Garage, or point "
            "GARAGE_BIN at a garage 2.5.0 binary"
        )
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"GARAGE_BIN={path} is not an executable")
    return path


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Garage:
    """One Garage node in `workdir`; `endpoint` is its S3 API (path-style, http)."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.bin = garage_bin()
        self.proc = None
        self.config = self.workdir / "garage.toml"
        self.log_path = self.workdir / "garage.log"
        self.s3_port = None
        self.rpc_port = None
        self.rpc_secret = secrets.token_hex(32)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def cli(self, *args, check=True):
        r = subprocess.run(
            [self.bin, "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"garage {' '.join(args)} failed: {r.stdout}\n{r.stderr}")
        return r.stdout

    def _write_config(self):
        self.config.write_text(
            f"""metadata_dir = "{self.workdir / 'meta'}"
data_dir = "{self.workdir / 'data'}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{self.rpc_port}"
rpc_public_addr = "127.0.0.1:{self.rpc_port}"
rpc_secret = "{self.rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{self.s3_port}"
root_domain = ".s3.garage.localhost"
"""
        )

    def _spawn(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "-c", str(self.config), "server"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "garage=warn"},
        )
        log.close()

    def _wait_ready(self):
        """Until the S3 port accepts and the RPC answers `status`; False if Garage exited."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.s3_port), timeout=0.5):
                    pass
                if self.cli("status", check=False):
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"garage did not start within {START_TIMEOUT} s:\n{self.log_text()}")

    def start(self):
        """Starts Garage; the first start also sets up the layout, bucket and key."""
        first = self.s3_port is None
        for _ in range(5):
            if first:
                self.s3_port, self.rpc_port = _free_port(), _free_port()
                self._write_config()
            self._spawn()
            if self._wait_ready():
                break
            if not first:
                raise RuntimeError(f"garage did not restart:\n{self.log_text()}")
        else:
            raise RuntimeError(f"garage could not bind loopback ports:\n{self.log_text()}")
        if first:
            self._setup()
        return self

    def _setup(self):
        node = self.cli("node", "id", "-q").strip().split("@")[0]
        self.cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
        self.cli("layout", "apply", "--version", "1")
        self.create_bucket(BUCKET)
        self.cli("key", "import", "--yes", "-n", "streamhub", KEY_ID, SECRET)
        self.allow(BUCKET)

    def create_bucket(self, name):
        self.cli("bucket", "create", name)

    def allow(self, bucket):
        self.cli("bucket", "allow", "--read", "--write", "--owner", bucket, "--key", "streamhub")

    def stop(self):
        """Stops Garage (SIGTERM, then SIGKILL); its data stays for `start` again."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def kill(self):
        """SIGKILL: an abrupt outage (SIGTERM lets Garage finish the requests it serves)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def env(self, prefix=""):
        """The STREAMHUB_* variables that point a server at this Garage."""
        return {
            "STREAMHUB_STORAGE_BACKEND": "s3",
            "STREAMHUB_S3_ENDPOINT": self.endpoint,
            "STREAMHUB_S3_REGION": REGION,
            "STREAMHUB_S3_BUCKET": BUCKET,
            "STREAMHUB_S3_PREFIX": prefix,
            "STREAMHUB_S3_ACCESS_KEY_ID": KEY_ID,
            "STREAMHUB_S3_SECRET_ACCESS_KEY": SECRET,
        }

    def curl_s3(self, method, key, data=None, extra=(), bucket=None):
        """A signed request straight to Garage (curl's own SigV4), to seed or check objects
        behind streamhub's back. Returns (status, body bytes)."""
        cmd = [
            "curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method,
            "--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", f"{KEY_ID}:{SECRET}",
            "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", *extra,
        ]
        if data is not None:
            cmd += ["--data-binary", "@-"]
        cmd.append(f"{self.endpoint}/{bucket or BUCKET}/{quote(key, safe='/')}")
        r = subprocess.run(cmd, input=data, capture_output=True, timeout=60)
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code or 0), body


def cleanup(garage):
    garage.stop()
    shutil.rmtree(garage.workdir, ignore_errors=True)
