"""The media library index against the real binary with real ffmpeg/ffprobe: probing,
posters, listing right after an upload, search, files placed and removed by hand, the media
root vanishing (the index is kept), no ffmpeg, hostile names and paths, kill -9.

Servers here scan every 10 s (STREAMHUB_LIBRARY_SCAN_INTERVAL_SECS=10, the minimum).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import ANON, AuthEnv, assert_error, http_call, wait_for

SCAN_ENV = {"STREAMHUB_LIBRARY_SCAN_INTERVAL_SECS": "10"}
SCAN_WAIT = 30  # two scan intervals and some


def ff(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True, timeout=120)


def make_video(path, seconds=4, size="640x360", vcodec="libx264", audio=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={size}:rate=25"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac", "-shortest"] if audio else ["-an"]
    ff(*args, path)


def make_tone(path, seconds=3):
    path.parent.mkdir(parents=True, exist_ok=True)
    ff("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", path)


def make_image(path, size="800x600"):
    path.parent.mkdir(parents=True, exist_ok=True)
    ff("-f", "lavfi", "-i", f"testsrc=size={size}", "-frames:v", "1", path)


def ffprobe_dims(data, tmp):
    p = Path(tmp) / "probe.jpg"
    p.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", p],
                         check=True, capture_output=True, timeout=60).stdout
    s = json.loads(out)["streams"][0]
    return s["codec_name"], s["width"], s["height"]


@pytest.fixture(scope="module")
def media_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("libmedia") / "media"
    make_video(root / "films" / "Big Buck Test.mp4", seconds=4)
    make_video(root / "films" / "clip two.mkv", seconds=2, size="320x240", vcodec="mpeg4", audio=False)
    make_tone(root / "music" / "Tone 440.flac")
    make_image(root / "pics" / "Still.png")
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_text("hello\n")
    (root / "many").mkdir()
    for i in range(30):
        (root / "many" / f"item-{i:03d}.bin").write_bytes(b"x" * (i + 1))
    return root


@pytest.fixture(scope="module")
def env(module_servers, media_tree):
    srv = module_servers.start(media_tree, env=SCAN_ENV, name="library")
    return AuthEnv(srv)


def get(srv, path, cred=ANON, headers=None):
    h = dict(cred.headers)
    h.update(headers or {})
    return http_call(srv, "GET", path, headers=h)


def lib(srv, **params):
    qs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    return get(srv, "/api/library?" + qs)


def ok_json(r):
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("application/json"), r
    return r.json()


def search_paths(srv, q, **params):
    return sorted(e["path"] for e in ok_json(lib(srv, q=q, per_page=1000, **params))["entries"])


def item(srv, path):
    return get(srv, "/api/library/item?path=" + quote(path, safe=""))



def wait_until(pred, timeout, what):
    return wait_for(pred, timeout, what, every=0.2)


def probed(srv, path):
    def check():
        r = item(srv, path)
        return r.json() if r.status == 200 and r.json()["probed"] else None
    return wait_until(check, SCAN_WAIT, f"{path} to be probed")


def library_status(srv):
    r = get(srv, "/readyz")
    return r.status, r.json()["checks"]["library"]


# --- probing and posters ---------------------------------------------------------------------


def test_ffprobe_metadata(env):
    v = probed(env.srv, "films/Big Buck Test.mp4")
    assert abs(v["duration"] - 4.0) < 0.3, v
    assert (v["video_codec"], v["audio_codec"], v["width"], v["height"]) == ("h264", "aac", 640, 360)
    assert v["media"] == "video" and v["content_type"] == "video/mp4" and v["probe_error"] is None
    m = probed(env.srv, "films/clip two.mkv")
    assert (m["video_codec"], m["audio_codec"], m["width"], m["height"]) == ("mpeg4", None, 320, 240)
    assert abs(m["duration"] - 2.0) < 0.3, m
    a = probed(env.srv, "music/Tone 440.flac")
    assert (a["media"], a["audio_codec"], a["video_codec"], a["width"]) == ("audio", "flac", None, None)
    assert abs(a["duration"] - 3.0) < 0.3, a
    assert a["thumb"] is None
    i = probed(env.srv, "pics/Still.png")
    assert (i["media"], i["width"], i["height"], i["duration"]) == ("image", 800, 600, None)
    t = ok_json(item(env.srv, "docs/readme.txt"))
    assert t["media"] == "other" and t["thumb"] is None and t["duration"] is None


def test_thumbnails_are_real_jpegs_with_validators(env, tmp_path):
    for path, dims in (("films/Big Buck Test.mp4", (320, 180)), ("pics/Still.png", (320, 240))):
        it = ok_json(item(env.srv, path))
        assert it["thumb"] == "/api/library/thumb?path=" + quote(path, safe="/"), it
        r = get(env.srv, it["thumb"])
        assert r.status == 200, r
        assert r.header("content-type") == "image/jpeg"
        assert r.body[:3] == b"\xff\xd8\xff", r.body[:8]
        assert ffprobe_dims(r.body, tmp_path) == ("mjpeg",) + dims
        etag = r.header("etag")
        assert etag and etag.startswith('"'), r
        assert "max-age" in r.header("cache-control", "")
        r2 = get(env.srv, it["thumb"], headers={"If-None-Match": etag})
        assert r2.status == 304 and r2.body == b"", r2
        r3 = get(env.srv, it["thumb"], headers={"If-None-Match": '"other"'})
        assert r3.status == 200 and r3.body == r.body
    for path, why in (("music/Tone 440.flac", "not a video or image"), ("docs/readme.txt", "not a video")):
        r = get(env.srv, "/api/library/thumb?path=" + quote(path, safe=""))
        assert_error(r, 404, "no_thumbnail", mentions=why)
    assert_error(get(env.srv, "/api/library/thumb?path=films/none.mp4"), 404, "not_found")


def test_changed_file_gets_a_new_poster(env):
    src = env.srv.media_root / "films" / "clip two.mkv"
    probed(env.srv, "films/clip two.mkv")
    r1 = get(env.srv, "/api/library/thumb?path=films/clip%20two.mkv")
    assert r1.status == 200, r1
    shutil.copy(src, env.srv.media_root / "films" / "changing.mkv")
    first = get(env.srv, "/api/library/thumb?path=films/changing.mkv")
    assert first.status == 200, first
    make_video(env.srv.media_root / "films" / "changing.tmp.mkv", seconds=3, size="640x480",
               vcodec="mpeg4", audio=False)
    os.replace(env.srv.media_root / "films" / "changing.tmp.mkv", env.srv.media_root / "films" / "changing.mkv")
    # the rename changed the folder: the item read refreshes it, the old facts are dropped
    second = get(env.srv, "/api/library/thumb?path=films/changing.mkv")
    assert second.status == 200, second
    assert second.header("etag") != first.header("etag")
    assert probed(env.srv, "films/changing.mkv")["width"] == 640


# --- listing ---------------------------------------------------------------------------------


def test_listing_shape(env):
    body = ok_json(lib(env.srv, path=""))
    assert body["path"] == "" and body["page"] == 1 and body["per_page"] == 100
    assert body["total"] == len(body["entries"]) and body["pages"] == 1
    names = [e["name"] for e in body["entries"]]
    assert names[:5] == ["docs", "films", "many", "music", "pics"], names
    films = {e["name"]: e for e in ok_json(lib(env.srv, path="films"))["entries"]}
    e = films["Big Buck Test.mp4"]
    for key in ("name", "kind", "size", "mtime", "content_type", "path", "media", "duration",
                "width", "height", "video_codec", "audio_codec", "thumb"):
        assert key in e, key
    assert e["path"] == "films/Big Buck Test.mp4" and e["kind"] == "file"
    assert e["size"] == (env.srv.media_root / "films" / "Big Buck Test.mp4").stat().st_size
    d = ok_json(lib(env.srv, path=""))["entries"][0]
    assert d["kind"] == "dir" and d["media"] == "dir" and d["content_type"] is None and d["thumb"] is None


def test_listing_right_after_upload(env):
    data = (env.srv.media_root / "films" / "Big Buck Test.mp4").read_bytes()
    r = http_call(env.srv, "PUT", "/media/uploads/fresh%20upload.mp4", headers=env.member.headers, body=data)
    assert r.status == 201, r
    entries = {e["name"]: e for e in ok_json(lib(env.srv, path="uploads"))["entries"]}
    assert entries["fresh upload.mp4"]["size"] == len(data)
    assert search_paths(env.srv, "fresh up") == ["uploads/fresh upload.mp4"]
    assert probed(env.srv, "uploads/fresh upload.mp4")["video_codec"] == "h264"


def test_search_substring_case_type_sort_paging(env):
    assert search_paths(env.srv, "BUCK") == ["films/Big Buck Test.mp4"]
    assert search_paths(env.srv, "ig b") == ["films/Big Buck Test.mp4"]
    assert search_paths(env.srv, "ne 4") == ["music/Tone 440.flac"]
    assert search_paths(env.srv, "Ti") == ["pics/Still.png"], "2-character query (LIKE)"
    assert "films/Big Buck Test.mp4" not in search_paths(env.srv, "t", type="audio")
    assert search_paths(env.srv, "o", type="audio") == ["music/Tone 440.flac"]
    vids = search_paths(env.srv, "i", type="video")
    assert "films/Big Buck Test.mp4" in vids and all(p.endswith((".mp4", ".mkv")) for p in vids)
    assert search_paths(env.srv, "item-", path="docs") == []
    # paging through a search
    seen = []
    for page in (1, 2, 3):
        b = ok_json(lib(env.srv, q="item-", per_page=10, page=page, sort="name"))
        assert (b["total"], b["pages"], b["page"]) == (30, 3, page), b
        seen += [e["name"] for e in b["entries"]]
    assert seen == [f"item-{i:03d}.bin" for i in range(30)]
    assert ok_json(lib(env.srv, q="item-", per_page=10, page=4))["entries"] == []
    sizes = [e["size"] for e in ok_json(lib(env.srv, path="many", sort="-size"))["entries"]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 30
    durs = [e["duration"] for e in ok_json(lib(env.srv, q="i", type="video", sort="-duration"))["entries"]]
    known = [d for d in durs if d is not None]
    assert known == sorted(known, reverse=True) and durs[: len(known)] == known


def test_search_ranks_exact_and_prefix_first(env):
    for n in ("x still y.png", "still.txt"):
        (env.srv.media_root / "rank").mkdir(exist_ok=True)
        (env.srv.media_root / "rank" / n).write_bytes(b"1")
    ok_json(lib(env.srv, path="rank"))  # the listing indexes the hand-made folder
    b = ok_json(lib(env.srv, q="still", path="rank"))
    assert [e["name"] for e in b["entries"]] == ["still.txt", "x still y.png"]


@pytest.mark.parametrize("params", [
    {"type": "movies"}, {"sort": "rowid"}, {"sort": "name;drop"}, {"page": "0"}, {"page": "abc"},
    {"per_page": "5000"}, {"per_page": "-1"}, {"q": "x" * 300}, {"bogus": "1"},
])
def test_bad_parameters_400(env, params):
    r = lib(env.srv, **params)
    assert_error(r, 400, "bad_query")


@pytest.mark.parametrize("q", ['"', "*", "NEAR(a b)", "name:x", "%", "_", "\\", "'; DROP TABLE media; --",
                               "a OR b", "(((", "^x", "\u202e", "%%25"])
def test_hostile_queries_never_500(env, q):
    r = lib(env.srv, q=q)
    assert r.status == 200, r
    assert isinstance(r.json()["entries"], list)
    assert search_paths(env.srv, "BUCK") == ["films/Big Buck Test.mp4"]


@pytest.mark.parametrize("raw", ["../", "..", "%2e%2e", "%2E%2E/x", "//etc", "sub/../..", "a//b", "x%00"])
@pytest.mark.parametrize("route", ["/api/library?path=", "/api/library?q=abc&path=",
                                   "/api/library/item?path=", "/api/library/thumb?path="])
def test_traversal_is_400(env, route, raw):
    r = get(env.srv, route + raw)
    assert_error(r, 400, "bad_path")
    assert b"root:" not in r.body


def test_missing_is_404(env):
    assert_error(lib(env.srv, path="no-such-folder"), 404, "not_found")
    assert_error(lib(env.srv, path="no-such-folder", q="abc"), 404, "not_found")
    assert_error(lib(env.srv, path="docs/readme.txt"), 404, "not_found")
    assert_error(item(env.srv, "docs/none.txt"), 404, "not_found")
    assert_error(item(env.srv, "nofolder/none.txt"), 404, "not_found")


def test_xss_name_comes_back_as_escaped_json(env):
    name = "<img src=x onerror=alert(1)>.mp4"
    r = http_call(env.srv, "PUT", "/media/xss/" + quote(name, safe=""), headers=env.member.headers, body=b"v")
    assert r.status == 201, r
    for resp in (lib(env.srv, path="xss"), lib(env.srv, q="onerror"), item(env.srv, "xss/" + name)):
        assert resp.status == 200, resp
        assert resp.header("content-type", "").startswith("application/json")
        assert b"<img" not in resp.body and b"\\u003cimg" in resp.body, resp.body[:300]
    assert ok_json(lib(env.srv, path="xss"))["entries"][0]["name"] == name
    assert ok_json(lib(env.srv, q="onerror"))["entries"][0]["path"] == "xss/" + name
    assert ok_json(item(env.srv, "xss/" + name))["name"] == name


# --- files placed and removed by hand ------------------------------------------------------------


def test_hand_placed_file_listed_at_once_and_found_after_a_rescan(env):
    root = env.srv.media_root
    (root / "handmade").mkdir()
    (root / "handmade" / "by-hand.mp4").write_bytes(b"not really a video")
    names = [e["name"] for e in ok_json(lib(env.srv, path="handmade"))["entries"]]
    assert names == ["by-hand.mp4"], "the folder mtime changed: the listing reads it"
    # a deeper folder nobody lists: only the scanner finds it
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "scanner-finds-me.mkv").write_bytes(b"x")
    wait_until(lambda: search_paths(env.srv, "scanner-finds") == ["deep/er/scanner-finds-me.mkv"],
               SCAN_WAIT, "the periodic scan to index a hand-placed file")
    (root / "deep" / "er" / "scanner-finds-me.mkv").unlink()
    wait_until(lambda: search_paths(env.srv, "scanner-finds") == [], SCAN_WAIT,
               "the periodic scan to drop a file removed by hand")
    bad = probed(env.srv, "handmade/by-hand.mp4")
    assert bad["probe_error"] and bad["duration"] is None and bad["thumb"] is None, bad
    assert_error(get(env.srv, "/api/library/thumb?path=handmade/by-hand.mp4"), 404, "no_thumbnail")


@pytest.mark.parametrize("kind", ["hls", "dash", "ffconcat"])
def test_a_playlist_upload_never_makes_ffmpeg_read_outside_the_root(env, tmp_path, kind):
    # ffmpeg picks its demuxer from the content: a playlist named .mp4 would make ffprobe
    # and ffmpeg open the files written inside it, anywhere on the host.
    secret = tmp_path / "private.mp4"
    make_video(secret, seconds=3, size="320x240")
    ts = tmp_path / "private.ts"
    ff("-f", "lavfi", "-i", "testsrc=duration=3:size=320x240:rate=10", "-f", "mpegts", str(ts))
    body = {
        "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:3.0,\nfile:{ts}\n#EXT-X-ENDLIST\n",
        "dash": ('<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" '
                 'type="static" mediaPresentationDuration="PT3S" minBufferTime="PT1S" '
                 'profiles="urn:mpeg:dash:profile:isoff-on-demand:2011"><Period><AdaptationSet>'
                 '<Representation id="1" bandwidth="1000" mimeType="video/mp4" codecs="avc1">'
                 f'<BaseURL>file:{secret}</BaseURL></Representation></AdaptationSet></Period></MPD>'),
        "ffconcat": f"ffconcat version 1.0\nfile {secret}\n",
    }[kind].encode()
    path = f"playlists/{kind}.mp4"
    r = http_call(env.srv, "PUT", "/media/" + path, headers=env.member.headers, body=body)
    assert r.status == 201, r
    it = probed(env.srv, path)
    assert it["duration"] is None and it["width"] is None and it["video_codec"] is None, it
    assert it["probe_error"], it
    assert str(tmp_path) not in it["probe_error"], it
    assert_error(get(env.srv, "/api/library/thumb?path=" + quote(path, safe="")), 404,
                 "no_thumbnail")


def test_move_and_delete_follow_the_index(env):
    data = (env.srv.media_root / "films" / "clip two.mkv").read_bytes()
    for p in ("mvsrc/a.mkv", "mvsrc/sub/b.mkv"):
        assert http_call(env.srv, "PUT", "/media/" + p, headers=env.member.headers, body=data).status == 201
    before = probed(env.srv, "mvsrc/sub/b.mkv")
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.admin.headers,
                  json_body={"from": "mvsrc", "to": "mvdst"})
    assert r.status == 200, r
    assert search_paths(env.srv, ".mkv", path="mvdst") == ["mvdst/a.mkv", "mvdst/sub/b.mkv"]
    assert search_paths(env.srv, "mvsrc") == []
    after = ok_json(item(env.srv, "mvdst/sub/b.mkv"))
    assert after["duration"] == before["duration"] and after["video_codec"] == "mpeg4"
    # the member still owns the moved file
    r = http_call(env.srv, "DELETE", "/media/mvdst/sub/b.mkv", headers=env.member.headers)
    assert r.status == 204, r
    assert search_paths(env.srv, ".mkv", path="mvdst") == ["mvdst/a.mkv"]
    assert_error(item(env.srv, "mvdst/sub/b.mkv"), 404, "not_found")


def test_ownership_sequence(env):
    """Member A uploads; member B may not replace, move or delete it; A and an admin may."""
    a, b, admin = env.member, env.member2, env.admin
    put = lambda who, p, body, q="": http_call(env.srv, "PUT", "/media/" + p + q, headers=who.headers, body=body)
    mv = lambda who, f, t: http_call(env.srv, "POST", "/api/library/move", headers=who.headers,
                                     json_body={"from": f, "to": t})
    rm = lambda who, p: http_call(env.srv, "DELETE", "/media/" + p, headers=who.headers)
    assert put(a, "own/a.bin", b"by a").status == 201
    assert_error(put(b, "own/a.bin", b"by b", "?overwrite=true"), 403, "forbidden")
    assert_error(mv(b, "own/a.bin", "own/b.bin"), 403, "forbidden")
    assert_error(rm(b, "own/a.bin"), 403, "forbidden")
    assert (env.srv.media_root / "own/a.bin").read_bytes() == b"by a"
    assert put(a, "own/a.bin", b"by a, again", "?overwrite=true").status == 201
    assert mv(a, "own/a.bin", "own/a2.bin").status == 200
    assert_error(rm(b, "own/a2.bin"), 403, "forbidden")
    assert rm(a, "own/a2.bin").status == 204
    assert put(a, "own/c.bin", b"c").status == 201
    assert rm(admin, "own/c.bin").status == 204
    (env.srv.media_root / "own" / "hand.bin").write_bytes(b"by hand")
    ok_json(lib(env.srv, path="own"))  # indexed now, with no owner
    assert_error(rm(a, "own/hand.bin"), 403, "forbidden")
    assert_error(put(a, "own/hand.bin", b"x", "?overwrite=true"), 403, "forbidden")
    assert rm(admin, "own/hand.bin").status == 204


# --- the media root goes away ------------------------------------------------------------------


def small_tree(root):
    for rel in ("show/s01e01.mkv", "show/s01e02.mkv", "top.mp3"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 10)


def wait_next_scan(srv, after):
    return wait_until(lambda: (lambda s: s if s["scans"] > after else None)(library_status(srv)[1]),
                      SCAN_WAIT, "the next scan")


@pytest.mark.parametrize("how", ["renamed", "emptied"])
def test_vanished_or_empty_root_keeps_the_index(servers, tmp_path, how):
    root = tmp_path / "media"
    small_tree(root)
    srv = servers.start(root, tls_listen=(), env=SCAN_ENV)
    first = wait_next_scan(srv, 0)
    assert first["indexed"] == 4 and first["warning"] is None, first
    away = tmp_path / "away"
    if how == "renamed":
        root.rename(away)
    else:
        away.mkdir()
        for child in list(root.iterdir()):
            child.rename(away / child.name)
    r = lib(srv, path="")
    assert r.status in (503, 404), r
    if how == "emptied":
        assert_error(r, 503, "storage_unavailable", mentions="mounted")
    st = wait_next_scan(srv, first["scans"])
    assert st["indexed"] == 4, st
    assert "index kept" in st["warning"], st
    if how == "emptied":
        # the root is there (empty): the kept index still answers searches
        assert search_paths(srv, "s01e") == ["show/s01e01.mkv", "show/s01e02.mkv"]
    if how == "renamed":
        away.rename(root)
    else:
        for child in list(away.iterdir()):
            child.rename(root / child.name)
    assert search_paths(srv, "s01e") == ["show/s01e01.mkv", "show/s01e02.mkv"]
    assert sorted(e["name"] for e in ok_json(lib(srv, path=""))["entries"]) == ["show", "top.mp3"]
    st = wait_next_scan(srv, st["scans"])
    assert st["warning"] is None and st["indexed"] == 4, st


# --- no ffmpeg ---------------------------------------------------------------------------------


def test_without_ffmpeg_everything_else_works(servers, tmp_path, media_tree):
    root = tmp_path / "media"
    shutil.copytree(media_tree / "films", root / "films")
    srv = servers.start(root, tls_listen=(), env=dict(SCAN_ENV, STREAMHUB_LIBRARY_FFPROBE="/nonexistent/ffprobe",
                                                      STREAMHUB_LIBRARY_FFMPEG="/nonexistent/ffmpeg"))
    status, st = library_status(srv)
    assert status == 200, st  # ready at once: the tools are checked in the background
    assert get(srv, "/readyz").json()["status"] == "ready"
    st = wait_until(lambda: (lambda st: st if st["ffprobe"] is not None else None)(library_status(srv)[1]),
                    SCAN_WAIT, "the ffprobe/ffmpeg check")
    assert st["ffprobe"] is False and st["ffmpeg"] is False and "ffmpeg not installed" in st["message"]
    e = {x["name"]: x for x in ok_json(lib(srv, path="films"))["entries"]}["Big Buck Test.mp4"]
    assert e["media"] == "video" and e["duration"] is None and e["thumb"] is None
    assert search_paths(srv, "buck") == ["films/Big Buck Test.mp4"]
    r = get(srv, "/api/library/thumb?path=films/Big%20Buck%20Test.mp4")
    assert_error(r, 404, "no_thumbnail", mentions="ffmpeg")
    wait_next_scan(srv, 0)
    assert ok_json(item(srv, "films/Big Buck Test.mp4"))["probed"] is False


# --- kill -9 -----------------------------------------------------------------------------------


def test_kill9_after_and_during_uploads_index_matches_disk(servers, tmp_path):
    root, data = tmp_path / "media", tmp_path / "data"
    small_tree(root)
    srv = servers.start(root, data_dir=data, tls_listen=(), env=SCAN_ENV)
    e = AuthEnv(srv, second_member=False)
    r = http_call(srv, "PUT", "/media/k9/done.bin", headers=e.member.headers, body=b"d" * 5000)
    assert r.status == 201, r
    # an upload cut off half way, then the process killed
    s = socket.create_connection(("127.0.0.1", srv.port))
    head = (f"PUT /media/k9/partial.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
            f"Authorization: {e.member.headers['Authorization']}\r\n\r\n").encode()
    s.sendall(head + b"p" * 300_000)
    staging = root / ".streamhub-staging"
    wait_until(lambda: staging.exists() and any(p.is_file() for p in staging.rglob("*")), 10,
               "a staging file")
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=10)
    s.close()
    srv2 = servers.start(root, data_dir=data, tls_listen=(), env=SCAN_ENV, name="after-kill")
    wait_next_scan(srv2, 0)
    on_disk = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                     if p.is_file() and not any(x.startswith(".streamhub") for x in p.parts))
    indexed = sorted(x["path"] for x in ok_json(lib(srv2, q="e", per_page=1000, type="other"))["entries"]
                     + ok_json(lib(srv2, q="e", per_page=1000, type="video"))["entries"]
                     + ok_json(lib(srv2, q="p", per_page=1000, type="audio"))["entries"])
    assert indexed == on_disk == ["k9/done.bin", "show/s01e01.mkv", "show/s01e02.mkv", "top.mp3"]
    assert search_paths(srv2, "partial") == [] and search_paths(srv2, "streamhub") == []
    assert ok_json(item(srv2, "k9/done.bin"))["size"] == 5000
    assert_error(item(srv2, "k9/partial.bin"), 404, "not_found")


# --- concurrent writers ------------------------------------------------------------------------


def test_reads_never_500_while_the_scanner_and_uploads_write(servers, tmp_path):
    """A folder listing or item read refreshes a changed folder (a write) while the scanner,
    nudged by every upload, commits on its own connection. Seen once in CI as a 500 "database
    is locked"; every read must answer 200 and every upload 201 for the whole run."""
    root = tmp_path / "media"
    small_tree(root)
    hand = root / "race"
    hand.mkdir()
    srv = servers.start(root, tls_listen=(), env=SCAN_ENV)
    e = AuthEnv(srv, second_member=False)
    stop = time.monotonic() + 15
    bad, counts = [], {"put": 0, "read": 0}

    def uploader(who):
        i = 0
        while time.monotonic() < stop:
            r = http_call(srv, "PUT", f"/media/race/up-{who}-{i}.mp4", headers=e.member.headers,
                          body=b"u" * 100)
            if r.status != 201:
                bad.append(("PUT", i, r.status, r.body[:200]))
            i += 1
            counts["put"] += 1

    def reader():
        i = 0
        while time.monotonic() < stop:
            (hand / f"hand-{i}.mp4").write_bytes(b"h")  # the folder's mtime changes
            for r in (lib(srv, path="race"), item(srv, f"race/hand-{i}.mp4"), lib(srv, q="hand")):
                if r.status != 200:
                    bad.append(("read", i, r.status, r.body[:200]))
                counts["read"] += 1
            i += 1

    threads = [threading.Thread(target=uploader, args=(w,)) for w in "ab"]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts["put"] > 20 and counts["read"] > 20, counts
    assert bad == [], bad[:5]


def test_probe_errors_never_name_the_media_root(env):
    """Issue 12: anonymous readers saw the media root's absolute path in `probe_error`. Files
    ffprobe cannot read give a generic message, in the listing and in the item."""
    root = env.srv.media_root
    (root / "unreadable").mkdir()
    bodies = {"garbage.mp4": b"not really a video", "empty.mkv": b"",
              "cut.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(100), "noise.flac": b"fLaC" + bytes(50)}
    for name, body in bodies.items():
        (root / "unreadable" / name).write_bytes(body)
    for name in bodies:
        it = probed(env.srv, f"unreadable/{name}")
        assert it["probe_error"], it
        for leak in (str(root), str(root.resolve()), "/dev/stdin", "file:"):
            assert leak not in it["probe_error"], it
    r = lib(env.srv, path="unreadable")  # anonymous
    assert len(ok_json(r)["entries"]) == len(bodies)
    assert str(root).encode() not in r.body and str(root.resolve()).encode() not in r.body, r.body
