"""Shared fixtures and helpers for the streamhub end-to-end suite.

Everything here talks to the REAL binary over loopback (127.0.0.1) only.
"""

import hashlib
import json
import os
import queue
import random
import re
from datetime import datetime
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("STREAMHUB_BIN", str(REPO / "target/debug/streamhub")))

LISTEN_RE = re.compile(r"^listening on (https?)://(\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\]):(\d+)$")

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0

# --- media layout (names used by the tests) --------------------------------
MIB = 1024 * 1024
BIN_1M = "bin1m.bin"
BIN_8M = "big8m.bin"
EMPTY = "empty.bin"
TEN = "ten.bin"
VIDEO = "video.mp4"
NESTED = "sub/dir/deep.txt"
NESTED_TEXT = b"deep nested file\n"
UNICODE_NAME = "with space \u00fcn\u00efc\u00f8d\u00e9 \u65e5\u672c.txt"
UNICODE_TEXT = b"unicode file body\n"
HUGE = "huge.bin"
HUGE_SIZE = 5 * 1024 ** 3  # 5 GiB, sparse
HUGE_MARK_END_OFF = HUGE_SIZE - 100
HUGE_MARK_END = b"STREAMHUB-MARKER-NEAR-THE-END-OF-5GiB-FILE"
HUGE_MARK_4G_OFF = 4 * 1024 ** 3 - 8  # straddles the 4 GiB boundary
HUGE_MARK_4G = b"ACROSS-4GiB-BOUNDARY-MARK"
LINK_INSIDE = "link_inside.bin"
LINK_OUTSIDE = "link_outside.txt"
LINK_DIR_OUTSIDE = "linkdir_outside"
LINK_DANGLING = "dangling.mp4"
LINK_DANGLING_OUTSIDE = "dangling_outside.mp4"
SECRET_TEXT = b"TOPSECRET-outside-media-root\n"
OLD_MTIME = 1_600_000_000  # 2020-09-13

CONTENT_TYPE_FILES = {
    # extension -> acceptable media types (essence, lower-case)
    "mp4": {"video/mp4"},
    "mkv": {"video/x-matroska", "video/matroska"},
    "webm": {"video/webm"},
    "mp3": {"audio/mpeg", "audio/mp3"},
    "flac": {"audio/flac", "audio/x-flac"},
    "vtt": {"text/vtt"},
    "srt": {"application/x-subrip", "text/srt", "application/srt", "text/x-srt"},
    "jpg": {"image/jpeg"},
    "png": {"image/png"},
    "pdf": {"application/pdf"},
    "txt": {"text/plain"},
}


def _rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


# --- process management ------------------------------------------------------


