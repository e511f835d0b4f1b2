"""Resumable uploads, tus 1.0.0 (issue #5): `/api/tus/` with the real tus client `tuspy`
(PyPI) and raw HTTP for the protocol's error rules.

Core, creation, creation-with-upload, termination, expiration and checksum (sha1, sha256);
state in the data dir, data in `<media>/.streamhub-staging/<node-id>/resumable/` until the last byte is
in, then committed atomically. Nothing partial is ever visible (listing, media root outside
staging, GET). Restarts (SIGTERM and kill -9), expiry, traversal in metadata, an HTML file
name, disk full, permission denied and racing uploads. Everything talks to 127.0.0.1 only.
A PUT killed alone is the kill -9 test of test_upload_faults.py; here a PUT dies together with
a tus PATCH, and the clean-up at start must drop the PUT's partial file but keep the tus data.
"""

import base64
import hashlib
import os
import socket
import threading
import time
import unicodedata
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlparse

import pytest
import requests
from tusclient import client as tus_client

from conftest import (
    AUTH_PW,
    assert_error,
    cli_add_user,
    csp_directives,
    http_call,
    must_login,
    new_token,
    wait_for,
)
from conftest import sha256 as sha
# helpers, and the disk-full (2 MiB tmpfs) and run-as-nobody servers with their `creds`
from test_upload_faults import fullfs, unprivileged  # noqa: F401  (pytest fixtures)
from test_upload_faults import RawPut, names_in, rand
from test_uploads import snapshot

STAGING = ".streamhub-staging"
RESUMABLE = f"{STAGING}/resumable"
MIB = 1024 * 1024
MAX = 64 * MIB  # uploads.max_bytes of the module server
TUS = {"Tus-Resumable": "1.0.0"}
OCTET = "application/offset+octet-stream"
EXTENSIONS = {"creation", "creation-with-upload", "termination", "expiration", "checksum"}
XSS = "<img src=x onerror=alert(1)>.mp4"


# --- helpers (local to this module) --------------------------------------------------------


def b64(b):
    return base64.b64encode(b if isinstance(b, bytes) else b.encode("utf-8")).decode()


def meta(**kv):
    """The Upload-Metadata value: `key base64(value)` pairs, comma separated."""
    return ",".join(f"{k} {b64(v)}" for k, v in kv.items())


def digest(alg, data):
    return f"{alg} {b64(hashlib.new(alg, data).digest())}"


def hdrs(cred, **more):
    """Tus-Resumable, the credentials (None: anonymous) and `more` headers."""
    return {**TUS, **(cred.headers if cred else {}), **more}


def post(srv, cred, length, metadata=None, body=None, headers=None):
    h = hdrs(cred)
    if length is not None:
        h["Upload-Length"] = str(length)
    if metadata is not None:
        h["Upload-Metadata"] = metadata
    if body is not None:
        h["Content-Type"] = OCTET
    h.update(headers or {})
    return http_call(srv, "POST", "/api/tus/", headers=h, body=body, timeout=60)


def create(srv, cred, length, filename, folder=None, body=None, **more):
    kv = {"filename": filename, **({"folder": folder} if folder is not None else {}), **more}
    r = post(srv, cred, length, meta(**kv), body=body)
    assert r.status == 201, f"tus create {kv!r}: {r!r}"
    loc = urlparse(r.header("location") or "").path
    assert loc.startswith("/api/tus/") and len(loc) > len("/api/tus/"), r
    return loc


def head(srv, cred, loc):
    return http_call(srv, "HEAD", loc, headers=hdrs(cred))


def offset_of(srv, cred, loc):
    r = head(srv, cred, loc)
    assert r.status == 200, f"HEAD {loc}: {r!r}"
    return int(r.header("upload-offset"))


def patch(srv, cred, loc, offset, body, checksum=None, headers=None):
    h = hdrs(cred, **{"Content-Type": OCTET, "Upload-Offset": str(offset)})
    if checksum:
        h["Upload-Checksum"] = checksum
    h.update(headers or {})
    return http_call(srv, "PATCH", loc, headers=h, body=body, timeout=60)


def patched(srv, cred, loc, offset, body):
    r = patch(srv, cred, loc, offset, body)
    assert r.status == 204 and int(r.header("upload-offset")) == offset + len(body), r
    return r


def delete(srv, cred, loc):
    return http_call(srv, "DELETE", loc, headers=hdrs(cred))


def fetch(srv, rel):
    """GET /media/<rel> (large bodies: requests, not the byte-by-byte raw helper)."""
    return requests.get(srv.url("/media/" + quote(rel, safe="/")), timeout=60)


def outside_staging(root):
    """Everything under the media root but streamhub's own names (the staging folder, the
    root's identity marker): {relpath: size or 'dir'}."""
    return {k: v for k, v in snapshot(root).items()
            if not Path(k).parts[0].startswith(".streamhub")}


def resumable(root):
    """{name: size} of the files in <root>/.streamhub-staging/<node-id>/resumable/ (one
    node per media root here, so the node folder is whichever there is)."""
    st = Path(root) / STAGING
    return {p.name: p.stat().st_size for p in st.glob("*/resumable/*")}


def other_staging(root):
    """Files in the staging folder that are not resumable uploads (e.g. PUT .part files)."""
    st = Path(root) / STAGING
    return sorted(str(p.relative_to(st)) for p in st.rglob("*")
                  if p.is_file() and p.parent.name != "resumable")


