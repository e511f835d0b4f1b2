"""Path traversal and symlink handling, with raw requests the client cannot normalise."""

import json

import pytest

from conftest import (
    BIN_1M,
    LINK_DANGLING,
    LINK_DANGLING_OUTSIDE,
    LINK_DIR_OUTSIDE,
    LINK_INSIDE,
    LINK_OUTSIDE,
    SECRET_TEXT,
    raw_get,
)

BAD_TARGETS = [
    "/media/../etc/passwd",
    "/media/%2e%2e/%2e%2e/etc/passwd",
    "/media/%2E%2E/secret",
    "/media/a%2Fb",
    "/media/a%2fb",
    "/media/a%5Cb",
    "/media/..%5csecret",
    "/media/%00",
    "/media/ten.bin%00.txt",
    "/media//etc/passwd",
    "/media/%2Fetc/passwd",
    "/media/sub/..%2f..%2fsecret",
    "/media/sub/../../secret",
    "/media/a%01b",
    "/media/a%0ab",
    "/media/%ff",  # not UTF-8 after decoding
    "/media/%zz",  # broken escape
]


def assert_json_error(r, status, code):
    assert r.status == status, r
    assert r.header("content-type", "").startswith("application/json"), r
    body = json.loads(r.body)
    assert body["error"] == code, body
    assert isinstance(body.get("message"), str)


@pytest.mark.parametrize("target", BAD_TARGETS)
def test_bad_paths_rejected(server, target):
    r = raw_get(server.port, target)
    assert b"root:" not in r.body and SECRET_TEXT not in r.body
    assert_json_error(r, 400, "bad_path")


def test_symlink_outside_root_forbidden(server):
    r = raw_get(server.port, f"/media/{LINK_OUTSIDE}")
    assert SECRET_TEXT not in r.body
    assert_json_error(r, 403, "outside_root")


def test_symlink_outside_root_forbidden_for_head_and_range(server):
    r = raw_get(server.port, f"/media/{LINK_OUTSIDE}", headers={"Range": "bytes=0-3"})
    assert r.status == 403 and SECRET_TEXT[:4] not in r.body
    r = raw_get(server.port, f"/media/{LINK_OUTSIDE}", method="HEAD")
    assert r.status == 403


def test_symlinked_dir_outside_root_forbidden(server):
    r = raw_get(server.port, f"/media/{LINK_DIR_OUTSIDE}/secret.txt")
    assert SECRET_TEXT not in r.body
    assert_json_error(r, 403, "outside_root")
    r = raw_get(server.port, f"/api/library?path={LINK_DIR_OUTSIDE}")
    assert b"secret.txt" not in r.body
    assert_json_error(r, 403, "outside_root")


def test_dangling_symlink_404(server):
    assert_json_error(raw_get(server.port, f"/media/{LINK_DANGLING}"), 404, "not_found")


def test_links_out_of_the_root_are_403_whether_or_not_the_target_exists(server):
    # No oracle: the answer never tells what exists outside the media root.
    for target in (LINK_DANGLING_OUTSIDE, LINK_OUTSIDE, f"{LINK_DIR_OUTSIDE}/secret.txt",
                   f"{LINK_DIR_OUTSIDE}/no-such-file", f"{LINK_DIR_OUTSIDE}/no/such/dir"):
        r = raw_get(server.port, f"/media/{target}")
        assert_json_error(r, 403, "outside_root")
        assert SECRET_TEXT not in r.body


def test_symlink_inside_root_served(server, media):
    r = raw_get(server.port, f"/media/{LINK_INSIDE}")
    assert r.status == 200
    assert r.body == media["data"][BIN_1M]


def test_symlink_escape_allowed_by_config(servers, media):
    srv = servers.start(media["root"], config="[storage]\nallow_symlink_escape = true\n")
    r = raw_get(srv.port, f"/media/{LINK_OUTSIDE}")
    assert r.status == 200, r
    assert r.body == SECRET_TEXT
    # The one setting is honoured everywhere storage is reached: the library lists through it.
    r = raw_get(srv.port, f"/api/library?path={LINK_DIR_OUTSIDE}")
    assert r.status == 200, r
    assert "secret.txt" in [e["name"] for e in json.loads(r.body)["entries"]]
    # .. is still a bad path even then
    assert_json_error(raw_get(srv.port, "/media/../secret"), 400, "bad_path")


def test_missing_file_404_json(server):
    assert_json_error(raw_get(server.port, "/media/no-such-file.mp4"), 404, "not_found")
    assert_json_error(raw_get(server.port, "/media/sub/nope/deeper.txt"), 404, "not_found")


def test_directory_under_media_404(server):
    assert_json_error(raw_get(server.port, "/media/sub"), 404, "not_found")
    assert_json_error(raw_get(server.port, "/media/sub/dir"), 404, "not_found")


@pytest.mark.parametrize("path", ["../", "..", "sub/../..", "//etc", "%2e%2e", "sub%00"])
def test_library_bad_path_400(server, path):
    r = raw_get(server.port, f"/api/library?path={path}")
    assert_json_error(r, 400, "bad_path")
    assert b"passwd" not in r.body


def test_method_not_allowed_json(server):
    r = raw_get(server.port, f"/media/{BIN_1M}", method="PATCH", headers={"Content-Length": "0"})
    assert_json_error(r, 405, "method_not_allowed")
    # RFC 9110 §15.5.6: a 405 response MUST carry Allow
    allow = {m.strip().upper() for m in r.header("allow", "").split(",") if m.strip()}
    assert {"GET", "HEAD"} <= allow, r.header("allow")
    r = raw_get(server.port, f"/media/{BIN_1M}", method="POST", headers={"Content-Length": "0"})
    assert_json_error(r, 405, "method_not_allowed")