class Server:
    """A running streamhub process."""

    def __init__(self, proc, stderr_path, media_root, data_dir, workdir):
        self.proc = proc
        self.stderr_path = stderr_path
        self.media_root = media_root
        self.data_dir = data_dir
        self.workdir = workdir
        self.http = []  # list of (ip, port)
        self.https = []
        self.stdout_lines = []
        self._q = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._q.put(line)
        self._q.put(None)

    def wait_listening(self, n_http, n_https, timeout=STARTUP_TIMEOUT):
        """Read stdout lines until n_http + n_https listening lines were seen."""
        deadline = time.monotonic() + timeout
        while len(self.http) < n_http or len(self.https) < n_https:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"server did not print listening lines in {timeout}s; "
                    f"stdout={self.stdout_lines!r}\nstderr:\n{self.stderr_text()[-4000:]}"
                )
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"server exited (rc={self.proc.wait()}) before listening; "
                    f"stdout={self.stdout_lines!r}\nstderr:\n{self.stderr_text()[-4000:]}"
                )
            self.stdout_lines.append(line)
            m = LISTEN_RE.match(line)
            assert m, f"unexpected stdout line (logs must go to stderr): {line!r}"
            ip = m.group(2).strip("[]")
            (self.http if m.group(1) == "http" else self.https).append((ip, int(m.group(3))))
        return self

    def drain_stdout(self, timeout=5.0):
        """After the process exited: collect remaining stdout lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.stdout_lines.append(line)
        return self.stdout_lines

    @property
    def port(self):
        return self.http[0][1]

    @property
    def tls_port(self):
        return self.https[0][1]

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def tls_url(self, path="/", host="localhost"):
        return f"https://{host}:{self.tls_port}{path}"

    @property
    def cert_path(self):
        return self.data_dir / "tls" / "cert.pem"

    def stderr_text(self):
        """The log so far. The server's log thread writes a line a moment after it is logged
        (logging never waits on the output), so this reads once the file has stopped growing
        for 20 ms (at most 0.5 s: a busy server logs all the time)."""
        path = Path(self.stderr_path)
        try:
            size, deadline = path.stat().st_size, time.monotonic() + 0.5
            while time.monotonic() < deadline:
                time.sleep(0.02)
                now = path.stat().st_size
                if now == size:
                    break
                size = now
            return path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout. Returns the exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHUB_")}
    env.setdefault("RUST_BACKTRACE", "1")
    # The free-disk reserve (default 1 GiB) would make every upload test depend on how full
    # the machine's shared disk is; test_quotas.py sets it where it tests it.
    env["STREAMHUB_QUOTAS_MIN_FREE_BYTES"] = "0"
    if extra:
        env.update(extra)
    return env


def spawn(args, workdir, env=None, cwd=None, name="server"):
    """Start the binary with raw args; stdout piped, stderr to a file."""
    assert BIN.exists(), f"streamhub binary not found at {BIN} (set STREAMHUB_BIN)"
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stderr_path = workdir / f"{name}.{time.monotonic_ns()}.stderr.log"
    errf = open(stderr_path, "wb")
    proc = subprocess.Popen(
        [str(BIN)] + [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=errf,
        env=clean_env(env),
        cwd=str(cwd) if cwd else None,
    )
    errf.close()
    return proc, stderr_path


class ServerFactory:
    """Starts servers and guarantees they are stopped at teardown."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.servers = []

    def start(
        self,
        media_root,
        data_dir=None,
        config=None,
        listen=("127.0.0.1:0",),
        tls_listen=("127.0.0.1:0",),
        extra_args=(),
        env=None,
        wait=True,
        name="server",
    ):
        work = self.tmp_path_factory.mktemp(name)
        if data_dir is None:
            data_dir = work / "data"
        args = ["serve"]
        if config is not None:
            cfg_path = work / "streamhub.toml"
            cfg_path.write_text(config)
            args += ["--config", cfg_path]
        for a in listen:
            args += ["--listen", a]
        for a in tls_listen:
            args += ["--tls-listen", a]
        args += ["--media-root", media_root, "--data-dir", data_dir, "--no-discovery"]
        args += list(extra_args)
        proc, err = spawn(args, work, env=env, name=name)
        srv = Server(proc, err, Path(media_root), Path(data_dir), work)
        self.servers.append(srv)
        if wait:
            try:
                srv.wait_listening(len(listen), len(tls_listen))
            except Exception:
                srv.stop(timeout=3)
                raise
        return srv

    def stop_all(self):
        for s in self.servers:
            try:
                s.stop(timeout=5)
            except Exception:
                pass
            try:
                s.proc.stdout.close()
            except Exception:
                pass


