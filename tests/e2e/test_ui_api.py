"""The JSON endpoints the web UI needs (issue 16): /api/info, PATCH /api/users/{name},
/api/storage, /api/config, resume positions, subtitles as WebVTT and notes as sanitised HTML.

The main server runs with `auth.anonymous_read = false` (so "anonymous" means 401 wherever
a login is needed); a second one with the defaults checks the open-reading side.
"""

import json
import os
import re
import time
import urllib.parse

import pytest

from conftest import (
    ANON,
    AUTH_PW,
    AuthEnv,
    assert_error,
    auth_config,
    http_call,
    login,
    must_login,
    new_token,
    start_auth_server,
    user_cli,
    wait_setup_token,
)

SRT_UTF8 = (
    "\ufeff1\r\n00:00:01,600 --> 00:00:04,200\r\n<i>Hello</i> world\r\n\r\n"
    "2\r\n00:00:05,000 --> 00:00:06,000\r\nsecond\r\n"
).encode("utf-8")
# Windows-1252: "Crème brûlée – €5" with no blank line before the second cue.
SRT_1252 = (
    b"1\n00:00:01,000 --> 00:00:02,000\nCr\xe8me br\xfbl\xe9e \x96 \x805\n"
    b"2\n00:00:03,000 --> 00:00:04,000\nfin\n"
)
VTT = b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"

MEDIA = {
    "films/movie.mkv": b"\x1a\x45\xdf\xa3" + bytes(200),
    "films/movie.srt": SRT_UTF8,
    "films/movie.fr.srt": SRT_1252,
    "films/movie.en.vtt": VTT,
    "films/movie.pt-BR.srt": SRT_UTF8,
    "films/moviex.srt": SRT_UTF8,  # another stem: not a track of movie.mkv
    "films/other.srt": SRT_UTF8,
    "films/bad.mkv": bytes(10),
    "films/bad.vtt": b"1\n00:00:01,000 --> 00:00:02,000\nnot webvtt\n",
    "films/huge.mkv": bytes(10),
    "films/huge.srt": b"",  # written large below
    "music/song.mp3": bytes(64),
}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("uiapi") / "media"
    for rel, data in MEDIA.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    with open(root / "films/huge.srt", "wb") as f:
        f.truncate(5 * 1024 * 1024 + 1)
    return root


@pytest.fixture(scope="module")
def srv(module_servers, media):
    return start_auth_server(module_servers, media, name="uiapi", anonymous_read=False,
                             login_max_failures=200)


@pytest.fixture(scope="module")
def env(srv):
    # /api/info answers before the first admin exists, and says setup is needed.
    r = http_call(srv, "GET", "/api/info")
    assert r.status == 200, r
    assert r.json()["setup_required"] is True
    token = wait_setup_token(srv)
    assert token not in r.body.decode()
    return AuthEnv(srv)


def get(env, path, cred):
    return http_call(env.srv, "GET", path, headers=cred.headers)


def q(path):
    return urllib.parse.quote(path, safe="")


# --- /api/info -----------------------------------------------------------------------------

def test_info_needs_no_login_and_tells_the_limits(env):
    r = http_call(env.srv, "GET", "/api/info")
    assert r.status == 200, r
    info = r.json()
    assert info["setup_required"] is False  # the admin exists now
    assert info["anonymous_read"] is False
    assert info["tus_endpoint"] == "/api/tus/"
    assert info["max_upload_bytes"] == 68719476736
    assert info["trash_days"] == 30
    assert info["trash"] is True  # a local disk has a trash (S3: false, test_s3_state)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", info["version"]), info
    assert info["name"] == os.uname().nodename
    assert set(info) == {"name", "version", "setup_required", "anonymous_read",
                         "max_upload_bytes", "tus_endpoint", "trash_days", "trash", "user",
                         "lan_peers"}
    assert info["user"] is None and info["lan_peers"] is False
    # Logged in, it says who the caller is, as /api/me does.
    me = get(env, "/api/me", env.member).json()
    assert get(env, "/api/info", env.member).json()["user"] == me


