"""Uploads and file management (issue #5, first slice): the happy paths and the input checks.

`PUT /media/<path>`, `POST /api/upload?dir=` (multipart), `POST /api/library/folder`,
`POST /api/library/move`, `DELETE /media/<path>` against docs/CONTRACT.md and the upload
rows of docs/SECURITY.md. Real clients: curl (`-T`, `-F`, `-u`) and raw sockets for
byte-exact paths and multipart bodies. Faults (limits, disk full, permissions, crashes,
disconnects, races, memory) are in test_upload_faults.py.
"""

import hashlib
import os
import random
import unicodedata
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import pytest

from conftest import (
    AUTH_PW,
    assert_error,
    basic_auth,
    cli_add_user,
    csp_directives,
    curl_fetch,
    http_call,
    must_login,
    new_token,
    raw_request,
)

STAGING = ".streamhub-staging"


# --- helpers (local to this module) --------------------------------------------------------


def rand(n, seed):
    return random.Random(seed).randbytes(n)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def snapshot(base):
    """Everything under `base` (not following symlinks): {relpath: size or 'dir'}.

    The staging folders (and the node folders in them) may appear at any time and are left
    out; any FILE in them is kept, so a leftover partial upload shows up as a difference.
    """
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for d in dirnames:
            rel = os.path.relpath(os.path.join(dirpath, d), base)
            if STAGING not in Path(rel).parts:
                out[rel] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, base)] = os.lstat(p).st_size
    return out


def staging_files(root):
    """Files (not folders: the node's own folder stays) under the staging folder."""
    st = Path(root) / STAGING
    if not st.exists():
        return []
    return sorted(str(p.relative_to(st)) for p in st.rglob("*") if not p.is_dir())


def listing(srv, cred, d):
    r = http_call(srv, "GET", "/api/library?path=" + quote(d, safe=""), headers=cred.headers)
    assert r.status == 200, f"listing {d!r}: {r!r}"
    return r


def names_in(srv, cred, d):
    return {e["name"]: e for e in listing(srv, cred, d).json()["entries"]}


def put(srv, cred, target, body, query="", headers=None):
    """PUT /media/<target> with a byte-exact (already encoded) target."""
    h = dict(cred.headers) if cred is not None else {}
    h.update(headers or {})
    return http_call(srv, "PUT", "/media/" + target + query, headers=h, body=body)


def get_media(srv, rel, cred=None):
    return http_call(srv, "GET", "/media/" + quote(rel, safe="/"),
                     headers=cred.headers if cred else None, timeout=30)


def assert_created(r, path, body):
    assert r.status == 201, f"expected 201 for {path!r}, got {r!r}"
    j = r.json()
    assert j.get("path") == path, j
    assert j.get("size") == len(body), j
    assert isinstance(j.get("etag"), str) and j["etag"].strip('"'), j
    return j


def multipart_body(parts, boundary="e2eBoundary7MA4YWxkTrZu0gW"):
    """parts: list of (field, filename-bytes-or-None, data). Returns (content_type, body)."""
    b = boundary.encode()
    out = b""
    for field, filename, data in parts:
        out += b"--" + b + b"\r\n"
        cd = b'Content-Disposition: form-data; name="' + field.encode() + b'"'
        if filename is not None:
            if isinstance(filename, str):
                filename = filename.encode("utf-8")
            cd += b'; filename="' + filename + b'"'
        out += cd + b"\r\n"
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += b"--" + b + b"--\r\n"
    return f"multipart/form-data; boundary={boundary}", out


def raw_post(srv, target, headers, body):
    """POST with a byte-exact body (and head) over a raw socket."""
    lines = [f"POST {target} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return raw_request(srv.port, ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body,
                       timeout=20)


