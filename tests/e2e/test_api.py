"""/api/library, /healthz, /readyz."""

import json
import os
import shutil
from datetime import datetime
from urllib.parse import quote

from conftest import BIN_1M, EMPTY, HUGE, HUGE_SIZE, MIB, UNICODE_NAME, UNICODE_TEXT, curl_fetch, raw_get


def library(server, path):
    r = curl_fetch(server.url(f"/api/library?path={quote(path, safe='')}"))
    return r


def test_healthz(server):
    r = curl_fetch(server.url("/healthz"))
    assert r.status == 200
    assert r.header("content-type", "").startswith("application/json")
    assert json.loads(r.body) == {"status": "ok"}


def test_readyz(server):
    r = curl_fetch(server.url("/readyz"))
    assert r.status == 200
    assert r.header("content-type", "").startswith("application/json")
    body = json.loads(r.body)
    assert body["status"] == "ready"
    assert isinstance(body["checks"], dict)


def test_readyz_503_when_media_root_gone(servers, tmp_path):
    root = tmp_path / "vanishing"
    root.mkdir()
    (root / "a.txt").write_text("x")
    srv = servers.start(root, tls_listen=())
    assert raw_get(srv.port, "/readyz").status == 200
    shutil.rmtree(root)
    r = raw_get(srv.port, "/readyz")
    assert r.status == 503, r
    assert json.loads(r.body)["status"] != "ready"
    # liveness is unaffected
    assert raw_get(srv.port, "/healthz").status == 200


def test_library_root_listing(server, media):
    r = library(server, "")
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("application/json")
    body = json.loads(r.body)
    assert body["path"] == ""
    entries = {e["name"]: e for e in body["entries"]}
    on_disk = set(os.listdir(media["root"]))
    # every listed name exists; every regular file/dir on disk that is inside the root is listed
    assert set(entries) <= on_disk, set(entries) - on_disk
    for name in (BIN_1M, EMPTY, HUGE, "sub", "types", UNICODE_NAME, "video.mp4"):
        assert name in entries, name

    f = entries[BIN_1M]
    assert f["kind"] == "file" and f["size"] == MIB
    assert f["content_type"] == "application/octet-stream"
    assert entries[EMPTY]["size"] == 0
    assert entries[HUGE]["size"] == HUGE_SIZE
    assert entries["video.mp4"]["content_type"] == "video/mp4"
    assert entries[UNICODE_NAME]["kind"] == "file"
    assert entries[UNICODE_NAME]["size"] == len(UNICODE_TEXT)
    assert entries[UNICODE_NAME]["content_type"].startswith("text/plain")

    d = entries["sub"]
    assert d["kind"] == "dir"
    assert d["content_type"] is None

    for e in body["entries"]:
        mt = datetime.fromisoformat(e["mtime"].replace("Z", "+00:00"))
        assert mt.tzinfo is not None, e
        if e["name"] == BIN_1M:
            assert abs(mt.timestamp() - os.stat(media["root"] / BIN_1M).st_mtime) < 1.5


def test_library_nested(server, media):
    r = library(server, "sub")
    assert r.status == 200
    body = json.loads(r.body)
    assert body["path"] == "sub"
    assert [(e["name"], e["kind"]) for e in body["entries"]] == [("dir", "dir")]
    body = json.loads(library(server, "sub/dir").body)
    assert [(e["name"], e["kind"], e["size"]) for e in body["entries"]] == [("deep.txt", "file", 17)]


def test_library_types_folder_content_types(server):
    body = json.loads(library(server, "types").body)
    got = {e["name"]: e["content_type"] for e in body["entries"]}
    assert got["sample.mp4"] == "video/mp4"
    assert got["sample.png"] == "image/png"
    assert got["sample.pdf"] == "application/pdf"
    assert len(got) == 11


def test_library_missing_dir_404(server):
    r = raw_get(server.port, "/api/library?path=does-not-exist")
    assert r.status == 404, r
    assert json.loads(r.body)["error"] == "not_found"


def test_unknown_route_404(server):
    r = raw_get(server.port, "/definitely/not/a/route")
    assert r.status == 404