def assert_invisible(srv, cred, folder, name):
    """Nothing of an unfinished upload is visible through the API."""
    assert name not in names_in(srv, cred, folder), f"{folder}/{name} listed before completion"
    g = http_call(srv, "GET", "/media/" + quote(f"{folder}/{name}".lstrip("/"), safe="/"))
    assert g.status == 404, f"GET of an unfinished upload: {g!r}"


def assert_visible(srv, cred, folder, name, body):
    g = fetch(srv, f"{folder}/{name}")
    assert g.status_code == 200, (g.status_code, g.text[:300])
    assert sha(g.content) == sha(body), f"{folder}/{name}: served bytes differ from the source"
    ents = names_in(srv, cred, folder)
    assert name in ents and ents[name]["size"] == len(body), ents


def assert_body_refused_at_creation(srv, cred, r, status):
    """creation-with-upload whose data is refused: the error, or 201 saying `Upload-Offset: 0`."""
    if r.status != 201:
        return assert_error(r, status)
    assert r.header("upload-offset") == "0", f"creation-with-upload without an offset: {r!r}"
    assert offset_of(srv, cred, urlparse(r.header("location")).path) == 0


def in_parallel(fn, n=2, timeout=60):
    """fn(0) … fn(n-1) at the same time in threads: their results (or exceptions)."""
    out = [None] * n

    def run(k):
        try:
            out[k] = fn(k)
        except Exception as e:  # reported by the caller's assertion
            out[k] = e

    ts = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    return out


def tuspy(srv, cred):
    return tus_client.TusClient(srv.url("/api/tus/"), headers=dict(cred.headers))


class Creds:
    def __init__(self, srv, add_users=True):
        if add_users:
            cli_add_user(srv.data_dir, "boss", admin=True)
            cli_add_user(srv.data_dir, "mia")
            cli_add_user(srv.data_dir, "max")
        self.admin = new_token(srv, must_login(srv, "boss", AUTH_PW), "boss-tus")
        self.member = new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-tus")
        self.other = new_token(srv, must_login(srv, "max", AUTH_PW), "max-tus")


def start(factory, root, data, name, **env):
    srv = factory.start(root, data_dir=data, tls_listen=(), env=env, name=name)
    srv.env = env
    return srv


def fresh(factory, tmp_path_factory, name, **env):
    """A server of its own on new folders (for restarts): (server, creds, media root)."""
    base = tmp_path_factory.mktemp(name)
    (base / "media").mkdir()
    srv = start(factory, base / "media", base / "data", name, **env)
    return srv, Creds(srv), srv.media_root


def restart(factory, srv, name):
    """SIGTERM (exit code 0), then a new process on the same folders (and another port)."""
    assert srv.stop() == 0, f"SIGTERM exit code {srv.proc.returncode}"
    return start(factory, srv.media_root, srv.data_dir, name, **srv.env)


class RawReq(RawPut):
    """test_upload_faults.RawPut with any method: a body we send piece by piece."""

    def __init__(self, srv, method, target, headers, length):
        self.chunked, self.sent = False, 0
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {length}", "Connection: close"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))

    def pump(self, data, piece=256 * 1024):
        """Send `data` unless the server answers first (a refusal); then stop quietly."""
        try:
            for i in range(0, len(data), piece):
                if self.answered():
                    return
                self.send(data[i:i + piece])
        except OSError:  # the server stopped reading and closed: its answer is still queued
            pass


def raw_patch(srv, cred, loc, offset, length, checksum=None):
    h = hdrs(cred, **{"Content-Type": OCTET, "Upload-Offset": str(offset)})
    if checksum:
        h["Upload-Checksum"] = checksum
    return RawReq(srv, "PATCH", loc, h, length)


# --- the module server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tus(module_servers, tmp_path_factory):
    srv, creds, root = fresh(module_servers, tmp_path_factory, "tus",
                             STREAMHUB_UPLOADS_MAX_BYTES=str(MAX))
    srv.creds, srv.base = creds, root.parent
    (srv.base / "sentinel.txt").write_bytes(b"next to the media root\n")
    (root / "existing.txt").write_bytes(b"was here before\n")
    return srv


def test_options_advertises_the_protocol_anonymously(tus):
    r = http_call(tus, "OPTIONS", "/api/tus/")
    assert r.status == 204, r
    assert r.header("tus-resumable") == "1.0.0", r
    assert "1.0.0" in [v.strip() for v in r.header("tus-version", "").split(",")], r
    ext = {v.strip() for v in r.header("tus-extension", "").split(",")}
    assert EXTENSIONS <= ext, f"Tus-Extension lacks {EXTENSIONS - ext}: {r!r}"
    algs = {v.strip() for v in r.header("tus-checksum-algorithm", "").split(",")}
    assert {"sha1", "sha256"} <= algs, r
    assert r.header("tus-max-size") == str(MAX), r


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "upload-checksum"])
def test_tuspy_uploads_20_mib_into_a_folder(tus, tmp_path, checksum):
    c, name = tus.creds, f"clip-{checksum}.bin"
    body = rand(20 * MIB + 12345, f"tuspy-{checksum}")
    src = tmp_path / "src.bin"
    src.write_bytes(body)
    before = resumable(tus.media_root)
    up = tuspy(tus, c.member).uploader(str(src), chunk_size=3 * MIB, upload_checksum=checksum,
                                       metadata={"filename": name, "folder": "videos/2026"})
    up.upload()
    assert up.offset == len(body)
    assert (tus.media_root / "videos/2026" / name).read_bytes() == body
    assert_visible(tus, c.member, "videos/2026", name, body)
    h = head(tus, c.member, urlparse(up.url).path)
    assert h.status == 200 and h.header("upload-offset") == str(len(body)), h
    assert resumable(tus.media_root).keys() == before.keys(), "staging file left after commit"