# --- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Session media tree. Returns a dict with paths and expected contents."""
    base = tmp_path_factory.mktemp("mediatree")
    root = base / "media"
    root.mkdir()
    outside = base / "outside"
    outside.mkdir()

    data = {}

    def put(rel, content):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        data[rel] = content
        return p

    put(BIN_1M, _rand_bytes(MIB, 1))
    put(BIN_8M, _rand_bytes(8 * MIB, 8))
    put(EMPTY, b"")
    put(TEN, b"0123456789")
    put(NESTED, NESTED_TEXT)
    put(UNICODE_NAME, UNICODE_TEXT)
    for ext in CONTENT_TYPE_FILES:
        put(f"types/sample.{ext}", _rand_bytes(64, ext))

    # sparse 5 GiB file with known bytes near the end and across 4 GiB
    huge = root / HUGE
    with open(huge, "wb") as f:
        f.truncate(HUGE_SIZE)
        f.seek(HUGE_MARK_4G_OFF)
        f.write(HUGE_MARK_4G)
        f.seek(HUGE_MARK_END_OFF)
        f.write(HUGE_MARK_END)
    assert huge.stat().st_size == HUGE_SIZE

    # symlinks
    secret = outside / "secret.txt"
    secret.write_bytes(SECRET_TEXT)
    (root / LINK_OUTSIDE).symlink_to(secret)
    (root / LINK_INSIDE).symlink_to(BIN_1M)  # relative, stays inside
    (root / LINK_DIR_OUTSIDE).symlink_to(outside, target_is_directory=True)
    (root / LINK_DANGLING).symlink_to("does-not-exist")  # relative: would stay inside
    (root / LINK_DANGLING_OUTSIDE).symlink_to(base / "does-not-exist")
    # a file named "secret" next to the media root for ../ escapes
    (base / "secret").write_bytes(SECRET_TEXT)

    # small test video (10 s, keyframe every second)
    video = root / VIDEO
    r = subprocess.run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=duration=10:size=320x240:rate=25",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-pix_fmt", "yuv420p", str(video),
        ],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr.decode()
    data[VIDEO] = video.read_bytes()

    # Give every regular file an mtime well in the past, so Last-Modified is a
    # strong validator (RFC 9110 §8.8.2.2) even when a test runs right away.
    for i, p in enumerate(sorted(x for x in root.rglob("*") if x.is_file() and not x.is_symlink())):
        os.utime(p, (OLD_MTIME + i, OLD_MTIME + i))

    return {"root": root, "base": base, "outside": outside, "secret": secret, "data": data}


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory):
    f = ServerFactory(tmp_path_factory)
    yield f
    f.stop_all()


@pytest.fixture()
def servers(tmp_path_factory):
    """Function-scoped factory for tests that need their own process."""
    f = ServerFactory(tmp_path_factory)
    yield f
    f.stop_all()


@pytest.fixture(scope="session")
def server(server_factory, media):
    """The shared server: default config, HTTP + HTTPS on loopback."""
    srv = server_factory.start(media["root"], name="shared")
    yield srv


@pytest.fixture(scope="session")
def garage(tmp_path_factory):
    """A real single-node Garage on loopback (bucket `media`, one read/write key), for the
    S3 backend tests (`garage_util.py`). Fails, never skips, when Garage is missing."""
    import garage_util

    g = garage_util.Garage(tmp_path_factory.mktemp("garage")).start()
    yield g
    garage_util.cleanup(g)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the stderr of servers the test used."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for name in ("server", "servers", "server_factory"):
            obj = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            srvs = []
            if isinstance(obj, Server):
                srvs = [obj]
            elif isinstance(obj, ServerFactory):
                srvs = obj.servers[-3:]
            for s in srvs:
                rep.sections.append((f"streamhub stderr ({s.stderr_path})", s.stderr_text()[-6000:]))


# --- HTTP helpers --------------------------------------------------------------


def media_path(rel):
    return "/media/" + quote(rel, safe="/")