class Env:
    def __init__(self, srv, base, root):
        self.srv, self.base, self.root = srv, base, root
        cli_add_user(srv.data_dir, "boss", admin=True)
        cli_add_user(srv.data_dir, "mia")
        cli_add_user(srv.data_dir, "max")
        self.admin = new_token(srv, must_login(srv, "boss", AUTH_PW), "boss-up")
        self.member = new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-up")
        self.other = new_token(srv, must_login(srv, "max", AUTH_PW), "max-up")

    def url(self, path):
        return self.srv.url(path)


@pytest.fixture(scope="module")
def env(module_servers, tmp_path_factory):
    base = tmp_path_factory.mktemp("uploads-base")
    root = base / "media"
    root.mkdir()
    (base / "sentinel.txt").write_bytes(b"next to the media root\n")
    (root / "existing.txt").write_bytes(b"was here before\n")
    srv = module_servers.start(root, tls_listen=(), name="uploads")
    return Env(srv, base, root)


@pytest.fixture()
def files(tmp_path):
    """Write local files for curl; returns a function (name, bytes) -> Path."""

    def mk(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return p

    return mk


# --- PUT ----------------------------------------------------------------------------------


def test_curl_put_basic_creates_parents_and_roundtrips(env, files):
    body = rand(1_500_000, "curl-put")  # > 1 MiB: curl also sends Expect: 100-continue
    src = files("local.bin", body)
    assert not (env.root / "curl").exists()
    r = curl_fetch(env.url("/media/curl/deep/new.bin"),
                   extra=["-T", str(src), "-u", f"mia:{AUTH_PW}"])
    j = assert_created(r, "curl/deep/new.bin", body)
    loc = r.header("location")
    assert loc, f"201 without Location: {r!r}"
    # compare decoded: percent-encoding an unreserved character ("%2E") is an equivalent URI
    assert unquote(urlparse(loc).path) == "/media/curl/deep/new.bin", loc
    # missing parent folders were created
    assert (env.root / "curl").is_dir() and (env.root / "curl/deep").is_dir()
    assert sha((env.root / "curl/deep/new.bin").read_bytes()) == sha(body)
    # GET through the Location gives back identical bytes, with the same entity tag
    g = http_call(env.srv, "GET", urlparse(loc).path, timeout=30)
    assert g.status == 200, g
    assert sha(g.body) == sha(body)
    assert g.header("etag", "").strip('"') == j["etag"].strip('"'), (g.header("etag"), j)
    # and the listing shows it
    ents = names_in(env.srv, env.member, "curl/deep")
    assert "new.bin" in ents, ents
    assert ents["new.bin"]["kind"] == "file" and ents["new.bin"]["size"] == len(body)
    assert names_in(env.srv, env.member, "curl")["deep"]["kind"] == "dir"


def test_put_conflict_keeps_original_and_overwrite_is_owner_or_admin(env):
    a, b, c = rand(70_000, "orig"), rand(50_000, "new"), rand(30_000, "third")
    r = put(env.srv, env.member, "conf/file.bin", a)
    assert_created(r, "conf/file.bin", a)
    disk = env.root / "conf/file.bin"

    for cred in (env.member, env.admin):  # without ?overwrite=true even an admin gets 409
        r = put(env.srv, cred, "conf/file.bin", b)
        assert_error(r, 409, "exists")
        assert disk.read_bytes() == a
        assert get_media(env.srv, "conf/file.bin").body == a

    # another member may not replace mia's file
    r = put(env.srv, env.other, "conf/file.bin", b, query="?overwrite=true")
    assert_error(r, 403, "forbidden")
    assert disk.read_bytes() == a
    assert get_media(env.srv, "conf/file.bin").body == a

    # the uploader may
    r = put(env.srv, env.member, "conf/file.bin", b, query="?overwrite=true")
    assert_created(r, "conf/file.bin", b)
    assert disk.read_bytes() == b

    # and so may an admin
    r = put(env.srv, env.admin, "conf/file.bin", c, query="?overwrite=true")
    assert_created(r, "conf/file.bin", c)
    assert disk.read_bytes() == c
    g = get_media(env.srv, "conf/file.bin")
    assert g.status == 200 and sha(g.body) == sha(c)
    assert names_in(env.srv, env.member, "conf")["file.bin"]["size"] == len(c)
    assert staging_files(env.root) == []

    # a file placed by hand belongs to no member
    r = put(env.srv, env.member, "existing.txt", b, query="?overwrite=true")
    assert_error(r, 403, "forbidden")
    assert (env.root / "existing.txt").read_bytes() == b"was here before\n"


def test_put_admin_bearer_and_member_basic_empty_file(env):
    r = put(env.srv, env.admin, "tok/admin.txt", b"by admin\n")
    assert_created(r, "tok/admin.txt", b"by admin\n")
    r = put(env.srv, None, "tok/empty.bin", b"", headers=basic_auth("mia", AUTH_PW))
    assert_created(r, "tok/empty.bin", b"")
    assert (env.root / "tok/empty.bin").read_bytes() == b""
    assert get_media(env.srv, "tok/admin.txt").body == b"by admin\n"


def test_anonymous_put_is_401_and_writes_nothing(env, files):
    before = snapshot(env.base)
    r = put(env.srv, None, "anon/x.bin", b"anonymous bytes")
    assert_error(r, 401, "unauthorized")
    # curl -T without credentials as well
    r = curl_fetch(env.url("/media/anon/y.bin"), extra=["-T", str(files("anon", b"anon"))])
    assert_error(r, 401, "unauthorized")
    assert snapshot(env.base) == before


def test_wrong_credentials_put_is_401(env):
    before = snapshot(env.base)
    r = put(env.srv, None, "anon/z.bin", b"x", headers=basic_auth("mia", "wrong password!"))
    assert_error(r, 401)
    r = put(env.srv, None, "anon/z.bin", b"x", headers={"Authorization": "Bearer sht_bogus"})
    assert_error(r, 401)
    assert snapshot(env.base) == before


@pytest.mark.parametrize("method,target,body,ctype", [
    ("POST", "/api/upload?dir=anon", None, "multipart"),
    ("POST", "/api/library/folder", {"path": "anonfolder"}, "json"),
    ("POST", "/api/library/move", {"from": "existing.txt", "to": "moved-by-anon.txt"}, "json"),
    ("DELETE", "/media/existing.txt", None, None),
])
def test_anonymous_writes_are_401(env, method, target, body, ctype):
    before = snapshot(env.base)
    if ctype == "multipart":
        ct, data = multipart_body([("f", "anon.bin", b"anon")])
        r = raw_post(env.srv, target, {"Content-Type": ct}, data)
    elif ctype == "json":
        r = http_call(env.srv, method, target, json_body=body)
    else:
        r = http_call(env.srv, method, target)
    assert_error(r, 401, "unauthorized")
    assert snapshot(env.base) == before
    assert (env.root / "existing.txt").read_bytes() == b"was here before\n"


# --- multipart ----------------------------------------------------------------------------


def test_multipart_several_files_with_curl(env, files):
    a, b = rand(200_000, "mp-a"), rand(3, "mp-b")
    fa, fb = files("a", a), files("b", b)
    r = curl_fetch(env.url("/api/upload?dir=mp/inner"), method=None,
                   headers=[f"Authorization: Bearer {env.member.token}"],
                   extra=["-F", f"f=@{fa};filename=a.bin", "-F", f"g=@{fb};filename=b.bin",
                          "-F", "note=just a form field"])
    assert r.status == 201, r
    got = {f["path"]: f for f in r.json()["files"]}
    assert set(got) == {"mp/inner/a.bin", "mp/inner/b.bin"}, got
    assert got["mp/inner/a.bin"]["size"] == len(a) and got["mp/inner/b.bin"]["size"] == len(b)
    assert all(isinstance(f["etag"], str) and f["etag"] for f in got.values()), got
    assert (env.root / "mp/inner/a.bin").read_bytes() == a
    assert (env.root / "mp/inner/b.bin").read_bytes() == b
    assert sorted(os.listdir(env.root / "mp/inner")) == ["a.bin", "b.bin"]  # no "note"
    ents = names_in(env.srv, env.member, "mp/inner")
    assert set(ents) == {"a.bin", "b.bin"}, ents
    assert sha(get_media(env.srv, "mp/inner/a.bin").body) == sha(a)


XSS = "<img src=x onerror=alert(1)>.mp4"


def test_multipart_html_name_is_stored_and_listed_verbatim_but_inert(env, files):
    data = b"\x00\x00\x00\x18ftypmp42" + rand(1000, "xss")
    f = files("xss", data)
    r = curl_fetch(env.url("/api/upload?dir=xss"),
                   headers=[f"Authorization: Bearer {env.member.token}"],
                   extra=["-F", f"f=@{f};filename={XSS}"])
    assert r.status == 201, r
    assert [x["path"] for x in r.json()["files"]] == [f"xss/{XSS}"], r.json()
    assert os.listdir(env.root / "xss") == [XSS]
    assert (env.root / "xss" / XSS).read_bytes() == data

    lst = listing(env.srv, env.member, "xss")
    assert [e["name"] for e in lst.json()["entries"]] == [XSS]
    assert lst.header("content-type", "").split(";")[0].strip().lower() == "application/json", lst
    assert lst.header("x-content-type-options", "").lower() == "nosniff", lst

    g = get_media(env.srv, f"xss/{XSS}")
    assert g.status == 200 and g.body == data, g
    csp = csp_directives(g.header("content-security-policy"))
    # No script may run in it (video, audio and images are not sandboxed, so that the
    # browser's own viewer can load them; everything else also is).
    assert csp.get("default-src") == ["'none'"] and "script-src" not in csp, \
        f"media response whose CSP allows script: {g.header('content-security-policy')!r}"
    if not g.header("content-type", "").startswith(("video/", "audio/", "image/")):
        assert "sandbox" in csp, g.header("content-security-policy")
    assert g.header("x-content-type-options", "").lower() == "nosniff"


BAD_MULTIPART_NAMES = [
    ("../evil.bin", "bad_path"),
    ("a/b.bin", "bad_path"),
    ("..\\evil.bin", "bad_path"),
    ("..", "bad_path"),
    ("/abs.bin", "bad_path"),
    ("tab\tname.bin", "bad_path"),  # a control character the part-head parser lets through
    # raw NUL / other control bytes in the part head: the multipart parser may refuse the
    # head itself (bad_multipart); any 400 with nothing written will do
    ("ctl\x01.bin", None),
    ("nul\x00evil.bin", None),
]


@pytest.mark.parametrize("name,code", BAD_MULTIPART_NAMES, ids=[repr(n) for n, _ in BAD_MULTIPART_NAMES])
def test_multipart_traversal_names_refused(env, name, code):
    before = snapshot(env.base)
    before_parent = sorted(os.listdir(env.base.parent))
    ct, data = multipart_body([("f", name.encode("utf-8"), b"EVIL-" + rand(100, name))])
    r = raw_post(env.srv, "/api/upload?dir=trav", {"Content-Type": ct, **env.member.headers}, data)
    assert_error(r, 400, code)
    assert snapshot(env.base) == before
    assert sorted(os.listdir(env.base.parent)) == before_parent
    assert not (env.root / "trav").exists()
    assert staging_files(env.root) == []


@pytest.mark.parametrize("d", ["../up", "a/../../up", ".streamhub-staging", "//abs"])
def test_multipart_dir_traversal_refused(env, d):
    before = snapshot(env.base)
    ct, data = multipart_body([("f", "ok.bin", b"fine")])
    r = raw_post(env.srv, "/api/upload?dir=" + quote(d, safe=""),
                 {"Content-Type": ct, **env.member.headers}, data)
    assert_error(r, 400, "bad_path")
    assert snapshot(env.base) == before


@pytest.mark.parametrize("ctype,body", [
    ("application/octet-stream", b"raw bytes"),
    ("application/json", b'{"a":1}'),
    ("text/plain", b"hello"),
])
def test_multipart_requires_multipart(env, ctype, body):
    before = snapshot(env.base)
    r = raw_post(env.srv, "/api/upload?dir=plain", {"Content-Type": ctype, **env.member.headers}, body)
    assert_error(r, 415)
    assert snapshot(env.base) == before


def test_multipart_without_file_is_400_no_files(env):
    before = snapshot(env.base)
    r = curl_fetch(env.url("/api/upload?dir=nofile"),
                   headers=[f"Authorization: Bearer {env.member.token}"],
                   extra=["-F", "note=hello", "-F", "other=world"])
    assert_error(r, 400, "no_files")
    assert snapshot(env.base) == before


def test_multipart_existing_name_is_409_and_untouched(env):
    ct, data = multipart_body([("f", "dup.bin", b"first")])
    r = raw_post(env.srv, "/api/upload?dir=mpdup", {"Content-Type": ct, **env.member.headers}, data)
    assert r.status == 201, r
    ct, data = multipart_body([("f", "dup.bin", b"second")])
    r = raw_post(env.srv, "/api/upload?dir=mpdup", {"Content-Type": ct, **env.member.headers}, data)
    assert_error(r, 409, "exists")
    assert (env.root / "mpdup/dup.bin").read_bytes() == b"first"
    r = raw_post(env.srv, "/api/upload?dir=mpdup&overwrite=true",
                 {"Content-Type": ct, **env.other.headers}, data)
    assert_error(r, 403, "forbidden")
    assert (env.root / "mpdup/dup.bin").read_bytes() == b"first"
    r = raw_post(env.srv, "/api/upload?dir=mpdup&overwrite=true",
                 {"Content-Type": ct, **env.member.headers}, data)
    assert r.status == 201, r
    assert (env.root / "mpdup/dup.bin").read_bytes() == b"second"
    ct, data = multipart_body([("f", "dup.bin", b"third")])
    r = raw_post(env.srv, "/api/upload?dir=mpdup&overwrite=true",
                 {"Content-Type": ct, **env.admin.headers}, data)
    assert r.status == 201, r
    assert (env.root / "mpdup/dup.bin").read_bytes() == b"third"


# --- traversal in PUT paths ---------------------------------------------------------------

PUT_TRAVERSAL = [
    "../x.bin",
    "%2e%2e/x.bin",
    "%2E%2E/x.bin",
    "a/../../x.bin",
    "a%2Fb.bin",
    "a%2fb.bin",
    "..%2Fx.bin",
    "a%5Cb.bin",
    "..%5Cx.bin",
    ".streamhub-staging/x.part",
    "sub/.streamhub-staging/x.part",
    "%00x.bin",
    "x%0Ay.bin",
    "/abs.bin",  # -> /media//abs.bin
]


@pytest.mark.parametrize("target", PUT_TRAVERSAL)
def test_put_traversal_refused(env, target):
    before = snapshot(env.base)
    before_parent = sorted(os.listdir(env.base.parent))
    r = put(env.srv, env.member, target, b"TRAVERSAL-" + target.encode())
    assert_error(r, 400, "bad_path")
    assert snapshot(env.base) == before
    assert sorted(os.listdir(env.base.parent)) == before_parent
    assert staging_files(env.root) == []


# --- names --------------------------------------------------------------------------------


def test_nfd_name_is_stored_as_nfc(env):
    nfd = "cafe\u0301.txt"
    nfc = unicodedata.normalize("NFC", nfd)
    assert nfc == "caf\u00e9.txt" and nfd != nfc
    r = put(env.srv, env.member, "nfc/" + quote(nfd), b"accent")
    assert_created(r, "nfc/" + nfc, b"accent")
    on_disk = os.listdir(env.root / "nfc")
    assert on_disk == [nfc], [n.encode("utf-8") for n in on_disk]
    assert names_in(env.srv, env.member, "nfc").keys() == {nfc}
    assert get_media(env.srv, "nfc/" + nfc).body == b"accent"
    # the same name typed in NFC is the same file
    r = put(env.srv, env.member, "nfc/" + quote(nfc), b"other")
    assert_error(r, 409, "exists")
    # ... and so is a second NFD upload
    r = put(env.srv, env.member, "nfc/" + quote(nfd), b"other")
    assert_error(r, 409, "exists")
    assert (env.root / "nfc" / nfc).read_bytes() == b"accent"


BAD_NAMES = [".hidden", "CON", "con", "NUL", "COM1", "name.", "trailing ", "LPT1.txt"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n) for n in BAD_NAMES])
def test_put_bad_new_name(env, name):
    before = snapshot(env.base)
    r = put(env.srv, env.member, "names/" + quote(name), b"x")
    assert_error(r, 400, "bad_name")
    assert snapshot(env.base) == before


