"""Share links people can send (issue 14).

- The link is a full URL: `server.public_url` when set, else the scheme and host the sharer
  used. A leading `/` in `path` is the media root.
- A file renamed or moved through streamhub keeps its link (so does everything in a moved
  folder).
- Folders can be shared: the link lists the folder (read-only) and serves the files under it,
  and nothing outside it — not through `..`, not through a link placed inside it.
"""

import os
from urllib.parse import quote, urlparse

import pytest

from conftest import AuthEnv, assert_error, curl_fetch, http_call

SECRET = b"outside the shared folder"


@pytest.fixture(scope="module")
def env(module_servers, tmp_path_factory):
    root = tmp_path_factory.mktemp("links") / "media"
    files = {
        "holiday/day 1/beach.jpg": b"beach", "holiday/day 1/été.txt": b"summer",
        "holiday/notes.txt": b"notes", "private/diary.txt": SECRET, "film.mp4": b"f" * 1000,
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    # a link inside the shared folder that leads elsewhere in the media root
    os.symlink("../private", root / "holiday" / "sneaky")
    os.symlink("../private/diary.txt", root / "holiday" / "sneaky.txt")
    return AuthEnv(module_servers.start(root, name="links"))


def share(env, path, cred=None, tls=False):
    r = http_call(env.srv, "POST", "/api/shares", headers=(cred or env.admin).headers,
                  json_body={"path": path}, tls=tls)
    assert r.status == 201, r
    return r.json()


def anon(env, url, **kw):
    return http_call(env.srv, "GET", url, **kw)


def test_links_are_full_urls_from_the_address_used(env):
    sh = share(env, "/film.mp4")
    assert sh["path"] == "film.mp4"
    assert sh["url"].startswith(f"http://127.0.0.1:{env.srv.port}/s/"), sh
    r = curl_fetch(sh["url"])
    assert r.status == 200 and r.body == b"f" * 1000
    tls = share(env, "film.mp4", tls=True)
    assert tls["url"].startswith(f"https://localhost:{env.srv.tls_port}/s/"), tls
    listed = http_call(env.srv, "GET", "/api/shares", headers=env.admin.headers).json()["shares"]
    assert all(urlparse(s["url"]).scheme in ("http", "https") for s in listed), listed


def test_public_url_wins(servers, tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    (root / "a.txt").write_bytes(b"a")
    srv = servers.start(root, name="public-url",
                        env={"STREAMHUB_SERVER_PUBLIC_URL": "https://pi.local:8443/"})
    e = AuthEnv(srv, second_member=False)
    sh = share(e, "a.txt")
    assert sh["url"].startswith("https://pi.local:8443/s/"), sh
    assert anon(e, sh["url"]).body == b"a"


@pytest.mark.parametrize("bad", ["pi.local", "ftp://pi.local", "https://pi.local/x", "https:// x"])
def test_bad_public_url_is_refused_at_start(bad, tmp_path):
    from conftest import run_cli
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[server]\npublic_url = "{bad}"\n')
    r = run_cli(["config", "check", "--config", cfg])
    assert r.returncode == 2 and "server.public_url" in r.stderr, (r.returncode, r.stderr)


def test_moved_and_renamed_files_keep_their_links(env):
    put = lambda p, b: http_call(env.srv, "PUT", "/media/" + quote(p), headers=env.member.headers, body=b)
    mv = lambda f, t: http_call(env.srv, "POST", "/api/library/move", headers=env.member.headers,
                                json_body={"from": f, "to": t})
    assert put("moving/clip.mp4", b"clip").status == 201
    assert put("moving/inner/deep.mp4", b"deep").status == 201
    one = share(env, "moving/clip.mp4", cred=env.member)
    deep = share(env, "moving/inner/deep.mp4", cred=env.member)
    assert mv("moving/clip.mp4", "moving/renamed.mp4").status == 200
    assert anon(env, one["url"]).body == b"clip"
    assert mv("moving", "moved").status == 200
    assert anon(env, one["url"]).body == b"clip"
    assert anon(env, deep["url"]).body == b"deep"
    paths = {s["id"]: s["path"] for s in http_call(env.srv, "GET", "/api/shares",
                                                   headers=env.member.headers).json()["shares"]}
    assert paths[one["id"]] == "moved/renamed.mp4" and paths[deep["id"]] == "moved/inner/deep.mp4"
    # a sibling whose name merely starts the same is not dragged along
    assert put("moved2/x.mp4", b"x").status == 201
    other = share(env, "moved2/x.mp4", cred=env.member)
    assert mv("moved", "gone-elsewhere").status == 200
    assert anon(env, other["url"]).body == b"x"


def test_a_shared_folder_lists_and_serves_what_is_under_it(env):
    sh = share(env, "holiday")
    r = anon(env, sh["url"])
    assert r.status == 200, r
    j = r.json()
    assert j["name"] == "holiday" and j["path"] == ""
    names = {e["name"]: e for e in j["entries"]}
    assert {"day 1", "notes.txt"} <= set(names), names
    assert names["notes.txt"]["kind"] == "file" and names["notes.txt"]["size"] == 5
    assert anon(env, names["notes.txt"]["url"]).body == b"notes"
    sub = anon(env, names["day 1"]["url"]).json()
    assert sub["path"] == "day 1"
    inner = {e["name"]: e["url"] for e in sub["entries"]}
    assert anon(env, inner["été.txt"]).body == b"summer"
    r = anon(env, inner["beach.jpg"], headers={"Range": "bytes=1-2"})
    assert r.status == 206 and r.body == b"ea"


@pytest.mark.parametrize("suffix", [
    "/../private/diary.txt", "/%2e%2e/private/diary.txt", "/..%2Fprivate%2Fdiary.txt",
    "/sneaky/diary.txt", "/sneaky.txt", "/sneaky", "/.hidden", "/nothing-here.txt",
])
def test_nothing_outside_a_shared_folder(env, suffix):
    sh = share(env, "holiday")
    r = anon(env, sh["url"] + suffix)
    assert_error(r, 404, "not_found")
    assert SECRET not in r.body


def test_a_file_link_serves_nothing_under_it(env):
    sh = share(env, "holiday/notes.txt")
    assert_error(anon(env, sh["url"] + "/x"), 404, "not_found")
    r = http_call(env.srv, "POST", urlparse(share(env, "holiday")["url"]).path + "/notes.txt")
    assert_error(r, 405, "method_not_allowed")


# --- found by the outside attack run and the newcomer pass ------------------------------------


def test_a_folder_listing_leaves_out_links_that_lead_out_of_it(env):
    j = anon(env, share(env, "holiday")["url"]).json()
    names = {e["name"] for e in j["entries"]}
    assert "sneaky" not in names and "sneaky.txt" not in names, names


def test_a_shared_folder_swapped_for_a_link_serves_nothing(env):
    root = env.srv.media_root
    (root / "swap" / "real").mkdir(parents=True)
    (root / "swap" / "real" / "ok.txt").write_bytes(b"ok")
    sh = share(env, "swap/real")
    assert anon(env, sh["url"] + "/ok.txt").body == b"ok"
    os.rename(root / "swap" / "real", root / "swap" / "moved-by-hand")
    os.symlink("../private", root / "swap" / "real")
    r = anon(env, sh["url"])
    assert_error(r, 404, "not_found")
    r = anon(env, sh["url"] + "/diary.txt")
    assert_error(r, 404, "not_found")
    assert SECRET not in r.body


def test_odd_urls_under_a_link_are_json_404_and_a_trailing_slash_lists(env, tmp_path):
    outside = tmp_path / "out"
    outside.mkdir()
    (outside / "o.txt").write_bytes(SECRET)
    os.symlink(outside, env.srv.media_root / "holiday" / "leads-out")
    sh = share(env, "holiday")
    for suffix in ("/leads-out/o.txt", "/%ff%fe.txt", "/caf%C3"):
        r = anon(env, sh["url"] + suffix)
        assert_error(r, 404, "not_found")
        assert SECRET not in r.body
    r = anon(env, sh["url"] + "/")
    assert r.status == 200 and r.json()["path"] == "", r


def test_move_with_a_trailing_slash_needs_the_folder(env):
    assert http_call(env.srv, "PUT", "/media/slash/v.mp4", headers=env.member.headers,
                     body=b"v").status == 201
    r = http_call(env.srv, "POST", "/api/library/move", headers=env.member.headers,
                  json_body={"from": "slash/v.mp4", "to": "no-such-dir/"})
    assert_error(r, 404, "not_found")
    assert (env.srv.media_root / "slash/v.mp4").exists()
    assert not (env.srv.media_root / "no-such-dir").exists()
