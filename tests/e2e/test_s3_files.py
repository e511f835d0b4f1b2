"""Uploads and file management with media on S3 (a real Garage node, `garage` fixture):
PUT and multipart form uploads read back byte-identical (through streamhub and straight from
the bucket), uploads that span several S3 parts, no-overwrite, folders (empty ones too),
listing, delete and move (tus uploads on S3: test_s3_tus.py).
"""

import hashlib
import random
from urllib.parse import quote

import pytest

from conftest import (
    AUTH_PW,
    ServerFactory,
    assert_error,
    cli_add_user,
    curl_fetch,
    http_call,
    must_login,
    new_token,
)
from test_uploads import multipart_body

PREFIX = "files"
PART = 5 * 1024 * 1024


def rand(n, seed):
    return random.Random(seed).randbytes(n)


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Env:
    def __init__(self, srv, garage):
        self.srv, self.garage = srv, garage
        cli_add_user(srv.data_dir, "boss", admin=True)
        cli_add_user(srv.data_dir, "mia")
        self.admin = new_token(srv, must_login(srv, "boss", AUTH_PW), "boss-s3")
        self.member = new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-s3")

    def call(self, method, path, cred=None, **kw):
        cred = cred or self.member
        return http_call(self.srv, method, path, headers=cred.headers, timeout=60, **kw)

    def put(self, rel, body, query=""):
        return self.call("PUT", "/media/" + quote(rel, safe="/") + query, body=body)

    def get(self, rel):
        return http_call(self.srv, "GET", "/media/" + quote(rel, safe="/"), timeout=60)

    def in_bucket(self, rel):
        """The object's bytes read straight from Garage, or None."""
        status, body = self.garage.curl_s3("GET", f"{PREFIX}/{rel}")
        return body if status == 200 else None

    def names(self, d):
        r = self.call("GET", "/api/library?path=" + quote(d, safe=""))
        assert r.status == 200, r
        return {e["name"]: e for e in r.json()["entries"]}


@pytest.fixture(scope="module")
def env(garage, tmp_path_factory):
    f = ServerFactory(tmp_path_factory)
    root = tmp_path_factory.mktemp("s3-files-unused-root")
    extra = {
        **garage.env(PREFIX),
        # 5 MiB parts (S3's smallest) so a test upload spans several of them.
        "STREAMHUB_S3_PART_SIZE_MIB": "5",
        "STREAMHUB_UPLOADS_MAX_BYTES": str(1 << 30),
    }
    srv = f.start(root, tls_listen=(), env=extra, name="s3files")
    yield Env(srv, garage)
    f.stop_all()


def test_put_reads_back_identical_and_lands_in_the_bucket(env):
    body = rand(1_500_000, "put")
    r = env.put("clips/one.bin", body)
    assert r.status == 201, r
    j = r.json()
    assert j["path"] == "clips/one.bin" and j["size"] == len(body)
    g = env.get("clips/one.bin")
    assert g.status == 200 and sha(g.body) == sha(body)
    assert g.header("etag", "").strip('"') == j["etag"].strip('"')
    assert sha(env.in_bucket("clips/one.bin")) == sha(body)
    assert env.names("clips")["one.bin"]["size"] == len(body)
    assert env.names("")["clips"]["kind"] == "dir"


def test_upload_of_several_parts_with_curl(env, tmp_path):
    # 4 full 5 MiB parts and a short last one
    body = rand(4 * PART + 123_457, "parts")
    src = tmp_path / "big.bin"
    src.write_bytes(body)
    r = curl_fetch(env.srv.url("/media/big/parts.bin"), extra=["-T", str(src), "-u", f"mia:{AUTH_PW}"])
    assert r.status == 201, r
    g = env.get("big/parts.bin")
    assert g.status == 200 and len(g.body) == len(body) and sha(g.body) == sha(body)
    assert sha(env.in_bucket("big/parts.bin")) == sha(body)
    # S3's ETag of a multipart object names its part count
    assert g.header("etag", "").strip('"').endswith("-5"), g.header("etag")
    # a range across the part boundary
    r = curl_fetch(env.srv.url("/media/big/parts.bin"), headers=[f"Range: bytes={PART - 10}-{PART + 9}"])
    assert r.status == 206 and r.body == body[PART - 10:PART + 10]


def test_multipart_form_upload(env):
    a, b = rand(70_000, "form-a"), rand(0, "form-b")
    ct, payload = multipart_body([("f", "a.bin", a), ("g", "empty.bin", b)])
    r = http_call(env.srv, "POST", "/api/upload?dir=form",
                  headers={**env.member.headers, "Content-Type": ct}, body=payload, timeout=60)
    assert r.status == 201, r
    assert sorted(f["path"] for f in r.json()["files"]) == ["form/a.bin", "form/empty.bin"]
    assert env.get("form/a.bin").body == a
    e = env.get("form/empty.bin")
    assert e.status == 200 and e.body == b""


def test_existing_name_is_409_and_untouched(env):
    a, b = rand(10_000, "orig"), rand(20_000, "new")
    assert env.put("conf/x.bin", a).status == 201
    assert_error(env.put("conf/x.bin", b), 409, "exists")
    assert env.in_bucket("conf/x.bin") == a
    r = env.put("conf/x.bin", b, "?overwrite=true")
    assert r.status == 201, r
    assert env.get("conf/x.bin").body == b