def test_raw_protocol_create_head_patch_commit(tus):
    c, root = tus.creds, tus.media_root
    body = rand(3 * MIB + 7, "raw")
    md = meta(filename="raw.bin", folder="raw")
    files = outside_staging(root)
    t0 = time.time()
    r = post(tus, c.member, len(body), md)
    assert r.status == 201 and r.header("tus-resumable") == "1.0.0", r
    loc = urlparse(r.header("location", "")).path
    assert loc.startswith("/api/tus/"), r
    exp = parsedate_to_datetime(r.header("upload-expires")).timestamp()
    assert t0 < exp <= t0 + 86400 + 60, f"Upload-Expires {r.header('upload-expires')!r}"
    h = head(tus, c.member, loc)
    assert h.status == 200 and h.body == b"", h
    assert (h.header("upload-offset"), h.header("upload-length")) == ("0", str(len(body))), h
    assert h.header("upload-metadata") == md, h
    assert h.header("tus-resumable") == "1.0.0", h
    assert "no-store" in h.header("cache-control", ""), h
    p = patch(tus, c.member, loc, 0, body[:MIB])
    assert p.status == 204 and p.header("upload-offset") == str(MIB), p
    assert p.header("tus-resumable") == "1.0.0", p
    assert parsedate_to_datetime(p.header("upload-expires")).timestamp() > time.time(), p
    assert outside_staging(root) == files, "an unfinished upload shows under the media root"
    assert_invisible(tus, c.member, "raw", "raw.bin")
    assert offset_of(tus, c.member, loc) == MIB
    patched(tus, c.member, loc, MIB, body[MIB:])
    assert (root / "raw/raw.bin").read_bytes() == body
    assert_visible(tus, c.member, "raw", "raw.bin", body)
    assert offset_of(tus, c.member, loc) == len(body)


def test_creation_with_upload_and_empty_file(tus):
    c, root = tus.creds, tus.media_root
    body = rand(300_000, "cwu")
    r = post(tus, c.member, len(body), meta(filename="part.bin", folder="cwu"), body=body[:100_000])
    assert r.status == 201 and r.header("upload-offset") == "100000", r
    loc = urlparse(r.header("location")).path
    assert_invisible(tus, c.member, "cwu", "part.bin")
    patched(tus, c.member, loc, 100_000, body[100_000:])
    assert (root / "cwu/part.bin").read_bytes() == body
    # the whole file in the creation request
    r = post(tus, c.member, len(body), meta(filename="whole.bin", folder="cwu"), body=body)
    assert r.status == 201 and r.header("upload-offset") == str(len(body)), r
    assert_visible(tus, c.member, "cwu", "whole.bin", body)
    # data past Upload-Length in the creation request: 413, or made but the data refused
    r = post(tus, c.member, 5, meta(filename="over.bin", folder="cwu"), body=b"0123456789")
    assert_body_refused_at_creation(tus, c.member, r, 413)
    assert_invisible(tus, c.member, "cwu", "over.bin")
    # Upload-Length: 0 completes at creation
    create(tus, c.member, 0, "empty.bin", "cwu")
    assert (root / "cwu/empty.bin").read_bytes() == b""
    assert_visible(tus, c.member, "cwu", "empty.bin", b"")


def test_existing_name_is_409_and_overwrite_needs_the_owner_or_an_admin(tus):
    c, disk = tus.creds, tus.media_root / "existing.txt"
    for cred in (c.member, c.admin):
        assert_error(post(tus, cred, 5, meta(filename="existing.txt")), 409)
    new = b"replaced by an admin\n"
    # existing.txt was placed by hand: no member owns it (docs/SECURITY.md): 403 at creation
    # or at the last byte
    r = post(tus, c.member, len(new), meta(filename="existing.txt", overwrite="true"))
    if r.status == 201:
        r = patch(tus, c.member, urlparse(r.header("location")).path, 0, new)
    assert_error(r, 403)
    assert disk.read_bytes() == b"was here before\n"
    loc = create(tus, c.admin, len(new), "existing.txt", overwrite="true")
    patched(tus, c.admin, loc, 0, new)
    assert disk.read_bytes() == new
    # the name is taken (by a PUT) between creation and the last byte: 409, nothing replaced
    loc = create(tus, c.member, 5, "taken.bin", "taken")
    patched(tus, c.member, loc, 0, b"01")
    r = http_call(tus, "PUT", "/media/taken/taken.bin", headers=c.other.headers, body=b"put\n")
    assert r.status == 201, r
    assert_error(patch(tus, c.member, loc, 2, b"234"), 409)
    assert (tus.media_root / "taken/taken.bin").read_bytes() == b"put\n"
    # what a member uploaded they may replace, another member may not
    loc = create(tus, c.member, 4, "own.bin", "mine")
    patched(tus, c.member, loc, 0, b"v1\n\n")
    assert_error(post(tus, c.other, 4, meta(filename="own.bin", folder="mine", overwrite="true")), 403)
    loc = create(tus, c.member, 4, "own.bin", "mine", overwrite="true")
    patched(tus, c.member, loc, 0, b"v2\n\n")
    assert (tus.media_root / "mine/own.bin").read_bytes() == b"v2\n\n"