def test_bad_new_name_in_multipart_and_folder(env):
    before = snapshot(env.base)
    ct, data = multipart_body([("f", ".hidden", b"x")])
    r = raw_post(env.srv, "/api/upload?dir=names2", {"Content-Type": ct, **env.member.headers}, data)
    assert_error(r, 400, "bad_name")
    for p in (".hidden", "folder/CON", "dotted."):
        r = http_call(env.srv, "POST", "/api/library/folder", headers=env.member.headers,
                      json_body={"path": p})
        assert_error(r, 400, "bad_name")
    assert snapshot(env.base) == before


def test_reserved_streamhub_prefix_is_bad_path(env):
    before = snapshot(env.base)
    r = put(env.srv, env.admin, ".streamhub-mine.bin", b"x")
    assert_error(r, 400, "bad_path")
    r = http_call(env.srv, "POST", "/api/library/folder", headers=env.admin.headers,
                  json_body={"path": ".streamhub-staging"})
    assert_error(r, 400, "bad_path")
    assert snapshot(env.base) == before


# --- folders, move, delete ----------------------------------------------------------------


def test_create_folder(env):
    r = http_call(env.srv, "POST", "/api/library/folder", headers=env.member.headers,
                  json_body={"path": "made/by/member"})
    assert r.status == 201, r
    assert (env.root / "made/by/member").is_dir()
    assert names_in(env.srv, env.member, "made/by")["member"]["kind"] == "dir"
    r = http_call(env.srv, "POST", "/api/library/folder", headers=env.admin.headers,
                  json_body={"path": "made/by/member"})
    assert_error(r, 409, "exists")
    # a folder where a file is
    r = http_call(env.srv, "POST", "/api/library/folder", headers=env.admin.headers,
                  json_body={"path": "existing.txt"})
    assert_error(r, 409, "exists")
    assert (env.root / "existing.txt").read_bytes() == b"was here before\n"