def test_a_file_on_the_way_refuses_the_upload(env):
    assert env.put("blocker", b"i am a file").status == 201
    r = env.put("blocker/inside.bin", b"x")
    assert r.status in (409, 404), r
    assert env.in_bucket("blocker/inside.bin") is None


def test_empty_folders_listing_delete(env):
    r = env.call("POST", "/api/library/folder", json_body={"path": "albums/empty"})
    assert r.status == 201, r
    assert env.names("")["albums"]["kind"] == "dir"
    assert env.names("albums")["empty"]["kind"] == "dir"
    assert env.names("albums/empty") == {}
    # the marker object is what keeps it
    assert env.in_bucket("albums/empty/") == b""
    assert_error(env.call("POST", "/api/library/folder", json_body={"path": "albums/empty"}), 409, "exists")
    # a folder with something in it is not deleted without recursive
    assert env.put("albums/empty/song.bin", b"la").status == 201
    assert_error(env.call("DELETE", "/media/albums/empty"), 409, "not_empty")
    r = env.call("DELETE", "/media/albums/empty/song.bin")
    assert r.status == 204, r
    assert env.in_bucket("albums/empty/song.bin") is None
    assert env.get("albums/empty/song.bin").status == 404
    r = env.call("DELETE", "/media/albums/empty")
    assert r.status == 204, r
    assert "empty" not in env.names("albums")


def test_move_file_and_folder(env):
    a, b = rand(3000, "mv-a"), rand(4000, "mv-b")
    assert env.put("mv/src/a.bin", a).status == 201
    assert env.put("mv/src/deep/b.bin", b).status == 201
    r = env.call("POST", "/api/library/move", json_body={"from": "mv/src/a.bin", "to": "mv/a2.bin"})
    assert r.status == 200, r
    assert env.get("mv/a2.bin").body == a
    assert env.get("mv/src/a.bin").status == 404
    assert env.in_bucket("mv/src/a.bin") is None
    # a name taken: 409, nothing replaced
    assert env.put("mv/taken.bin", b"keep").status == 201
    r = env.call("POST", "/api/library/move", json_body={"from": "mv/a2.bin", "to": "mv/taken.bin"})
    assert_error(r, 409, "exists")
    assert env.get("mv/taken.bin").body == b"keep"
    # a folder moves with everything in it
    r = env.call("POST", "/api/library/move", json_body={"from": "mv/src", "to": "mv/dst"})
    assert r.status == 200, r
    assert env.get("mv/dst/deep/b.bin").body == b
    assert env.get("mv/src/deep/b.bin").status == 404
    assert "src" not in env.names("mv")
    assert env.names("mv/dst")["deep"]["kind"] == "dir"


def test_hidden_keys_in_the_bucket_are_not_listed(env):
    status, _ = env.garage.curl_s3("PUT", f"{PREFIX}/hid/.secret", b"s")
    assert status == 200
    status, _ = env.garage.curl_s3("PUT", f"{PREFIX}/hid/shown.txt", b"s")
    assert status == 200
    assert set(env.names("hid")) == {"shown.txt"}
    assert env.get("hid/.secret").status in (400, 404)


def test_racing_overwrites_of_one_name_never_answer_404(env):
    """Garage ends an unfinished multipart upload when a newer one of the same name completes:
    the PUT it belonged to must say so (409), not claim the file is missing (404)."""
    import threading

    rel = "race/x.bin"
    assert env.put(rel, rand(1000, "race-orig")).status == 201
    bodies = [bytes([c]) * (12 << 20) for c in b"ABC"]
    seen = []
    for _ in range(4):
        answers = []

        def put(body):
            answers.append(env.put(rel, body, "?overwrite=true"))

        ts = [threading.Thread(target=put, args=(b,)) for b in bodies]
        [t.start() for t in ts]
        [t.join() for t in ts]
        for r in answers:
            seen.append(r.status)
            if r.status == 409:
                assert_error(r, 409, "upload_conflict")
            else:
                assert r.status == 201, r
        got = env.in_bucket(rel)
        assert got in bodies, "the object is not one of the bodies, whole"
        assert env.get(rel).body == got
    assert 201 in seen, seen


def test_the_other_unicode_form_of_a_name_is_the_same_name(env):
    """A name spelt in NFD (as a Mac writes it) already in the bucket: its NFC spelling is
    taken, as on the local backend, with or without overwrite."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", "nf/café.txt")
    status, _ = env.garage.curl_s3("PUT", f"{PREFIX}/{nfd}", b"NFD version")
    assert status == 200
    assert_error(env.put("nf/café.txt", b"NFC version"), 409, "exists")
    assert_error(env.put("nf/café.txt", b"NFC version", "?overwrite=true"), 409, "exists")
    assert env.in_bucket(nfd) == b"NFD version"
    assert env.in_bucket(unicodedata.normalize("NFC", "nf/café.txt")) is None
    # and a folder of the other spelling too
    status, _ = env.garage.curl_s3("PUT", f"{PREFIX}/{unicodedata.normalize('NFD', 'nf/é-dir/a')}",
                                   b"a")
    assert status == 200
    assert_error(env.put("nf/é-dir", b"x"), 409, "exists")
    r = env.call("POST", "/api/library/folder", json_body={"path": "nf/é-dir"})
    assert_error(r, 409, "exists")
    r = env.call("POST", "/api/library/folder", json_body={"path": "nf/café.txt"})
    assert_error(r, 409, "exists")