class Response:
    def __init__(self, status, headers, body, http_version="1.1", raw_headers=None):
        self.status = status
        self.headers = headers  # dict: lower-case name -> last value
        self.raw_headers = raw_headers or []  # list of (name, value)
        self.body = body
        self.http_version = http_version

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def header_all(self, name):
        return [v for k, v in self.raw_headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body[{len(self.body)}]={self.body[:200]!r}>"


def _parse_head(head_bytes):
    lines = head_bytes.decode("iso-8859-1").split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    version = parts[0].split("/", 1)[1] if "/" in parts[0] else parts[0]
    status = int(parts[1])
    raw = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        raw.append((k.strip(), v.strip()))
    headers = {}
    for k, v in raw:
        headers[k.lower()] = v
    return status, headers, raw, version


def _dechunk(body):
    out = b""
    while True:
        line, _, rest = body.partition(b"\r\n")
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return out
        out += rest[:size]
        body = rest[size + 2:]


def read_response(sock, head_only=False, timeout=10.0):
    """Read exactly one HTTP/1.1 response from a keep-alive socket."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before response head: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status, headers, raw, version = _parse_head(head)
    if head_only or status in (204, 304) or 100 <= status < 200:
        return Response(status, headers, b"", version, raw)
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return Response(status, headers, rest[:n], version, raw)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return Response(status, headers, _dechunk(rest), version, raw)
    while True:  # read to close
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(status, headers, rest, version, raw)


def raw_request(port, data, timeout=10.0, host="127.0.0.1"):
    """Send raw bytes, read until the server closes. Returns Response.

    `data` should normally carry `Connection: close`. The whole reply is read
    until EOF, so a HEAD reply's missing body is verified byte-exactly.
    """
    if isinstance(data, str):
        data = data.encode("latin-1")
    result = {}
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)

        def sender():
            try:
                s.sendall(data)
            except OSError as e:  # server may close early (e.g. 431)
                result["send_error"] = e

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        buf = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except ConnectionResetError:
            pass
        t.join(timeout)
    if b"\r\n\r\n" not in buf:
        raise ConnectionError(f"no complete response head; got {buf!r}")
    head, _, body = buf.partition(b"\r\n\r\n")
    status, headers, raw, version = _parse_head(head)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return Response(status, headers, body, version, raw)


def raw_get(port, target, method="GET", headers=None, timeout=10.0):
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    lines.append("Connection: close")
    req = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return raw_request(port, req, timeout=timeout)


def curl(*args, timeout=60, check=False):
    """Run curl with the given args; returns CompletedProcess (bytes)."""
    cmd = ["curl", "-sS", "--noproxy", "*"] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"{cmd} -> rc={r.returncode} stderr={r.stderr.decode()}"
    return r


_CURL_COUNTER = [0]
_CURL_DIR = []


def _curl_tmpdir():
    if not _CURL_DIR:
        import atexit
        import tempfile

        d = tempfile.mkdtemp(prefix="streamhub-e2e-curl-")
        atexit.register(shutil.rmtree, d, True)
        _CURL_DIR.append(Path(d))
    return _CURL_DIR[0]


def curl_fetch(url, headers=(), method=None, extra=(), timeout=60, tmpdir=None):
    """Fetch a URL with curl. Returns Response (status, headers of the final response, body)."""
    d = Path(tmpdir) if tmpdir else _curl_tmpdir()
    _CURL_COUNTER[0] += 1
    n = _CURL_COUNTER[0]
    hfile = d / f"h{n}"
    bfile = d / f"b{n}"
    args = ["-D", hfile, "-o", bfile]
    if method == "HEAD":
        args.append("-I")
    elif method:
        args += ["-X", method]
    for h in headers:
        args += ["-H", h]
    args += list(extra)
    args.append(url)
    r = curl(*args, timeout=timeout)
    assert r.returncode == 0, f"curl {url} failed rc={r.returncode}: {r.stderr.decode()}"
    head = hfile.read_bytes()
    # keep only the last response block (skip 1xx)
    blocks = [b for b in head.split(b"\r\n\r\n") if b.strip()]
    status, hdrs, raw, version = _parse_head(blocks[-1])
    body = bfile.read_bytes() if bfile.exists() else b""
    try:
        hfile.unlink()
        if bfile.exists():
            bfile.unlink()
    except OSError:
        pass
    return Response(status, hdrs, body, version, raw)


def parse_multipart_byteranges(content_type, body):
    """Parse a multipart/byteranges body. Returns list of (headers_dict, data)."""
    m = re.match(r'\s*multipart/byteranges\s*;\s*boundary="?([^";]+)"?', content_type, re.I)
    assert m, f"not multipart/byteranges: {content_type!r}"
    boundary = m.group(1).encode()
    delim = b"--" + boundary
    assert delim in body, "boundary not found in body"
    # everything after the close delimiter is epilogue
    end = body.find(delim + b"--")
    assert end != -1, "no closing boundary"
    segs = body[:end].split(delim)[1:]
    parts = []
    for seg in segs:
        # each segment: CRLF headers CRLF CRLF data CRLF
        assert seg.startswith(b"\r\n"), f"bad part start {seg[:40]!r}"
        seg = seg[2:]
        head, sep, data = seg.partition(b"\r\n\r\n")
        assert sep, "part without header terminator"
        assert data.endswith(b"\r\n"), "part data not followed by CRLF before boundary"
        data = data[:-2]
        hdrs = {}
        for line in head.decode("latin-1").split("\r\n"):
            if line:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        parts.append((hdrs, data))
    return parts


CR_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def parse_content_range(value):
    m = CR_RE.match(value or "")
    assert m, f"bad Content-Range {value!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def http_date_to_ts(value):
    return parsedate_to_datetime(value).timestamp()


def cert_der_from_pem(pem_path):
    return ssl.PEM_cert_to_DER_cert(Path(pem_path).read_text())


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def tls_connect(port, server_hostname="localhost", timeout=10.0):
    """TLS connection without verification (we compare fingerprints ourselves)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname=server_hostname)
    s.settimeout(timeout)
    return s