def test_move_owner_or_admin(env):
    body = rand(10_000, "mv")
    assert put(env.srv, env.member, "mv/src.bin", body).status == 201
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.other.headers,
                  json_body={"from": "mv/src.bin", "to": "mv/dst.bin"})
    assert_error(r, 403, "forbidden")
    assert (env.root / "mv/src.bin").read_bytes() == body
    assert not (env.root / "mv/dst.bin").exists()
    # the uploader moves it (and may move it back)
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.member.headers,
                  json_body={"from": "mv/src.bin", "to": "mv/mine.bin"})
    assert r.status == 200, r
    assert (env.root / "mv/mine.bin").read_bytes() == body
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.member.headers,
                  json_body={"from": "mv/mine.bin", "to": "mv/src.bin"})
    assert r.status == 200, r
    # a file placed by hand: admins only
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.member.headers,
                  json_body={"from": "existing.txt", "to": "moved.txt"})
    assert_error(r, 403, "forbidden")

    r = http_call(env.srv, "POST", "/api/library/move", headers=env.admin.headers,
                  json_body={"from": "mv/src.bin", "to": "mv/other/dst.bin"})
    assert r.status == 200, r
    assert not (env.root / "mv/src.bin").exists()
    assert (env.root / "mv/other/dst.bin").read_bytes() == body
    assert get_media(env.srv, "mv/src.bin").status == 404
    assert get_media(env.srv, "mv/other/dst.bin").body == body
    ents = names_in(env.srv, env.member, "mv")
    assert "src.bin" not in ents and ents["other"]["kind"] == "dir", ents

    # a folder moves with its content
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.admin.headers,
                  json_body={"from": "mv/other", "to": "mv2"})
    assert r.status == 200, r
    assert (env.root / "mv2/dst.bin").read_bytes() == body
    assert not (env.root / "mv/other").exists()