@pytest.mark.parametrize("alg", ["sha256", "sha1"])
def test_checksum_mismatch_is_460_and_offset_stays(tus, alg):
    c = tus.creds
    body = rand(2 * MIB, f"ck-{alg}")
    loc = create(tus, c.member, len(body), f"ck-{alg}.bin", "ck")
    half = body[:MIB]
    wrong = digest(alg, half[:-1] + bytes([half[-1] ^ 1]))
    assert_error(patch(tus, c.member, loc, 0, half, checksum=wrong), 460)
    assert offset_of(tus, c.member, loc) == 0
    assert_error(patch(tus, c.member, loc, 0, half, checksum=f"md5 {b64(b'x' * 16)}"), 400)
    assert offset_of(tus, c.member, loc) == 0
    r = patch(tus, c.member, loc, 0, half, checksum=digest(alg, half))
    assert r.status == 204 and r.header("upload-offset") == str(MIB), r
    assert_error(patch(tus, c.member, loc, MIB, body[MIB:], checksum=digest(alg, b"other")), 460)
    assert offset_of(tus, c.member, loc) == MIB
    assert_invisible(tus, c.member, "ck", f"ck-{alg}.bin")
    r = patch(tus, c.member, loc, MIB, body[MIB:], checksum=digest(alg, body[MIB:]))
    assert r.status == 204, r
    assert (tus.media_root / f"ck/ck-{alg}.bin").read_bytes() == body
    # creation-with-upload with a wrong checksum
    r = post(tus, c.member, 10, meta(filename=f"ck-post-{alg}.bin", folder="ck"),
             body=b"0123456789", headers={"Upload-Checksum": digest(alg, b"other")})
    assert_body_refused_at_creation(tus, c.member, r, 460)


@pytest.mark.parametrize("method", ["POST", "HEAD", "PATCH", "DELETE"])
@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_tus_resumable_other_than_1_0_0_is_412(tus, method, version):
    c = tus.creds
    loc = create(tus, c.member, 10, f"v-{method}-{version}.bin", "v")
    h = {**c.member.headers, "Upload-Length": "10", "Upload-Metadata": meta(filename="v.bin"),
         "Content-Type": OCTET, "Upload-Offset": "0"}
    if version:
        h["Tus-Resumable"] = version
    target = "/api/tus/" if method == "POST" else loc
    r = http_call(tus, method, target, headers=h, body=b"0123456789" if method == "PATCH" else None)
    assert r.status == 412, r
    assert "1.0.0" in r.header("tus-version", ""), r
    if method != "HEAD":
        assert_error(r, 412)
    assert offset_of(tus, c.member, loc) == 0


CREATION_ERRORS = [
    ("no Upload-Length", None, meta(filename="a.bin"), {}, 400),
    ("Upload-Length abc", "abc", meta(filename="a.bin"), {}, 400),
    ("Upload-Length -1", "-1", meta(filename="a.bin"), {}, 400),
    ("Upload-Length +10", "+10", meta(filename="a.bin"), {}, 400),
    ("Upload-Defer-Length", None, meta(filename="a.bin"), {"Upload-Defer-Length": "1"}, 400),
    ("no filename", 10, meta(folder="x"), {}, 400),
    ("no Upload-Metadata", 10, None, {}, 400),
    ("bad base64", 10, "filename !!!not-base64!!!", {}, 400),
    ("over max", MAX + 1, meta(filename="big.bin"), {}, 413),
]


@pytest.mark.parametrize("what,length,md,extra,status", CREATION_ERRORS,
                         ids=[x[0] for x in CREATION_ERRORS])
def test_creation_errors(tus, what, length, md, extra, status):
    before, files = resumable(tus.media_root), outside_staging(tus.media_root)
    assert_error(post(tus, tus.creds.member, length, md, headers=extra), status)
    assert resumable(tus.media_root) == before
    assert outside_staging(tus.media_root) == files


def test_patch_errors_415_409_413_leave_the_offset(tus):
    c = tus.creds
    loc = create(tus, c.member, 10, "small.bin", "perr")
    assert_error(patch(tus, c.member, loc, 0, b"01234",
                       headers={"Content-Type": "application/octet-stream"}), 415)
    assert_error(patch(tus, c.member, loc, 0, b"01234", headers={"Content-Type": ""}), 415)
    assert_error(patch(tus, c.member, loc, 3, b"01234"), 409)
    assert offset_of(tus, c.member, loc) == 0
    assert_error(patch(tus, c.member, loc, 0, b"0123456789ABCDEF"), 413)
    assert offset_of(tus, c.member, loc) == 0
    patched(tus, c.member, loc, 0, b"01234")
    assert_error(patch(tus, c.member, loc, 0, b"01234"), 409)
    assert_error(patch(tus, c.member, loc, 5, b"56789X"), 413)
    assert offset_of(tus, c.member, loc) == 5
    patched(tus, c.member, loc, 5, b"56789")
    assert (tus.media_root / "perr/small.bin").read_bytes() == b"0123456789"


