"""One API, one way of saying things (issue 14, "Consistent API").

- Every time the API returns — users, tokens, shares, notes, search hits, revisions, events,
  the library — is an RFC 3339 UTC string; never epoch numbers of guessable unit, never the
  internal HLC stamp (`"1795980299702.0@c3bb…"`).
- A note names its `owner` (who alone may change visibility) besides `author` (the last
  editor) and `contributors`; `?owner=`, `?author=` and `?contributor=` filter by exactly
  those.
"""

import time

import pytest

from conftest import (
    AUTH_PW,
    API_TIME_RE,
    AuthEnv,
    assert_error,
    NESTED,
    api_time,
    http_call,
    must_login,
    new_share,
    start_auth_server,
)

TIME_KEYS = {"created_at", "expires_at", "changed_at", "updated", "at", "mtime", "finished"}


@pytest.fixture(scope="module")
def env(module_servers, auth_media):
    srv = start_auth_server(module_servers, auth_media["root"], name="consistency",
                            login_max_failures=200)
    return AuthEnv(srv)


def call(env, cred, method, path, body=None, headers=None):
    h = dict(cred.headers)
    h.update(headers or {})
    r = http_call(env.srv, method, path, headers=h, json_body=body)
    assert r.status < 300, (method, path, r)
    return r.json()