# --- PATCH /api/users/{name} ---------------------------------------------------------------

def users(env):
    r = get(env, "/api/users", env.admin)
    assert r.status == 200, r
    return {u["name"]: u for u in r.json()["users"]}


def patch_user(env, cred, name, body):
    return http_call(env.srv, "PATCH", f"/api/users/{name}", headers=cred.headers, json_body=body)


def test_admins_change_roles_and_the_last_admin_stays(env):
    r = patch_user(env, env.admin, "max", {"role": "admin"})
    assert r.status == 200, r
    assert r.json() == users(env)["max"]
    assert r.json()["role"] == "admin"
    # max is an admin now: his token may list users.
    assert get(env, "/api/users", env.member2).status == 200
    r = patch_user(env, env.admin_s, "max", {"role": "member"})  # session + CSRF
    assert r.status == 200 and r.json()["role"] == "member", r
    assert_error(get(env, "/api/users", env.member2), 403, "forbidden")
    # root is the only admin: no demotion, and it is still admin.
    assert_error(patch_user(env, env.admin, "root", {"role": "member"}), 409, "last_admin")
    assert users(env)["root"]["role"] == "admin"
    assert_error(http_call(env.srv, "DELETE", "/api/users/root", headers=env.admin.headers),
                 409, "last_admin")


def test_who_may_change_whom(env):
    assert_error(patch_user(env, ANON, "mia", {"role": "admin"}), 401)
    assert_error(patch_user(env, env.member, "mia", {"role": "admin"}), 403, "forbidden")
    assert_error(patch_user(env, env.member, "max", {"password": "new password 1"}), 403)
    assert_error(patch_user(env, env.member, "root", {"role": "member"}), 403)
    assert users(env)["mia"]["role"] == "member"
    # A session without its CSRF header is refused before anything happens.
    no_csrf = {"Cookie": env.member_s.headers["Cookie"]}
    r = http_call(env.srv, "PATCH", "/api/users/mia", headers=no_csrf,
                  json_body={"password": "x" * 10, "current_password": AUTH_PW})
    assert_error(r, 403, "csrf")
    assert_error(patch_user(env, env.admin, "mia", {"role": "king"}), 422, "invalid")
    assert_error(patch_user(env, env.admin, "mia", {"nick": "x"}), 422, "invalid")
    assert_error(patch_user(env, env.admin, "mia", {}), 422, "invalid")
    assert_error(patch_user(env, env.admin, "mia", {"password": "short"}), 422, "invalid",
                 mentions="password")
    assert_error(patch_user(env, env.admin, "nobody", {"role": "admin"}), 404, "not_found")


def test_an_admin_reset_ends_the_users_sessions_but_not_tokens(env, module_servers, media):
    srv = env.srv
    r = http_call(srv, "POST", "/api/users", headers=env.admin.headers,
                  json_body={"name": "rita", "password": AUTH_PW, "role": "member"})
    assert r.status == 201, r
    s1, s2 = must_login(srv, "rita", AUTH_PW), must_login(srv, "rita", AUTH_PW)
    tok = new_token(srv, s1, "rita-script")
    admin_session_before = get(env, "/api/me", env.admin_s)
    assert admin_session_before.status == 200
    r = patch_user(env, env.admin, "rita", {"password": "brand new password"})
    assert r.status == 200 and r.json()["name"] == "rita", r
    for s in (s1, s2):
        assert_error(get(env, "/api/me", s), 401)
    assert get(env, "/api/me", tok).json()["name"] == "rita"
    assert login(srv, "rita", AUTH_PW)[0].status == 401
    assert must_login(srv, "rita", "brand new password")
    assert get(env, "/api/me", env.admin_s).status == 200  # others' sessions stay