def test_unknown_foreign_and_anonymous(tus):
    c = tus.creds
    loc = create(tus, c.member, 10, "mine.bin", "own")
    patched(tus, c.member, loc, 0, b"01234")
    for target in ("/api/tus/doesnotexist0123456789", loc):
        cred = c.member if target != loc else c.other  # somebody else's id looks unknown
        h = head(tus, cred, target)
        assert h.status == 404 and h.body == b"", h
        assert_error(patch(tus, cred, target, 5, b"XXXXX"), 404)
        assert_error(delete(tus, cred, target), 404)
    assert_error(post(tus, None, 10, meta(filename="anon.bin")), 401)
    assert head(tus, None, loc).status == 401
    assert_error(patch(tus, None, loc, 5, b"XXXXX"), 401)
    assert_error(delete(tus, None, loc), 401)
    assert offset_of(tus, c.member, loc) == 5
    patched(tus, c.member, loc, 5, b"56789")
    assert (tus.media_root / "own/mine.bin").read_bytes() == b"0123456789"


def test_cookie_session_writes_need_the_csrf_token(tus):
    s = must_login(tus, "mia", AUTH_PW)
    bare = SimpleNamespace(headers={"Cookie": s.headers["Cookie"]})  # no X-CSRF-Token
    assert_error(post(tus, bare, 4, meta(filename="csrf.bin", folder="csrf")), 403, "csrf")
    loc = create(tus, s, 4, "csrf.bin", "csrf")
    assert_error(patch(tus, bare, loc, 0, b"evil"), 403, "csrf")
    assert_error(delete(tus, bare, loc), 403, "csrf")
    assert offset_of(tus, bare, loc) == 0  # reading needs no token
    patched(tus, s, loc, 0, b"good")
    assert (tus.media_root / "csrf/csrf.bin").read_bytes() == b"good"


def test_termination_removes_the_upload(tus):
    c, root = tus.creds, tus.media_root
    before = resumable(root)
    loc = create(tus, c.member, 2 * MIB, "term.bin", "term")
    patched(tus, c.member, loc, 0, rand(MIB, "term"))
    assert len(set(resumable(root)) - set(before)) == 1, (before, resumable(root))
    r = delete(tus, c.member, loc)
    assert r.status == 204, r
    assert head(tus, c.member, loc).status == 404
    assert_error(patch(tus, c.member, loc, MIB, rand(MIB, "t2")), 404)
    assert resumable(root) == before, "DELETE left the staging data"
    assert not (root / "term").exists()


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "upload-checksum"])
def test_broken_patch_keeps_what_arrived_unless_checksummed(tus, checksum):
    c = tus.creds
    body = rand(8 * MIB, f"broken-{checksum}")
    name = f"broken-{checksum}.bin"
    loc = create(tus, c.member, len(body), name, "broken")
    before = resumable(tus.media_root)
    req = raw_patch(tus, c.member, loc, 0, len(body),
                    checksum=digest("sha256", body) if checksum else None)
    try:
        for i in range(3):
            req.send(body[i * MIB:(i + 1) * MIB])
        time.sleep(0.5)
    finally:
        req.close()  # gone mid-body
    if checksum:  # unverifiable data is dropped
        time.sleep(1.0)
        assert offset_of(tus, c.member, loc) == 0
    else:
        wait_for(lambda: offset_of(tus, c.member, loc) > 0, 10,
                 "HEAD to show the bytes of the broken PATCH")
    off = offset_of(tus, c.member, loc)
    assert off <= 3 * MIB and resumable(tus.media_root).keys() == before.keys()
    assert_invisible(tus, c.member, "broken", name)
    patched(tus, c.member, loc, off, body[off:])
    assert_visible(tus, c.member, "broken", name, body)


TRAVERSAL = [{"filename": n} for n in ("../evil.bin", "..", ".", "", "a/b.bin", "\\..\\evil.bin",
                                      "nul\x00evil.bin", "ctl\x01.bin", STAGING,
                                      "x" * 300 + ".bin", "CON", "trailing.")]
TRAVERSAL += [{"filename": "ok.bin", "folder": d}
              for d in ("../../etc", "//etc", "a/../../up", RESUMABLE, "..")]


@pytest.mark.parametrize("kv", TRAVERSAL, ids=[repr(x)[:60] for x in TRAVERSAL])
def test_traversal_and_bad_names_in_metadata_are_400(tus, kv):
    root, base = tus.media_root, tus.base
    before, files, beside = resumable(root), outside_staging(root), sorted(os.listdir(base))
    assert_error(post(tus, tus.creds.member, 8, meta(**kv)), 400)
    assert resumable(root) == before
    assert outside_staging(root) == files
    assert sorted(os.listdir(base)) == beside
    assert not Path("/etc/ok.bin").exists() and not (base.parent / "etc").exists()


def test_percent_encoded_dots_are_a_literal_name(tus):
    """Metadata is base64, not URL-encoded: `%2e%2e` is refused or stays a literal name."""
    root, base, c = tus.media_root, tus.base, tus.creds
    beside = sorted(os.listdir(base))
    r = post(tus, c.member, 4, meta(filename="%2e%2e.bin", folder="%2e%2e"))
    if r.status != 201:
        assert_error(r, 400)
    else:
        patched(tus, c.member, urlparse(r.header("location")).path, 0, b"lit!")
        assert (root / "%2e%2e" / "%2e%2e.bin").read_bytes() == b"lit!"
    assert sorted(os.listdir(base)) == beside