def times_in(doc, where="$"):
    """Every (path, value) of a time-named key anywhere in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in TIME_KEYS and v is not None:
                yield f"{where}.{k}", v
            yield from times_in(v, f"{where}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from times_in(v, f"{where}[{i}]")


def note(env, cred, title, visibility="public", body=""):
    return call(env, cred, "POST", "/api/notes",
                {"title": title, "body": body, "visibility": visibility})


def edit(env, cred, n, **changes):
    return call(env, cred, "PUT", f"/api/notes/{n['id']}", changes,
                headers={"If-Match": f'"{n["rev"]}"'})


def test_every_time_in_the_api_is_rfc3339_utc(env):
    t0 = time.time()
    n = note(env, env.member, "timed note", body="x")
    n = edit(env, env.member, n, body="y")
    share = new_share(env.srv, env.member, NESTED, expires_in=3600)
    answers = {
        "note": n,
        "notes": call(env, env.member, "GET", "/api/notes?q=timed"),
        "newest": call(env, env.member, "GET", "/api/notes"),
        "revisions": call(env, env.member, "GET", f"/api/notes/{n['id']}/revisions"),
        "revision": call(env, env.member, "GET", f"/api/notes/{n['id']}/revisions/{n['rev']}"),
        "events": call(env, env.member, "GET", f"/api/notes/{n['id']}/events"),
        "users": call(env, env.admin, "GET", "/api/users"),
        "tokens": call(env, env.admin, "GET", "/api/tokens"),
        "new_token": call(env, env.member, "POST", "/api/tokens",
                          {"label": "t", "expires_in": 3600}),
        "shares": call(env, env.admin, "GET", "/api/shares"),
        "library": call(env, env.member, "GET", "/api/library?path=sub/dir"),
        "item": call(env, env.member, "GET", "/api/library/item?path=" + NESTED),
    }
    seen = {}
    for name, doc in answers.items():
        found = list(times_in(doc))
        assert found, f"{name}: no time field at all: {doc}"
        for path, v in found:
            assert isinstance(v, str) and API_TIME_RE.fullmatch(v), f"{name}{path[1:]} = {v!r}"
            assert "@" not in v
            seen[f"{name}{path[1:]}"] = api_time(v)
    # Plausible values: the note and the token were made just now; the share expires in 1 h.
    assert abs(api_time(n["updated"]) - t0) < 60 and abs(api_time(n["created_at"]) - t0) < 60
    assert abs(api_time(answers["new_token"]["expires_at"]) - (t0 + 3600)) < 60
    assert abs(api_time(share["expires_at"]) - (t0 + 3600)) < 60
    newest_rev = answers["revisions"]["revisions"][0]
    assert "hlc" not in newest_rev and "hlc" not in answers["revision"], "the HLC stays inside"
    assert abs(api_time(newest_rev["at"]) - t0) < 60


def test_owner_author_and_contributor_are_what_they_say(env):
    """mia creates a public note, max edits it last: owner mia, author max, both contributors.
    Only mia may make it private."""
    tag = f"own{int(time.time() * 1000)}"
    n = call(env, env.member, "POST", "/api/notes",
             {"title": "shopping", "tags": [tag], "visibility": "public"})
    assert n["owner"] == "mia" and n["author"] == "mia"
    n = edit(env, env.member2, n, body="and bread")
    assert n["owner"] == "mia" and n["author"] == "max", n
    assert {c["name"] for c in n["contributors"]} == {"mia", "max"}
    only_mia = call(env, env.member, "POST", "/api/notes",
                    {"title": "mia alone", "tags": [tag], "visibility": "public"})
    by_max = call(env, env.member2, "POST", "/api/notes",
                  {"title": "max's", "tags": [tag], "visibility": "public"})

    def ids(**q):
        qs = "&".join(f"{k}={v}" for k, v in q.items())
        page = call(env, env.admin, "GET", f"/api/notes?tag={tag}&{qs}")
        for hit in page["items"]:
            assert {"owner", "author"} <= set(hit), hit
        return {h["id"] for h in page["items"]}

    assert ids(owner="mia") == {n["id"], only_mia["id"]}
    assert ids(owner="MIA") == {n["id"], only_mia["id"]}, "names ignore case, as at login"
    assert ids(owner="max") == {by_max["id"]}
    assert ids(author="max") == {n["id"], by_max["id"]}, "author = the last editor"
    assert ids(author="mia") == {only_mia["id"]}
    assert ids(contributor="max") == {n["id"], by_max["id"]}
    assert ids(contributor="mia") == {n["id"], only_mia["id"]}
    assert ids(owner="nobody-here") == set()
    hit = next(h for h in call(env, env.admin, "GET", f"/api/notes?tag={tag}&author=max")["items"]
               if h["id"] == n["id"])
    assert hit["owner"] == "mia" and hit["author"] == "max"

    # The owner field means what the rule means: max (the author) may not change visibility.
    r = http_call(env.srv, "PUT", f"/api/notes/{n['id']}", headers={
        **env.member2.headers, "If-Match": f'"{n["rev"]}"'}, json_body={"visibility": "private"})
    assert r.status == 403, r
    n = edit(env, env.member, n, visibility="private")
    assert n["visibility"] == "private" and n["owner"] == "mia"


def test_private_notes_do_not_leak_through_the_owner_filter(env):
    tag = f"priv{int(time.time() * 1000)}"
    secret = call(env, env.member, "POST", "/api/notes",
                  {"title": "diary", "tags": [tag], "visibility": "private"})
    for cred in (env.member2, env.admin):
        page = call(env, cred, "GET", f"/api/notes?tag={tag}&owner=mia")
        assert page["items"] == [], "someone else's private note, found by its owner"
    mine = call(env, env.member, "GET", f"/api/notes?tag={tag}&owner=mia")
    assert [h["id"] for h in mine["items"]] == [secret["id"]]
    assert must_login(env.srv, "mia", AUTH_PW)


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/notes/%ff%fe"),
    ("PUT", "/api/notes/%ff%fe"),
    ("DELETE", "/api/notes/%ff%fe"),
    ("GET", "/api/notes/%ff%fe/html"),
    ("GET", "/api/notes/%ff%fe/revisions"),
    ("GET", "/api/notes/abc/revisions/%ff%fe"),
    ("GET", "/api/notes/%ff%fe/events"),
    ("POST", "/api/notes/%ff%fe/restore"),
    ("DELETE", "/api/tokens/%ff%fe"),
    ("DELETE", "/api/users/%ff%fe"),
    ("PATCH", "/api/users/%ff%fe"),
    ("DELETE", "/api/shares/%ff%fe"),
    ("DELETE", "/api/trash/%ff%fe"),
    ("POST", "/api/trash/%ff%fe/restore"),
    ("HEAD", "/api/tus/%ff%fe"),
    ("GET", "/s/%ff%fe"),
    ("GET", "/ui/%ff%fe/app.js"),
])
def test_undecodable_path_parameters_are_json_errors(env, method, path):
    """Issue 12: `/api/notes/%ff%fe` answered text/plain; a path parameter that is not UTF-8
    is a 400 with the JSON error body everywhere."""
    h = dict(env.admin.headers, **{"Tus-Resumable": "1.0.0"})
    body = {"title": "x"} if method in ("PUT", "PATCH", "POST") else None
    r = http_call(env.srv, method, path, headers=h, json_body=body)
    if method == "HEAD":
        assert r.status == 400 and "json" in r.header("content-type", ""), r
        return
    assert_error(r, 400, "bad_path_param")