def make_cert(dirpath, name, cn="localhost"):
    """Generate a P-256 self-signed cert with SAN localhost + 127.0.0.1."""
    dirpath = Path(dirpath)
    cert = dirpath / f"{name}.cert.pem"
    key = dirpath / f"{name}.key.pem"
    r = subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", f"/CN={cn}",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-days", "2", "-keyout", str(key), "-out", str(cert),
        ],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr.decode()
    return cert, key


def wait_exit(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


API_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")


def api_time(v):
    """An API time field: an RFC 3339 UTC string (docs/CONTRACT.md), as epoch seconds."""
    assert isinstance(v, str) and API_TIME_RE.fullmatch(v), f"not an RFC 3339 UTC time: {v!r}"
    return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()


def rss_kib(pid):
    """The resident memory of process `pid`, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def toml_str(p):
    return json.dumps(str(p))  # JSON string escaping is valid TOML basic string


# --- accounts and access (issue #4) ---------------------------------------------
# Helpers for test_auth.py, test_access_matrix.py, test_shares.py, test_user_cli.py and
# test_security_headers.py. Appended; nothing above depends on them.

import base64 as _b64

SETUP_TOKEN_RE = re.compile(r"setup token: ([A-Za-z0-9_\-.~+/=]+)")
SESSION_COOKIE = "streamhub_session"
AUTH_PW = "correct horse battery"  # default password for test users (>= 8 chars)
SHARE_SIBLING_TEXT = b"SIBLING-SECRET-must-not-leak-through-a-share\n"
LEAK_MARK = b"must-not-leak"  # every file a share of sub/dir/deep.txt must not reveal has it

AUTH_MEDIA_FILES = {
    NESTED: NESTED_TEXT,
    "sub/dir/sibling.txt": SHARE_SIBLING_TEXT,
    "sub/dir/deep.txt.bak": b"BACKUP-of-deep-must-not-leak\n",
    "sub/dir/deep.tx": b"PREFIX-NAME-must-not-leak\n",
    "sub/dir/peek.txt": b"SAME-LENGTH-NAME-must-not-leak\n",
    "sub/secret.txt": b"PARENT-DIR-SECRET-must-not-leak\n",
    "sub/dir/other.txt": b"another shareable file, long enough for ranges 0123456789\n",
    TEN: b"0123456789",
    "evil.html": b"<!doctype html><script>alert(document.cookie)</script>\n",
    "UPPER.HTML": b"<script>alert(1)</script>\n",
    "page.htm": b"<html><script>alert(1)</script></html>\n",
    "page.xhtml": b'<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>\n',
    "x.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n',
    "data.xml": b'<?xml version="1.0"?><a/>\n',
    "app.js": b"alert(1)\n",
    "mod.mjs": b"export default 1\n",
    "clip.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4,
    "pic.png": b"\x89PNG\r\n\x1a\n" + bytes(64),
}


@pytest.fixture(scope="session")
def auth_media(tmp_path_factory):
    """A small media tree for the accounts/access tests (no big files, no ffmpeg)."""
    root = tmp_path_factory.mktemp("authmedia") / "media"
    for rel, content in AUTH_MEDIA_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        os.utime(p, (OLD_MTIME, OLD_MTIME))
    return {"root": root, "data": dict(AUTH_MEDIA_FILES)}


def auth_config(**auth):
    """A config file body with an [auth] section (other sections use the defaults)."""
    lines = ["[auth]"]
    for k, v in auth.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, str):
            v = json.dumps(v)
        lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


def start_auth_server(factory, media_root, name="auth", **auth):
    """HTTP + HTTPS on loopback with the given [auth] keys."""
    return factory.start(media_root, config=auth_config(**auth), name=name)


def wait_setup_token(srv, timeout=10.0):
    """The `setup token: <TOKEN>` line from the server's stderr (with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        m = SETUP_TOKEN_RE.findall(srv.stderr_text())
        if m:
            return m[-1]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no 'setup token: ...' line on stderr within {timeout}s:\n{srv.stderr_text()[-3000:]}"
            )
        time.sleep(0.05)