def test_a_member_changes_their_own_password_with_the_current_one(env):
    srv = env.srv
    r = http_call(srv, "POST", "/api/users", headers=env.admin.headers,
                  json_body={"name": "otto", "password": AUTH_PW, "role": "member"})
    assert r.status == 201, r
    mine, other = must_login(srv, "otto", AUTH_PW), must_login(srv, "otto", AUTH_PW)
    r = patch_user(env, mine, "otto", {"password": "another password"})
    assert_error(r, 422, "invalid", mentions="current_password")
    r = patch_user(env, mine, "otto", {"password": "another password",
                                        "current_password": "wrong password"})
    assert_error(r, 403, "wrong_password")
    r = patch_user(env, mine, "otto", {"password": "another password", "current_password": AUTH_PW,
                                        "role": "admin"})
    assert_error(r, 403, "forbidden")
    assert get(env, "/api/me", other).status == 200  # nothing changed so far
    r = patch_user(env, mine, "otto", {"password": "another password", "current_password": AUTH_PW})
    assert r.status == 200 and r.json()["role"] == "member", r
    assert get(env, "/api/me", mine).status == 200, "the session that changed it is kept"
    assert_error(get(env, "/api/me", other), 401)
    assert login(srv, "otto", AUTH_PW)[0].status == 401
    must_login(srv, "otto", "another password")


def test_wrong_current_passwords_are_rate_limited(module_servers, media):
    srv = start_auth_server(module_servers, media, name="uiapi-limit", login_max_failures=3,
                            login_lockout_secs=60)
    env = AuthEnv(srv, second_member=False)
    codes = []
    for _ in range(5):
        r = patch_user(env, env.member, "mia", {"password": "another password",
                                                 "current_password": "not it at all"})
        codes.append(r.status)
    assert codes[:3] == [403, 403, 403], codes
    assert codes[3:] == [429, 429], codes
    # Locked: even the right password waits.
    r = patch_user(env, env.member, "mia", {"password": "another password",
                                             "current_password": AUTH_PW})
    assert_error(r, 429, "too_many_attempts")


def test_user_role_cli_keeps_the_last_admin(env):
    r = user_cli(env.srv.data_dir, "role", "mia", "admin")
    assert r.returncode == 0, r
    assert "mia is now admin" in r.stdout
    assert users(env)["mia"]["role"] == "admin"
    r = user_cli(env.srv.data_dir, "role", "mia", "member")
    assert r.returncode == 0, r
    r = user_cli(env.srv.data_dir, "role", "root", "member")
    assert r.returncode == 1 and "last admin" in r.stderr, r
    r = user_cli(env.srv.data_dir, "role", "mia", "king")
    assert r.returncode == 2, r
    assert users(env)["root"]["role"] == "admin"


# --- /api/storage and /api/config -----------------------------------------------------------

def test_storage_state_of_a_real_folder(env, media):
    assert_error(get(env, "/api/storage", ANON), 401)
    r = get(env, "/api/storage", env.member)
    assert r.status == 200, r
    s = r.json()
    assert s["backend"] == "local" and s["healthy"] is True and s["error"] is None, s
    assert "media_root" not in s
    st = os.statvfs(media)
    assert s["total_bytes"] == st.f_blocks * st.f_frsize
    assert abs(s["free_bytes"] - st.f_bavail * st.f_frsize) < 256 * 1024 * 1024
    assert 0 < s["free_bytes"] <= s["total_bytes"]
    assert s["library"]["files"] >= len(MEDIA) and s["library"]["bytes"] > 5 * 1024 * 1024
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["library"]["last_scan"]), s
    a = get(env, "/api/storage", env.admin).json()
    assert a["media_root"] == os.path.realpath(media) or a["media_root"] == str(media), a
    # A delete shows in the trash totals.
    before = a["trash"]
    r = http_call(env.srv, "PUT", "/media/music/gone.bin", headers=env.member.headers,
                  body=b"z" * 1000)
    assert r.status == 201, r
    r = http_call(env.srv, "DELETE", "/media/music/gone.bin", headers=env.member.headers)
    assert r.status == 204, r
    after = get(env, "/api/storage", env.member).json()["trash"]
    assert after == {"entries": before["entries"] + 1, "bytes": before["bytes"] + 1000}


