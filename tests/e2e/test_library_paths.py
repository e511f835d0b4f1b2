"""The library as a newcomer uses it (issue 14, "Consistent API"):

- `path=/` is the root, and a leading `/` in any API path means the root (`/films` = `films`);
  nothing outside the root can be named that way.
- `type=video` without `q` is every video in the library, not the root folder's children.
- Files copied in by hand are searchable moments later: an admin can ask for a scan, and a
  search on a stale index asks for one by itself.
- `move` into an existing folder moves inside it, like `mv`.
"""

import time
from urllib.parse import quote

import pytest

from conftest import AuthEnv, assert_error, http_call, wait_for

SLOW_SCANS = {
    # The periodic scan would find hand-copied files only after 10 minutes.
    "STREAMHUB_LIBRARY_SCAN_INTERVAL_SECS": "600",
    "STREAMHUB_LIBRARY_SEARCH_RESCAN_SECS": "2",
}


@pytest.fixture(scope="module")
def env(module_servers, tmp_path_factory):
    root = tmp_path_factory.mktemp("libpaths") / "media"
    for rel, data in {
        "films/a film.mp4": b"v1", "films/old/b.mkv": b"v2", "music/tone.flac": b"a1",
        "music/live/x.mp3": b"a2", "docs/readme.txt": b"t", "top.mp4": b"v3",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    srv = module_servers.start(root, env=SLOW_SCANS, name="libpaths")
    e = AuthEnv(srv)
    wait_for(lambda: status(e)["scans"] >= 1, 20, "the first scan")
    return e


def get(env, path, cred=None):
    return http_call(env.srv, "GET", path, headers=(cred or env.member).headers)


def lib(env, **params):
    qs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    r = get(env, "/api/library?" + qs)
    assert r.status == 200, r
    return r.json()


def paths(env, **params):
    return sorted(e["path"] for e in lib(env, per_page=1000, **params)["entries"])


def status(env):
    r = get(env, "/api/library/status")
    assert r.status == 200, r
    return r.json()


def move(env, frm, to, cred=None, overwrite=False):
    return http_call(env.srv, "POST", "/api/library/move", headers=(cred or env.admin).headers,
                     json_body={"from": frm, "to": to, "overwrite": overwrite})


def test_slash_is_the_root_and_a_leading_slash_is_relative_to_it(env):
    root = paths(env, path="")
    assert root == ["docs", "films", "music", "top.mp4"], root
    assert paths(env, path="/") == root
    assert lib(env, path="/")["path"] == ""
    assert paths(env, path="/films") == paths(env, path="films") == ["films/a film.mp4", "films/old"]
    r = get(env, "/api/library/item?path=" + quote("/docs/readme.txt"))
    assert r.status == 200 and r.json()["path"] == "docs/readme.txt", r
    # Still nothing outside the root: "/etc" is the root's "etc", which is not there.
    assert_error(get(env, "/api/library?path=/etc"), 404, "not_found")
    for bad in ("//etc", "/../etc", "/films/../../etc"):
        assert_error(get(env, "/api/library?path=" + quote(bad, safe="")), 400, "bad_path")


def test_type_without_q_looks_through_the_whole_library(env):
    assert paths(env, type="video") == ["films/a film.mp4", "films/old/b.mkv", "top.mp4"]
    assert paths(env, path="/", type="audio") == ["music/live/x.mp3", "music/tone.flac"]
    assert paths(env, path="films", type="video") == ["films/a film.mp4", "films/old/b.mkv"]
    assert paths(env, path="music", type="video") == []
    dirs = paths(env, type="dir")
    assert "" not in dirs and {"films", "films/old", "music/live"} <= set(dirs), dirs
    # q and type together still work as before
    assert paths(env, q="tone", type="audio") == ["music/tone.flac"]
    # a plain listing is still one folder's children
    assert paths(env, path="music") == ["music/live", "music/tone.flac"]


def test_rescan_is_for_admins_and_finds_hand_copied_files(env):
    assert_error(http_call(env.srv, "POST", "/api/library/rescan", headers=env.member.headers),
                 403, "forbidden")
    assert_error(http_call(env.srv, "POST", "/api/library/rescan"), 401, "unauthorized")
    deep = env.srv.media_root / "copied" / "by" / "hand"
    deep.mkdir(parents=True)
    (deep / "holiday.mkv").write_bytes(b"x")
    before = status(env)["scans"]
    r = http_call(env.srv, "POST", "/api/library/rescan", headers=env.admin.headers)
    assert r.status == 202, r
    assert {"scanning", "scans", "indexed"} <= set(r.json()), r.json()
    wait_for(lambda: status(env)["scans"] > before, 20, "the scan an admin asked for")
    assert paths(env, q="holiday") == ["copied/by/hand/holiday.mkv"]


def test_a_search_on_a_stale_index_asks_for_a_scan(env):
    deep = env.srv.media_root / "later" / "deeper"
    deep.mkdir(parents=True)
    (deep / "wedding.mp4").write_bytes(b"x")
    time.sleep(2.5)  # older than search_rescan_secs = 2
    # The first search may still answer from the old index; one moments later finds it.
    wait_for(lambda: paths(env, q="wedding") == ["later/deeper/wedding.mp4"], 15,
             "a search to find a hand-copied file without an admin's rescan")


def test_move_into_an_existing_folder_moves_inside_it(env):
    up = lambda p, body: http_call(env.srv, "PUT", "/media/" + p, headers=env.member.headers,
                                   body=body)
    assert up("inbox/song.mp3", b"song").status == 201
    assert http_call(env.srv, "POST", "/api/library/folder", headers=env.member.headers,
                     json_body={"path": "albums"}).status == 201
    r = move(env, "inbox/song.mp3", "albums", cred=env.member)
    assert r.status == 200 and r.json() == {"from": "inbox/song.mp3", "to": "albums/song.mp3"}, r
    assert (env.srv.media_root / "albums/song.mp3").read_bytes() == b"song"
    # into the root, with a leading slash
    r = move(env, "albums/song.mp3", "/", cred=env.member)
    assert r.status == 200 and r.json()["to"] == "song.mp3", r
    # a folder into a folder
    assert up("inbox/sub/a.bin", b"a").status == 201
    r = move(env, "inbox/sub", "albums", cred=env.member)
    assert r.status == 200 and r.json()["to"] == "albums/sub", r
    assert (env.srv.media_root / "albums/sub/a.bin").read_bytes() == b"a"
    # the same name inside: 409 unless overwrite (and the old file is untouched)
    assert up("inbox/song.mp3", b"second").status == 201
    assert up("albums/song.mp3", b"first").status == 201
    assert_error(move(env, "inbox/song.mp3", "albums", cred=env.member), 409, "exists")
    assert (env.srv.media_root / "albums/song.mp3").read_bytes() == b"first"
    r = move(env, "inbox/song.mp3", "albums", cred=env.member, overwrite=True)
    assert r.status == 200 and r.json()["to"] == "albums/song.mp3", r
    assert (env.srv.media_root / "albums/song.mp3").read_bytes() == b"second"
    # a folder into itself stays refused
    assert_error(move(env, "albums", "albums/sub"), 400)
    assert (env.srv.media_root / "albums/sub/a.bin").exists()
    # the index follows
    assert paths(env, path="albums") == ["albums/song.mp3", "albums/sub"]