def _read_to_eof(sock):
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        buf += chunk
    return buf


def http_call(srv, method, path, headers=None, body=None, json_body=None, tls=False, timeout=15.0):
    """One request over a fresh connection (plain HTTP or HTTPS), `Connection: close`.

    `json_body` (any JSON value) is serialised with `Content-Type: application/json`
    unless a Content-Type header is given. `headers` is a dict or a list of pairs.
    """
    hdrs = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if json_body is not None:
        body = json.dumps(json_body).encode()
        if "content-type" not in names:
            hdrs.append(("Content-Type", "application/json"))
    if isinstance(body, str):
        body = body.encode()
    # A full URL the API handed out (share links): the same server, its path and query.
    m = re.match(r"https?://[^/]+(/.*)$", path)
    if m:
        path = m.group(1)
    port = srv.tls_port if tls else srv.port
    host = f"localhost:{port}" if tls else f"127.0.0.1:{port}"
    lines = [f"{method} {path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host}")
    for k, v in hdrs:
        lines.append(f"{k}: {v}")
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b"")
    if not tls:
        return raw_request(port, data, timeout=timeout)
    with tls_connect(port, timeout=timeout) as s:
        s.sendall(data)
        buf = _read_to_eof(s)
    if b"\r\n\r\n" not in buf:
        raise ConnectionError(f"no complete response head over TLS; got {buf!r}")
    head, _, rest = buf.partition(b"\r\n\r\n")
    status, h, raw, version = _parse_head(head)
    if h.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    return Response(status, h, rest, version, raw)


def assert_error(resp, status, code=None, mentions=None):
    """An error response: the status, and a JSON body {"error": code, "message": str}."""
    assert resp.status == status, f"expected {status} {code or ''}, got {resp!r}"
    ct = resp.header("content-type", "")
    assert ct.split(";")[0].strip().lower() == "application/json", f"error without JSON type: {resp!r}"
    body = resp.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    if mentions is not None:
        assert mentions in body["message"], f"message should name {mentions!r}: {body}"
    return body


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def basic_auth(name, password):
    raw = f"{name}:{password}".encode("utf-8")
    return {"Authorization": "Basic " + _b64.b64encode(raw).decode()}