def test_html_file_name_is_listed_verbatim_but_inert(tus, tmp_path):
    c = tus.creds
    data = b"\x00\x00\x00\x18ftypmp42" + rand(5000, "xss")
    src = tmp_path / "x.mp4"
    src.write_bytes(data)
    up = tuspy(tus, c.member).uploader(str(src), chunk_size=2000,
                                       metadata={"filename": XSS, "folder": "xss"})
    up.upload()
    assert os.listdir(tus.media_root / "xss") == [XSS]
    h = head(tus, c.member, urlparse(up.url).path)
    assert h.header("upload-metadata") == meta(filename=XSS, folder="xss"), h
    lst = http_call(tus, "GET", "/api/library?path=xss", headers=c.member.headers)
    assert lst.header("content-type", "").split(";")[0].strip() == "application/json", lst
    assert lst.header("x-content-type-options", "").lower() == "nosniff", lst
    assert [e["name"] for e in lst.json()["entries"]] == [XSS]
    g = http_call(tus, "GET", "/media/xss/" + quote(XSS), headers=c.member.headers)
    assert g.status == 200 and g.body == data, g
    assert not g.header("content-type", "").startswith("text/html"), g
    csp = csp_directives(g.header("content-security-policy"))
    # No script may run in it; a video is not sandboxed (its player must load the bytes).
    assert csp.get("default-src") == ["'none'"] and "script-src" not in csp, g
    if not g.header("content-type", "").startswith(("video/", "audio/", "image/")):
        assert "sandbox" in csp, g
    assert "<" not in (g.header("content-disposition") or ""), g


def test_concurrent_uploads_to_one_name(tus):
    c, root = tus.creds, tus.media_root
    for i in range(2):
        name, half = f"r{i}.bin", 2 * MIB
        before = resumable(root)
        bodies = [rand(4 * MIB, f"race-a-{i}"), rand(4 * MIB + 17, f"race-b-{i}")]
        creds = [c.member, c.admin]
        locs = [create(tus, creds[0], len(bodies[0]), name, "race")]
        r = post(tus, creds[1], len(bodies[1]), meta(filename=name, folder="race"))
        if r.status != 201:  # the name is reserved at creation: also one winner
            assert_error(r, 409)
            patched(tus, creds[0], locs[0], 0, bodies[0])
            assert (root / "race" / name).read_bytes() == bodies[0]
            continue
        locs.append(urlparse(r.header("location")).path)
        for k in range(2):  # both are half-way before either completes
            patched(tus, creds[k], locs[k], 0, bodies[k][:half])
        results = in_parallel(lambda k: patch(tus, creds[k], locs[k], half, bodies[k][half:]))
        statuses = [getattr(x, "status", x) for x in results]
        assert sorted(statuses) == [204, 409], f"round {i}: {results!r}"
        win = statuses.index(204)
        assert_error(results[1 - win], 409)
        assert results[win].header("upload-offset") == str(len(bodies[win]))
        assert (root / "race" / name).read_bytes() == bodies[win], f"round {i}: not the winner's"
        assert delete(tus, creds[1 - win], locs[1 - win]).status in (204, 404)
        assert resumable(root).keys() == before.keys(), "staging data left after the race"


def test_two_patches_at_one_offset_at_once(tus):
    """Per upload one PATCH at a time: the other is refused, the file is exactly one body."""
    c, root = tus.creds, tus.media_root
    bodies = [rand(4 * MIB, "same-a"), rand(4 * MIB, "same-b")]
    loc = create(tus, c.member, 4 * MIB, "same.bin", "same")
    reqs = [raw_patch(tus, c.member, loc, 0, 4 * MIB) for _ in bodies]
    try:
        for k in range(2):  # both are in flight before either completes (or one is refused)
            reqs[k].pump(bodies[k][:MIB])
        time.sleep(0.3)
        results = in_parallel(lambda k: reqs[k].pump(bodies[k][MIB:]) or reqs[k].response())
    finally:
        for q in reqs:
            q.close()
    statuses = [getattr(x, "status", x) for x in results]
    assert statuses.count(204) == 1 and set(statuses) - {204} <= {409, 423}, results
    win = statuses.index(204)
    assert (root / "same/same.bin").read_bytes() == bodies[win], "the file mixes both PATCHes"


def test_nfd_file_name_is_stored_as_nfc(tus):
    nfd = unicodedata.normalize("NFD", "Caf\u00e9 \u00fcber.bin")
    loc = create(tus, tus.creds.member, 3, nfd, "nfc")
    patched(tus, tus.creds.member, loc, 0, b"abc")
    assert os.listdir(tus.media_root / "nfc") == [unicodedata.normalize("NFC", nfd)]


# --- restarts -----------------------------------------------------------------------------


def test_tuspy_resumes_after_a_graceful_restart(servers, tmp_path_factory, tmp_path):
    srv, c, root = fresh(servers, tmp_path_factory, "tus-restart",
                         STREAMHUB_SERVER_SHUTDOWN_GRACE_SECS="1")
    body = rand(12 * MIB + 5, "season")
    src = tmp_path / "ep1.bin"
    src.write_bytes(body)
    up = tuspy(srv, c.member).uploader(str(src), chunk_size=2 * MIB,
                                       metadata={"filename": "ep1.bin", "folder": "shows/s1"})
    up.upload(stop_at=6 * MIB)
    assert up.offset == 6 * MIB
    loc = urlparse(up.url).path
    assert_invisible(srv, c.member, "shows/s1", "ep1.bin")
    assert outside_staging(root) == {}, "an unfinished upload shows under the media root"

    srv2 = restart(servers, srv, "tus-restart2")
    assert len(resumable(root)) == 1, f"the staging data did not survive: {resumable(root)}"
    assert outside_staging(root) == {}
    assert_invisible(srv2, c.member, "shows/s1", "ep1.bin")
    assert offset_of(srv2, c.member, loc) == 6 * MIB, "the offset did not survive the restart"
    # a second restart in the middle of a PATCH (the client stalls): what arrived is kept
    req = raw_patch(srv2, c.member, loc, 6 * MIB, len(body) - 6 * MIB)
    try:
        req.send(body[6 * MIB:8 * MIB])
        time.sleep(0.5)
        srv3 = restart(servers, srv2, "tus-restart3")  # after the 1 s grace period
    finally:
        req.close()
    assert outside_staging(root) == {}
    assert_invisible(srv3, c.member, "shows/s1", "ep1.bin")
    up2 = tuspy(srv3, c.member).uploader(str(src), url=srv3.url(loc), chunk_size=2 * MIB)
    assert 6 * MIB < up2.offset <= 8 * MIB, f"offset {up2.offset} after a restart mid-PATCH"
    up2.upload()
    assert_visible(srv3, c.member, "shows/s1", "ep1.bin", body)
    assert resumable(root) == {}


def test_kill_9_mid_patch_and_mid_put(servers, tmp_path_factory, tmp_path):
    srv, c, root = fresh(servers, tmp_path_factory, "tus-kill")
    body = rand(24 * MIB, "kill-tus")
    loc = create(srv, c.member, len(body), "movie.bin", "k")
    patched(srv, c.member, loc, 0, body[:4 * MIB])
    tus_req = raw_patch(srv, c.member, loc, 4 * MIB, len(body) - 4 * MIB)
    put_req = RawReq(srv, "PUT", "/media/k/plain.bin", c.member.headers, 30 * MIB)
    piece = rand(MIB, "kill-put")
    try:
        for i in range(6):
            tus_req.send(body[(4 + i) * MIB:(5 + i) * MIB])
            put_req.send(piece)
        wait_for(lambda: max(resumable(root).values(), default=0) > 5 * MIB
                 and any(f.endswith(".part") for f in other_staging(root)), 10,
                 "the tus staging file and the PUT .part to grow")
        srv.proc.kill()  # SIGKILL mid-body, both requests in flight
        srv.proc.wait(timeout=10)
    finally:
        tus_req.close()
        put_req.close()
    assert not [k for k, v in outside_staging(root).items() if v != "dir"], outside_staging(root)

    srv2 = start(servers, root, srv.data_dir, "tus-kill2")
    assert other_staging(root) == [], "the PUT's partial file survived the start"
    assert len(resumable(root)) == 1, f"the tus upload's data was not kept: {resumable(root)}"
    assert not [k for k, v in outside_staging(root).items() if v != "dir"], outside_staging(root)
    for n in ("movie.bin", "plain.bin"):
        assert_invisible(srv2, c.member, "k", n)
    off = offset_of(srv2, c.member, loc)
    assert 4 * MIB <= off <= 10 * MIB, f"offset after kill -9: {off}"
    src = tmp_path / "movie.bin"
    src.write_bytes(body)
    up = tuspy(srv2, c.member).uploader(str(src), url=srv2.url(loc), chunk_size=4 * MIB)
    assert up.offset == off
    up.upload()
    assert_visible(srv2, c.member, "k", "movie.bin", body)
    assert sorted(os.listdir(root / "k")) == ["movie.bin"]


def test_abandoned_uploads_expire_and_are_swept(servers, tmp_path_factory):
    srv, c, root = fresh(servers, tmp_path_factory, "tus-expiry",
                         STREAMHUB_UPLOADS_TUS_EXPIRY_SECS="2")
    t0 = time.time()
    r = post(srv, c.member, 4 * MIB, meta(filename="gone.bin", folder="exp"))
    assert r.status == 201, r
    exp = parsedate_to_datetime(r.header("upload-expires")).timestamp()
    assert t0 < exp <= t0 + 2 + 2, f"Upload-Expires {r.header('upload-expires')!r} for 2 s"
    loc = urlparse(r.header("location")).path
    patched(srv, c.member, loc, 0, rand(MIB, "exp"))
    assert len(resumable(root)) == 1, resumable(root)
    time.sleep(4)
    assert head(srv, c.member, loc).status in (404, 410)
    r = patch(srv, c.member, loc, MIB, rand(MIB, "late"))
    assert r.status in (404, 410), r
    assert_error(r, r.status)
    # the periodic sweep deletes the data without a restart
    wait_for(lambda: resumable(root) == {}, 70, "the sweep to delete the expired upload")
    # expiry counts from the last write: an upload never idle for 2 s lives on, also when
    # the writes fall late in a wall-clock second (no rounding the 2 s down to whole seconds)
    loc3 = create(srv, c.member, 4, "alive.bin", "exp")
    for i in range(0, 4, 2):
        time.sleep((0.8 - time.time() % 1) % 1)  # the clock's fraction of a second is .8
        patched(srv, c.member, loc3, i, b"%d" % i)
        time.sleep(1.35)
        r = patch(srv, c.member, loc3, i + 1, b"%d" % (i + 1))
        assert r.status == 204, f"PATCH 1.35 s after the last write (expiry 2 s): {r!r}"
    assert (root / "exp/alive.bin").read_bytes() == b"0123"
    # and the sweep at start: an upload that expires while the service is down
    loc2 = create(srv, c.member, 4 * MIB, "down.bin", "exp")
    patched(srv, c.member, loc2, 0, rand(MIB, "down"))
    assert srv.stop() == 0
    assert len(resumable(root)) == 1, resumable(root)
    time.sleep(3)
    srv2 = start(servers, root, srv.data_dir, "tus-expiry2", STREAMHUB_UPLOADS_TUS_EXPIRY_SECS="2")
    wait_for(lambda: resumable(root) == {}, 5, "the sweep at start")
    assert head(srv2, c.member, loc2).status in (404, 410)
    # nothing of the expired uploads ever became visible; only the completed one is there
    assert outside_staging(root) == {"exp": "dir", "exp/alive.bin": 4}