def test_storage_says_unhealthy_when_the_disk_is_gone(module_servers, tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    srv = start_auth_server(module_servers, root, name="uiapi-disk")
    env = AuthEnv(srv, second_member=False)
    assert get(env, "/api/storage", env.member).json()["healthy"] is True
    marker = root / ".streamhub-root"
    marker.rename(tmp_path / "marker.bak")  # what an unmounted disk looks like
    try:
        s = get(env, "/api/storage", env.member).json()
        assert s["healthy"] is False and s["error"], s
        assert s["free_bytes"] is None and s["total_bytes"] is None
        assert "media_root" in get(env, "/api/storage", env.admin).json()
    finally:
        (tmp_path / "marker.bak").rename(marker)
    assert get(env, "/api/storage", env.member).json()["healthy"] is True


def test_config_is_for_admins_and_secrets_are_redacted(env):
    assert_error(get(env, "/api/config", ANON), 401)
    assert_error(get(env, "/api/config", env.member), 403, "forbidden")
    r = get(env, "/api/config", env.admin_s)
    assert r.status == 200, r
    c = r.json()
    assert set(c) == {"config", "redacted"}
    cfg = c["config"]
    assert cfg["auth"]["anonymous_read"] is False
    assert cfg["auth"]["login_max_failures"] == 200
    assert cfg["storage"]["trash_days"] == 30
    assert {"server", "storage", "streaming", "uploads", "library", "notes", "auth",
            "log"} <= set(cfg)
    # Nothing secret-looking is shown in clear.
    def walk(v, key=""):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{key}.{k}" if key else k)
        elif any(w in key.rsplit(".", 1)[-1] for w in ("secret", "password", "token",
                                                        "cluster_key")):
            assert v in ("", None, "<redacted>", []), (key, v)
            if v == "<redacted>":
                assert key in c["redacted"]
    walk(cfg)
    assert wait_setup_token(env.srv) not in r.body.decode()


# --- resume positions -----------------------------------------------------------------------

def put_pos(env, cred, path, position, duration=None):
    body = {"path": path, "position": position}
    if duration is not None:
        body["duration"] = duration
    return http_call(env.srv, "PUT", "/api/positions", headers=cred.headers, json_body=body)


def test_positions_round_trip_per_user(env):
    assert_error(put_pos(env, ANON, "films/movie.mkv", 1), 401)
    assert_error(get(env, "/api/positions", ANON), 401)
    r = put_pos(env, env.member_s, "films/movie.mkv", 42.5, 3600)
    assert r.status == 204, r
    assert put_pos(env, env.member, "/music/song.mp3", 3, None).status == 204
    r = get(env, "/api/positions?path=" + q("films/movie.mkv"), env.member)
    assert r.status == 200, r
    p = r.json()
    assert (p["path"], p["position"], p["duration"]) == ("films/movie.mkv", 42.5, 3600)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", p["updated_at"]), p
    items = get(env, "/api/positions", env.member).json()["items"]
    assert [i["path"] for i in items][:2] == ["music/song.mp3", "films/movie.mkv"]
    assert items[0]["duration"] is None
    # Another user sees none of it.
    assert_unsaved(get(env, "/api/positions?path=" + q("films/movie.mkv"), env.member2),
                   "films/movie.mkv")
    assert all(i["path"] != "films/movie.mkv"
               for i in get(env, "/api/positions", env.member2).json()["items"])
    # Saving again moves it first; near the end it is finished and gone.
    assert put_pos(env, env.member, "films/movie.mkv", 60, 3600).status == 204
    assert get(env, "/api/positions", env.member).json()["items"][0]["position"] == 60
    assert put_pos(env, env.member, "films/movie.mkv", 3590, 3600).status == 204
    assert_unsaved(get(env, "/api/positions?path=films/movie.mkv", env.member), "films/movie.mkv")


def assert_unsaved(r, path):
    """No position saved: 200 with nulls (a file never played starts at the beginning)."""
    assert r.status == 200, r
    assert r.json() == {"path": path, "position": None, "duration": None, "updated_at": None}


def test_positions_refuse_bad_values(env):
    for body, status, code in [
        ({"path": "films/movie.mkv", "position": -1}, 422, "invalid"),
        ({"path": "films/movie.mkv", "position": 1, "duration": 0}, 422, "invalid"),
        ({"path": "films/movie.mkv", "position": "1"}, 422, "invalid"),
        ({"path": "films/movie.mkv"}, 422, "invalid"),
        ({"path": "films/movie.mkv", "position": 1, "extra": 1}, 422, "invalid"),
        ({"path": "../etc/passwd", "position": 1}, 400, "bad_path"),
        ({"path": "", "position": 1}, 400, "bad_path"),
    ]:
        r = http_call(env.srv, "PUT", "/api/positions", headers=env.member.headers, json_body=body)
        assert_error(r, status, code)
    r = http_call(env.srv, "PUT", "/api/positions",
                  headers={**env.member.headers, "Content-Type": "application/json"},
                  body=b'{"path":"a.mkv","position":1e999}')
    assert r.status in (400, 422), r
    assert_error(get(env, "/api/positions?path=a&x=1", env.member), 400, "bad_query")


def test_positions_follow_moves_and_the_trash(env):
    srv = env.srv
    r = http_call(srv, "PUT", "/media/clips/walk.webm", headers=env.member.headers, body=b"w" * 50)
    assert r.status == 201, r
    assert put_pos(env, env.member, "clips/walk.webm", 12, 100).status == 204
    r = http_call(srv, "POST", "/api/library/move", headers=env.member.headers,
                  json_body={"from": "clips", "to": "clips2"})
    assert r.status == 200, r
    assert get(env, "/api/positions?path=clips2/walk.webm", env.member).json()["position"] == 12
    assert_unsaved(get(env, "/api/positions?path=clips/walk.webm", env.member), "clips/walk.webm")
    r = http_call(srv, "DELETE", "/media/clips2?recursive=true", headers=env.member.headers)
    assert r.status == 204, r
    trash_id = r.header("x-trash-id")
    assert all("walk" not in i["path"]
               for i in get(env, "/api/positions", env.member).json()["items"])
    assert_unsaved(get(env, "/api/positions?path=clips2/walk.webm", env.member), "clips2/walk.webm")
    r = http_call(srv, "POST", f"/api/trash/{trash_id}/restore", headers=env.member.headers)
    assert r.status == 200, r
    assert get(env, "/api/positions?path=clips2/walk.webm", env.member).json()["position"] == 12
    r = http_call(srv, "DELETE", "/media/clips2?recursive=true&permanent=true",
                  headers=env.member.headers)
    assert r.status == 204, r
    r = http_call(srv, "PUT", "/media/clips2/walk.webm", headers=env.member.headers, body=b"new")
    assert r.status == 201, r
    assert_unsaved(get(env, "/api/positions?path=clips2/walk.webm", env.member), "clips2/walk.webm")


# --- subtitles ------------------------------------------------------------------------------

def test_subtitle_tracks_beside_a_video(env, media):
    assert_error(get(env, "/api/library/subtitles?path=films/movie.mkv", ANON), 401)
    r = get(env, "/api/library/subtitles?path=" + q("/films/movie.mkv"), env.member)
    assert r.status == 200, r
    tracks = r.json()["tracks"]
    by_path = {t["path"]: t for t in tracks}
    assert set(by_path) == {"films/movie.srt", "films/movie.fr.srt", "films/movie.en.vtt",
                            "films/movie.pt-BR.srt"}
    assert by_path["films/movie.srt"] == {
        "path": "films/movie.srt", "label": "movie", "lang": None, "format": "srt",
        "url": "/api/library/vtt?path=films/movie.srt"}
    assert by_path["films/movie.pt-BR.srt"]["lang"] == "pt-BR"
    assert by_path["films/movie.en.vtt"]["format"] == "vtt"
    # A file copied in a moment ago shows at once (the folder is read, not the index).
    (media / "films/movie.de.srt").write_bytes(SRT_UTF8)
    tracks = get(env, "/api/library/subtitles?path=films/movie.mkv", env.member).json()["tracks"]
    assert "films/movie.de.srt" in [t["path"] for t in tracks]
    # bad.vtt is bad.mkv's track (serving it says what is wrong with it); music has none.
    assert [t["path"] for t in get(env, "/api/library/subtitles?path=films/bad.mkv",
                                    env.member).json()["tracks"]] == ["films/bad.vtt"]
    assert get(env, "/api/library/subtitles?path=music/song.mp3", env.member).json() == {
        "tracks": []}
    assert_error(get(env, "/api/library/subtitles?path=films/none.mkv", env.member), 404)
    assert_error(get(env, "/api/library/subtitles?path=nodir/none.mkv", env.member), 404)
    assert_error(get(env, "/api/library/subtitles?path=../x.mkv", env.member), 400, "bad_path")


def vtt_of(env, path, cred=None):
    return get(env, "/api/library/vtt?path=" + q(path), cred or env.member)


def test_srt_is_served_as_webvtt(env):
    r = vtt_of(env, "films/movie.srt")
    assert r.status == 200, r
    assert r.header("content-type") == "text/vtt; charset=utf-8"
    assert r.body.decode("utf-8") == (
        "WEBVTT\n\n1\n00:00:01.600 --> 00:00:04.200\n<i>Hello</i> world\n\n"
        "2\n00:00:05.000 --> 00:00:06.000\nsecond\n")
    r = vtt_of(env, "films/movie.fr.srt")
    assert r.status == 200, r
    assert r.body.decode("utf-8") == (
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nCrème brûlée – €5\n\n"
        "2\n00:00:03.000 --> 00:00:04.000\nfin\n")
    # The URL a track listing gives works as is.
    tracks = get(env, "/api/library/subtitles?path=films/movie.mkv", env.member).json()["tracks"]
    url = next(t["url"] for t in tracks if t["path"] == "films/movie.pt-BR.srt")
    assert http_call(env.srv, "GET", url, headers=env.member.headers).body.startswith(b"WEBVTT")


def test_vtt_passes_through_and_bad_files_are_refused(env):
    r = vtt_of(env, "films/movie.en.vtt")
    assert r.status == 200 and r.body == VTT, r
    assert_error(vtt_of(env, "films/bad.vtt"), 422, "bad_subtitles")
    assert_error(vtt_of(env, "films/movie.mkv"), 422, "bad_subtitles")
    assert_error(vtt_of(env, "films/huge.srt"), 413, "too_large")
    assert_error(vtt_of(env, "films/nothing.srt"), 404, "not_found")
    assert_error(vtt_of(env, "films/movie.srt", ANON), 401)


def test_anonymous_reading_follows_anonymous_read(module_servers, media):
    srv = start_auth_server(module_servers, media, name="uiapi-open")
    r = http_call(srv, "GET", "/api/library/vtt?path=films/movie.srt")
    assert r.status == 200 and r.body.startswith(b"WEBVTT"), r
    r = http_call(srv, "GET", "/api/library/subtitles?path=films/movie.mkv")
    assert r.status == 200 and r.json()["tracks"], r
    assert http_call(srv, "GET", "/api/info").json()["anonymous_read"] is True
    # Positions and storage are per user: still 401.
    assert_error(http_call(srv, "GET", "/api/positions"), 401)
    assert_error(http_call(srv, "GET", "/api/storage"), 401)


# --- notes as HTML --------------------------------------------------------------------------

XSS = [
    ("<script>alert(1)</script>", "&lt;script&gt;"),
    ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
    ("[x](javascript:alert(1))", "<p>x</p>"),
    ("[x](JaVaScRiPt:alert(1))", "<p>x</p>"),
    ("[x](&#106;avascript:alert(1))", "<p>x</p>"),
    ("[x](java&#x09;script:alert(1))", "<p>x</p>"),
    ("[x](data:text/html,<script>alert(1)</script>)", None),
    ("[x](vbscript:msgbox(1))", "<p>x</p>"),
    ("[x][r]\n\n[r]: javascript:alert(1)", "<p>x</p>"),
    ("<javascript:alert(1)>", "<p>javascript:alert(1)</p>"),
    ("![p](javascript:alert(1))", "<p>p</p>"),
    ("`<b>x</b>`", "<code>&lt;b&gt;x&lt;/b&gt;</code>"),
    ("<a href=\"javascript:alert(1)\">x</a>", "&lt;a href="),
    ("<svg/onload=alert(1)>", "&lt;svg/onload=alert(1)&gt;"),
]


def assert_no_active_html(html):
    low = html.lower()
    assert "<script" not in low and "javascript:" not in re.sub(r">[^<]*<", "><", low), html
    for m in re.finditer(r"<([a-z0-9]+)([^>]*)>", low):
        assert " on" not in m.group(2), html
        assert m.group(1) in {"p", "a", "img", "code", "pre", "em", "strong", "del", "h1",
                              "h2", "ul", "ol", "li", "blockquote", "br", "hr", "table", "thead",
                              "tbody", "tr", "th", "td", "input"}, html
        for url in re.findall(r'(?:href|src)="([^"]*)"', m.group(2)):
            assert re.match(r"(https?:|mailto:|[^:]*$)", url), html


def render(env, body, cred=None):
    return http_call(env.srv, "POST", "/api/notes/render", headers=(cred or env.member).headers,
                     json_body={"body": body})


def test_markdown_preview_is_sanitised(env):
    for md, expect in XSS:
        r = render(env, md)
        assert r.status == 200, r
        html = r.json()["html"]
        assert_no_active_html(html)
        if expect:
            assert expect in html, (md, html)
    r = render(env, "# Hi\n\n| a |\n|---|\n| b |\n\n- [x] done\n\n~~old~~ [ok](https://e.x/)")
    html = r.json()["html"]
    assert "<h1>Hi</h1>" in html and "<td>b</td>" in html and "<del>old</del>" in html
    assert 'checked' in html
    assert '<a href="https://e.x/" rel="noopener noreferrer nofollow">ok</a>' in html
    assert b"<" not in r.body, "JSON escapes < > & as \\u00XX"
    # Session callers need the CSRF header, as for every change.
    r = render(env, "x", env.member_s)
    assert r.status == 200, r
    no_csrf = {"Cookie": env.member_s.headers["Cookie"]}
    r = http_call(env.srv, "POST", "/api/notes/render", headers=no_csrf, json_body={"body": "x"})
    assert_error(r, 403, "csrf")
    assert_error(render(env, "x", ANON), 401)
    assert_error(render(env, "x" * (1024 * 1024 + 1)), 413, "too_large")
    assert_error(http_call(env.srv, "POST", "/api/notes/render", headers=env.member.headers,
                           json_body={"text": "x"}), 422, "invalid")


def test_note_html_has_the_read_rules_of_the_note(env):
    body = "**bold** <script>alert(1)</script> [x](javascript:alert(1))"
    r = http_call(env.srv, "POST", "/api/notes", headers=env.member.headers,
                  json_body={"title": "t", "body": body, "visibility": "private"})
    assert r.status == 201, r
    nid = r.json()["id"]
    r = get(env, f"/api/notes/{nid}/html", env.member)
    assert r.status == 200, r
    j = r.json()
    assert j["id"] == nid
    assert j["html"] == ("<p><strong>bold</strong> &lt;script&gt;alert(1)&lt;/script&gt; x</p>\n")
    # Private: the owner's alone, exactly like GET /api/notes/{id}.
    for cred, status in [(env.member2, 404), (env.admin, 404), (ANON, 401)]:
        assert get(env, f"/api/notes/{nid}", cred).status == status
        assert_error(get(env, f"/api/notes/{nid}/html", cred), status)
    assert_error(get(env, "/api/notes/nope/html", env.member), 404, "not_found")
    r = http_call(env.srv, "POST", "/api/notes", headers=env.member.headers,
                  json_body={"title": "pub", "body": "# Public", "visibility": "public"})
    pid = r.json()["id"]
    assert get(env, f"/api/notes/{pid}/html", env.member2).json()["html"] == "<h1>Public</h1>\n"


# --- library entries say what is the caller's --------------------------------------------------

def test_entries_say_whether_they_are_the_callers(env):
    srv = env.srv
    r = http_call(srv, "PUT", "/media/mine/a.txt", headers=env.member.headers, body=b"a")
    assert r.status == 201, r
    for cred, expect in ((env.member, True), (env.member2, False)):
        entries = get(env, "/api/library?path=mine", cred).json()["entries"]
        assert [(e["name"], e["yours"]) for e in entries] == [("a.txt", expect)]
        assert get(env, "/api/library/item?path=mine/a.txt", cred).json()["yours"] is expect
        # The folder an upload made on the way is the uploader's too.
        top = {e["name"]: e for e in get(env, "/api/library?path=/", cred).json()["entries"]}
        assert top["mine"]["yours"] is expect
    # What is placed by hand is nobody's (not even an admin's own): admins may change it anyway.
    (srv.media_root / "mine" / "by-hand.txt").write_bytes(b"h")
    r = http_call(srv, "POST", "/api/library/rescan", headers=env.admin.headers)
    assert r.status == 202, r
    deadline = time.monotonic() + 20
    while True:
        entries = {e["name"]: e for e in get(env, "/api/library?path=mine", env.admin).json()["entries"]}
        if "by-hand.txt" in entries:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert entries["by-hand.txt"]["yours"] is False


def test_hostile_markdown_costs_little_even_for_many_anonymous_readers(module_servers, media):
    """A public note of 1 MiB of `>` (a million nested quotes) read by 16 anonymous clients
    at once: each answer stays a few times the note's size and the server's memory stays
    bounded (renders run two at a time)."""
    import concurrent.futures

    from conftest import rss_kib

    srv = start_auth_server(module_servers, media, name="uiapi-md", login_max_failures=100)
    env = AuthEnv(srv, second_member=False)
    body = ">" * (1 << 20)
    r = http_call(srv, "POST", "/api/notes", headers=env.member.headers,
                  json_body={"title": "quotes", "body": body, "visibility": "public"})
    assert r.status == 201, r
    nid = r.json()["id"]
    before = rss_kib(srv.proc.pid)
    start = time.monotonic()

    def read(_):
        return http_call(srv, "GET", f"/api/notes/{nid}/html", timeout=120)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(read, range(16)))
    elapsed = time.monotonic() - start
    for a in answers:
        assert a.status == 200, a
        html = a.json()["html"]
        assert len(html) < 8 * len(body), len(html)
        assert html.count("<blockquote>") <= 32
        # The JSON writes `&` as \u0026: `&gt;` is 9 bytes on the wire.
        assert len(a.body) < 10 * len(body), len(a.body)
    grown = rss_kib(srv.proc.pid) - before
    print(f"16 reads of a hostile 1 MiB note: {elapsed:.1f} s, RSS grew {grown} KiB")
    assert grown < 200 * 1024, grown


def test_user_names_of_only_dots_are_refused(env):
    # `.` and `..` would vanish from every URL naming the user (PATCH, DELETE).
    for name in (".", "..", "..."):
        r = http_call(env.srv, "POST", "/api/users", headers=env.admin.headers,
                      json_body={"name": name, "password": AUTH_PW, "role": "member"})
        assert_error(r, 422, "invalid")
    r = http_call(env.srv, "POST", "/api/users", headers=env.admin.headers,
                  json_body={"name": "a.b", "password": AUTH_PW, "role": "member"})
    assert r.status == 201, r