def session_cookie(resp):
    """The streamhub_session value from a response's Set-Cookie headers (None if absent)."""
    for v in resp.header_all("set-cookie"):
        name, _, rest = v.partition("=")
        if name.strip() == SESSION_COOKIE:
            return rest.split(";", 1)[0].strip()
    return None


def set_cookie_attrs(resp):
    """(value, {attr-lower: value-or-True}) of the streamhub_session Set-Cookie header."""
    for v in resp.header_all("set-cookie"):
        parts = [p.strip() for p in v.split(";")]
        name, _, value = parts[0].partition("=")
        if name.strip() != SESSION_COOKIE:
            continue
        attrs = {}
        for p in parts[1:]:
            k, eq, val = p.partition("=")
            attrs[k.strip().lower()] = val.strip() if eq else True
        return value, attrs
    raise AssertionError(f"no {SESSION_COOKIE} Set-Cookie in {resp!r}")


class Cred:
    """Credentials of one principal: the headers to send (None = anonymous)."""

    def __init__(self, kind, name=None, role=None, headers=None, token=None, token_id=None,
                 cookie=None, csrf=None):
        self.kind = kind  # anon | session | token | basic
        self.name = name
        self.role = role
        self.headers = dict(headers or {})
        self.token = token
        self.token_id = token_id
        self.cookie = cookie
        self.csrf = csrf

    def __repr__(self):
        return f"<Cred {self.kind} {self.name} {self.role}>"


ANON = Cred("anon")


def login(srv, name, password, tls=False, headers=None):
    """POST /api/login; returns (response, Cred or None)."""
    r = http_call(srv, "POST", "/api/login", headers=headers,
                  json_body={"name": name, "password": password}, tls=tls)
    if r.status != 200:
        return r, None
    body = r.json()
    cookie = session_cookie(r)
    assert cookie, f"login without {SESSION_COOKIE} cookie: {r!r}"
    cred = Cred("session", name=body.get("name"), role=body.get("role"), cookie=cookie,
                csrf=body.get("csrf_token"),
                headers={"Cookie": f"{SESSION_COOKIE}={cookie}",
                         "X-CSRF-Token": body.get("csrf_token") or ""})
    return r, cred


def must_login(srv, name, password, tls=False):
    r, cred = login(srv, name, password, tls=tls)
    assert r.status == 200 and cred, f"login {name!r} failed: {r!r}"
    return cred


def new_token(srv, cred, label="e2e", expires_in=None):
    """POST /api/tokens as `cred`; returns a token Cred (with token_id)."""
    body = {"label": label}
    if expires_in is not None:
        body["expires_in"] = expires_in
    r = http_call(srv, "POST", "/api/tokens", headers=cred.headers, json_body=body)
    assert r.status == 201, f"token create as {cred!r} failed: {r!r}"
    j = r.json()
    return Cred("token", name=cred.name, role=cred.role, headers=bearer(j["token"]),
                token=j["token"], token_id=j["id"])