# --- disk full, permission denied (fixtures from test_upload_faults.py) -----------------------


def test_upload_larger_than_the_free_space_is_507(fullfs):
    c, root = fullfs.creds, fullfs.media_root
    body = rand(3 * MIB, "tus-full")
    r = post(fullfs, c.member, len(body), meta(filename="big.bin", folder="tusfull"))
    if r.status == 201:  # refused when the disk is full rather than from the declared size
        loc = urlparse(r.header("location")).path
        req = raw_patch(fullfs, c.member, loc, 0, len(body))
        try:
            req.pump(body)
            r = req.response()
        finally:
            req.close()
        assert_error(r, 507, "no_space")
        assert http_call(fullfs, "GET", "/healthz").status == 200
        assert delete(fullfs, c.member, loc).status in (204, 404)
    assert_error(r, 507, "no_space")
    wait_for(lambda: resumable(root) == {}, 5, "the staging data of the failed upload to go")
    assert not (root / "tusfull/big.bin").exists()
    assert http_call(fullfs, "GET", "/media/tusfull/big.bin").status == 404
    assert http_call(fullfs, "GET", "/healthz").status == 200
    small = rand(MIB, "tus-fits")  # there is room for a smaller one
    loc = create(fullfs, c.member, len(small), "small.bin", "tusfull")
    patched(fullfs, c.member, loc, 0, small)
    assert (root / "tusfull/small.bin").read_bytes() == small
    (root / "tusfull/small.bin").unlink()


def test_disk_filling_up_mid_upload(fullfs):
    """The disk fills after creation: 507, the service goes on; once there is room again the
    upload resumes from HEAD's offset (or it is gone, with its data)."""
    c, root = fullfs.creds, fullfs.media_root
    body, half = rand(MIB + MIB // 2, "tus-midfull"), MIB // 2
    loc = create(fullfs, c.member, len(body), "mid.bin", "tusfull")
    patched(fullfs, c.member, loc, 0, body[:half])
    filler = root / "filler.bin"
    try:
        with open(filler, "wb", buffering=0) as f:  # something else takes the rest of the disk
            try:
                while f.write(bytes(65536)):
                    pass
            except OSError:
                pass
        r = patch(fullfs, c.member, loc, half, body[half:])
        if r.status != 204:  # (204 if the server had reserved the space at creation)
            assert_error(r, 507, "no_space")
            assert http_call(fullfs, "GET", "/healthz").status == 200
            assert_invisible(fullfs, c.member, "tusfull", "mid.bin")
    finally:
        filler.unlink()
    h = head(fullfs, c.member, loc)
    if h.status == 200 and r.status != 204:
        off = int(h.header("upload-offset"))
        assert half <= off < len(body), h
        patched(fullfs, c.member, loc, off, body[off:])
    elif r.status != 204:
        assert h.status in (404, 410), h
        loc = create(fullfs, c.member, len(body), "mid.bin", "tusfull")
        patched(fullfs, c.member, loc, 0, body)
    assert (root / "tusfull/mid.bin").read_bytes() == body
    assert resumable(root) == {}


@pytest.mark.parametrize("folder", ["locked", "locked/newsub"])
def test_permission_denied_names_the_folder(unprivileged, folder):
    srv, c, root = unprivileged, unprivileged.creds, unprivileged.media_root
    before = sorted(os.listdir(root / "locked"))
    data = rand(100_000, folder)
    r = post(srv, c.member, len(data), meta(filename="x.bin", folder=folder))
    loc = urlparse(r.header("location") or "").path if r.status == 201 else None
    if loc:  # refused at commit instead of at creation
        r = patch(srv, c.member, loc, 0, data)
    body = assert_error(r, 403, "permission_denied", mentions="locked")
    assert str(root) not in body["message"], body
    assert sorted(os.listdir(root / "locked")) == before
    assert http_call(srv, "GET", "/healthz").status == 200
    if loc:  # the refused upload can be dropped, with its data
        assert delete(srv, c.member, loc).status == 204
    assert resumable(root) == {}