def test_member_moves_own_folder_only_when_everything_in_it_is_theirs(env):
    r = http_call(env.srv, "POST", "/api/library/folder", headers=env.member.headers,
                  json_body={"path": "fold/mia"})
    assert r.status == 201, r
    assert put(env.srv, env.member, "fold/mia/a.bin", b"mine").status == 201
    assert put(env.srv, env.other, "fold/mia/b.bin", b"max's").status == 201
    # mia made the folder, but max's file is in it: not hers to carry away
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.member.headers,
                  json_body={"from": "fold/mia", "to": "fold/elsewhere"})
    assert_error(r, 403, "forbidden")
    assert (env.root / "fold/mia/b.bin").read_bytes() == b"max's"
    # once it holds only her files, she may
    r = http_call(env.srv, "DELETE", "/media/fold/mia/b.bin", headers=env.other.headers)
    assert r.status == 204, r
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.member.headers,
                  json_body={"from": "fold/mia", "to": "fold/elsewhere"})
    assert r.status == 200, r
    assert (env.root / "fold/elsewhere/a.bin").read_bytes() == b"mine"
    # ownership moved along: she can still delete her file at its new place
    r = http_call(env.srv, "DELETE", "/media/fold/elsewhere/a.bin", headers=env.member.headers)
    assert r.status == 204, r


def test_delete_owner_or_admin_and_non_empty_folder(env):
    assert put(env.srv, env.member, "del/full/f.bin", b"keep me").status == 201
    r = http_call(env.srv, "POST", "/api/library/folder", headers=env.member.headers,
                  json_body={"path": "del/empty"})
    assert r.status == 201, r
    r = http_call(env.srv, "POST", "/api/library/folder", headers=env.member.headers,
                  json_body={"path": "del/mine"})
    assert r.status == 201, r

    r = http_call(env.srv, "DELETE", "/media/del/full/f.bin", headers=env.other.headers)
    assert_error(r, 403, "forbidden")
    assert (env.root / "del/full/f.bin").read_bytes() == b"keep me"
    r = http_call(env.srv, "DELETE", "/media/del/empty", headers=env.other.headers)
    assert_error(r, 403, "forbidden")
    assert (env.root / "del/empty").is_dir()
    # the member who made a folder may delete it
    r = http_call(env.srv, "DELETE", "/media/del/mine", headers=env.member.headers)
    assert r.status == 204, r
    assert not (env.root / "del/mine").exists()

    r = http_call(env.srv, "DELETE", "/media/del/full", headers=env.admin.headers)
    assert_error(r, 409, "not_empty")
    assert (env.root / "del/full/f.bin").read_bytes() == b"keep me"

    r = http_call(env.srv, "DELETE", "/media/del/full/f.bin", headers=env.admin.headers)
    assert r.status == 204, r
    assert not (env.root / "del/full/f.bin").exists()
    assert get_media(env.srv, "del/full/f.bin").status == 404
    r = http_call(env.srv, "DELETE", "/media/del/full", headers=env.admin.headers)
    assert r.status == 204, r
    r = http_call(env.srv, "DELETE", "/media/del/empty", headers=env.admin.headers)
    assert r.status == 204, r
    assert os.listdir(env.root / "del") == []
    assert names_in(env.srv, env.member, "del") == {}