def wait_for(pred, timeout=5.0, what="condition", every=0.05):
    """Poll `pred` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def run_cli(args, stdin=None, timeout=60, cwd=None, env=None):
    """Run the binary (not a server) with text stdin; returns CompletedProcess (text).

    Runs in its own session (no controlling terminal), cwd defaults to a temp dir.
    """
    return subprocess.run(
        [str(BIN)] + [str(a) for a in args],
        input=stdin if stdin is not None else None,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout, env=clean_env(env),
        cwd=str(cwd) if cwd else str(_curl_tmpdir()), start_new_session=True,
    )


def user_cli(data_dir, *args, password=None, timeout=60, init=False):
    """`streamhub user ARGS... --data-dir DIR [--password-stdin] [--init]`; password to stdin.

    `init` creates the database if the service has not started there yet."""
    argv = ["user"] + [str(a) for a in args] + ["--data-dir", str(data_dir)]
    if init:
        argv.append("--init")
    if password is not None:
        argv.append("--password-stdin")
        return run_cli(argv, stdin=password + "\n", timeout=timeout)
    return run_cli(argv, timeout=timeout)


def cli_add_user(data_dir, name, password=AUTH_PW, admin=False, init=False):
    args = ["add", name] + (["--admin"] if admin else [])
    r = user_cli(data_dir, *args, password=password, init=init)
    assert r.returncode == 0, f"user add {name}: rc={r.returncode} out={r.stdout!r} err={r.stderr!r}"
    return r


def do_setup(srv, name="root", password=AUTH_PW):
    """Create the first admin through POST /api/setup with the logged setup token."""
    tok = wait_setup_token(srv)
    r = http_call(srv, "POST", "/api/setup",
                  json_body={"token": tok, "name": name, "password": password})
    assert r.status == 201, f"setup failed: {r!r}"
    return r


def new_share(srv, cred, path, expires_in=None):
    body = {"path": path}
    if expires_in is not None:
        body["expires_in"] = expires_in
    r = http_call(srv, "POST", "/api/shares", headers=cred.headers, json_body=body)
    assert r.status == 201, f"share create {path!r} as {cred!r} failed: {r!r}"
    return r.json()


class AuthEnv:
    """A server with an admin (setup), two members (CLI) and their credentials."""

    def __init__(self, srv, second_member=True):
        self.srv = srv
        do_setup(srv, "root", AUTH_PW)
        cli_add_user(srv.data_dir, "mia")
        self.admin_s = must_login(srv, "root", AUTH_PW)
        self.member_s = must_login(srv, "mia", AUTH_PW)
        self.admin = new_token(srv, self.admin_s, "admin-e2e")
        self.member = new_token(srv, self.member_s, "mia-e2e")
        self.member2_s = self.member2 = None
        if second_member:  # through the users API (admin), the CLI path has its own tests
            r = http_call(srv, "POST", "/api/users", headers=self.admin.headers,
                          json_body={"name": "max", "password": AUTH_PW, "role": "member"})
            assert r.status == 201, f"POST /api/users failed: {r!r}"
            self.member2_s = must_login(srv, "max", AUTH_PW)
            self.member2 = new_token(srv, self.member2_s, "max-e2e")


# CSP helpers
def csp_directives(value):
    """{directive-name: [tokens]} of a Content-Security-Policy value."""
    out = {}
    for d in (value or "").split(";"):
        toks = d.strip().split()
        if toks:
            out.setdefault(toks[0].lower(), toks[1:])
    return out


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory):
    """A server factory whose servers stop at the end of the test module."""
    f = ServerFactory(tmp_path_factory)
    yield f
    f.stop_all()


import selectors as _selectors  # noqa: E402 - for wait_all_closed only

def wait_all_closed(socks, limit):
    """Wait until the server closed every socket; returns close times (s)."""
    sel = _selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, _selectors.EVENT_READ)
    t0 = time.monotonic()
    closed_at = {}
    try:
        while len(closed_at) < len(socks) and time.monotonic() - t0 < limit:
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    while True:
                        data = s.recv(65536)
                        if not data:
                            break
                except BlockingIOError:
                    continue  # got some bytes (e.g. a 408 or alert); wait for EOF
                except ConnectionResetError:
                    pass
                closed_at[s] = time.monotonic() - t0
                sel.unregister(s)
    finally:
        sel.close()
    return closed_at


def udp_ports(pid):
    """Local UDP ports of the sockets process `pid` holds (its namespace's tables, matched by
    socket inode to the process's descriptors)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports
