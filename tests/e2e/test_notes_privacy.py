"""Notes privacy (docs/SECURITY.md, notes rows): a private note is its owner's alone — an admin
included — and never shows in anyone else's reads, search, tag counts, analytics, revisions or
events; anonymous reads follow `auth.anonymous_read`; writes need a login; only the owner
changes visibility; a note made public does not reveal its earlier private revisions.
"""

import uuid
from urllib.parse import quote, urlencode

import pytest

from conftest import (
    ANON,
    AUTH_PW,
    AuthEnv,
    Cred,
    assert_error,
    bearer,
    cli_add_user,
    http_call,
    must_login,
    new_token,
    start_auth_server,
    wait_for,
)

MISSING_ID = "0" * 32


# --- helpers (kept local: the notes suites do not import each other) ---------------------


def uniq(prefix="w"):
    return prefix + "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


def call(srv, cred, method, path, json_body=None, headers=None):
    h = dict((cred or ANON).headers)
    h.update(headers or {})
    return http_call(srv, method, path, headers=h, json_body=json_body)


def if_match(rev):
    return {"If-Match": f'"{rev}"'}


def create(srv, cred, title, body="", tags=None, visibility="private"):
    r = call(srv, cred, "POST", "/api/notes",
             json_body={"title": title, "body": body, "tags": tags or [], "visibility": visibility})
    assert r.status == 201, f"create failed: {r!r}"
    return r.json()


def must_get(srv, cred, nid):
    r = call(srv, cred, "GET", f"/api/notes/{nid}")
    assert r.status == 200, r
    return r.json()


def must_put(srv, cred, nid, rev, **changes):
    r = call(srv, cred, "PUT", f"/api/notes/{nid}", json_body=changes, headers=if_match(rev))
    assert r.status == 200, r
    return r.json()


def search(srv, cred, **params):
    qs = urlencode(params, doseq=True, quote_via=quote)
    return call(srv, cred, "GET", "/api/notes" + (f"?{qs}" if qs else ""))


def search_ids(srv, cred, **params):
    """All ids over every page (per_page=100)."""
    out, page = [], 1
    while True:
        r = search(srv, cred, per_page=100, page=page, **params)
        assert r.status == 200, r
        j = r.json()
        out += [it["id"] for it in j["items"]]
        if not j["has_more"]:
            return out
        page += 1


def tag_counts(srv, cred):
    r = call(srv, cred, "GET", "/api/tags")
    assert r.status == 200, r
    return {t["tag"]: t["count"] for t in r.json()["tags"]}


def analytics(srv, cred):
    r = call(srv, cred, "GET", "/api/analytics?days=30&top=100")
    assert r.status == 200, r
    return r.json()


def per_kind(a):
    out = {}
    for d in a["events_per_day"]:
        out[d["kind"]] = out.get(d["kind"], 0) + d["count"]
    return out



# --- fixtures ------------------------------------------------------------------------------


class PrivEnv:
    pass


@pytest.fixture(scope="module")
def env(module_servers, auth_media):
    srv = start_auth_server(module_servers, auth_media["root"], name="notes-priv",
                            login_max_failures=200)
    e = AuthEnv(srv)
    # `pia` only ever writes private notes: her name must not reach anyone's analytics
    cli_add_user(srv.data_dir, "pia")
    e.pia = new_token(srv, must_login(srv, "pia", AUTH_PW), "pia-e2e")

    # mia's private note, viewed and edited by her so it would rank in analytics
    e.word = uniq("secretword")
    e.tag = uniq("secrettag")
    p = create(srv, e.member, f"private title {e.word}", body=f"hidden body {e.word}",
               tags=[e.tag, "shared-tag"], visibility="private")
    p = must_put(srv, e.member, p["id"], p["rev"], body=f"hidden body v2 {e.word}")
    p = must_put(srv, e.member, p["id"], p["rev"], body=f"hidden body v3 {e.word}")
    for _ in range(5):
        must_get(srv, e.member, p["id"])
    e.private = p
    e.private_revs = [r["rev"] for r in call(srv, e.member, "GET", f"/api/notes/{p['id']}/revisions").json()["revisions"]]
    assert len(e.private_revs) == 3
    e.public = create(srv, e.member, "public note", body="open to all", tags=["shared-tag"],
                      visibility="public")
    return e


@pytest.fixture(scope="module")
def closed(module_servers, auth_media):
    """anonymous_read = false."""
    srv = start_auth_server(module_servers, auth_media["root"], name="notes-closed",
                            anonymous_read=False, login_max_failures=200)
    e = AuthEnv(srv, second_member=False)
    e.public = create(srv, e.member, "public but closed", body="x", tags=["closedtag"],
                      visibility="public")
    return e


OTHERS = ["anon", "max", "admin", "max-session", "admin-session"]


def who(env, name):
    return {"anon": ANON, "max": env.member2, "admin": env.admin, "max-session": env.member2_s,
            "admin-session": env.admin_s, "mia": env.member}[name]


# --- a private note is invisible to everyone else --------------------------------------------


def not_found_body(env, cred, method, suffix, json_body=None, headers=None):
    """The 404 a missing note gets, to compare with."""
    r = call(env.srv, cred, method, f"/api/notes/{MISSING_ID}{suffix}", json_body=json_body, headers=headers)
    return r


ROUTES = [
    ("GET", "", None, False),
    ("GET", "/revisions", None, False),
    ("GET", "/revisions/{rev}", None, False),
    ("GET", "/revisions/{rev0}", None, False),
    ("GET", "/events", None, False),
    ("PUT", "", {"body": "pwned"}, True),
    ("PUT", "", {"visibility": "public"}, True),
    ("DELETE", "", None, True),
    ("POST", "/restore", {"rev": "{rev0}"}, True),
    ("POST", "/resolve", {"merged": {"title": "pwned"}, "resolves": ["{rev0}"]}, True),
    ("POST", "/merge", {"rev": "{rev0}"}, True),
]


def fill(x, env):
    if isinstance(x, str):
        return x.replace("{rev0}", env.private_revs[-1]).replace("{rev}", env.private["rev"])
    if isinstance(x, dict):
        return {k: fill(v, env) for k, v in x.items()}
    if isinstance(x, list):
        return [fill(v, env) for v in x]
    return x


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("method,suffix,body,write", ROUTES,
                         ids=[f"{m}{s or '/'}-{i}" for i, (m, s, _, _) in enumerate(ROUTES)])
def test_private_note_is_404_for_everyone_else(env, name, method, suffix, body, write):
    cred = who(env, name)
    p = env.private
    headers = if_match(p["rev"]) if method in ("PUT", "DELETE") else None
    r = call(env.srv, cred, method, f"/api/notes/{p['id']}{fill(suffix, env)}",
             json_body=fill(body, env), headers=headers)
    if name == "anon" and write:
        assert_error(r, 401, "unauthorized")
    else:
        got = assert_error(r, 404, "not_found")
        missing = not_found_body(env, cred, method, fill(suffix, env), json_body=fill(body, env),
                                 headers=headers)
        assert missing.status == 404, missing
        assert got == missing.json(), "a private note must look exactly like a missing one"
    assert env.word.encode() not in r.body
    # nothing changed
    cur = must_get(env.srv, env.member, p["id"])
    assert cur["rev"] == p["rev"] and cur["visibility"] == "private" and not cur["deleted"]


@pytest.mark.parametrize("name", OTHERS)
def test_private_note_absent_from_search(env, name):
    cred = who(env, name)
    for params in ({"q": env.word}, {"q": env.word[:6] + "*"}, {"q": "hidden"}, {"q": "private title"},
                   {"q": env.tag}, {"tag": env.tag}, {}, {"author": "mia"}, {"visibility": "private"},
                   {"tag": "shared-tag"}):
        r = search(env.srv, cred, **params)
        assert r.status == 200, (params, r)
        assert env.private["id"].encode() not in r.body and env.word.encode() not in r.body, params
    assert env.private["id"] not in search_ids(env.srv, cred)
    # the public note is there
    assert env.public["id"] in search_ids(env.srv, cred, tag="shared-tag")


def test_owner_sees_private_note_everywhere(env):
    mia, p = env.member, env.private
    got = must_get(env.srv, mia, p["id"])
    assert got["body"].startswith("hidden body v3")
    assert search_ids(env.srv, mia, q=env.word) == [p["id"]]
    assert search_ids(env.srv, mia, tag=env.tag) == [p["id"]]
    assert p["id"] in search_ids(env.srv, mia, visibility="private")
    assert set(search_ids(env.srv, mia, tag="shared-tag")) == {p["id"], env.public["id"]}
    counts = tag_counts(env.srv, mia)
    assert counts.get(env.tag) == 1 and counts.get("shared-tag") == 2
    revs = call(env.srv, mia, "GET", f"/api/notes/{p['id']}/revisions").json()["revisions"]
    assert len(revs) == 3
    r = call(env.srv, mia, "GET", f"/api/notes/{p['id']}/revisions/{env.private_revs[-1]}")
    assert r.status == 200 and r.json()["body"] == f"hidden body {env.word}"
    evs = call(env.srv, mia, "GET", f"/api/notes/{p['id']}/events").json()["events"]
    assert {"created", "edited"} <= {e["kind"] for e in evs}

    def ranked():
        a = analytics(env.srv, mia)
        mv = {x["id"]: x["count"] for x in a["most_viewed"]}
        return a if mv.get(p["id"], 0) >= 5 else None

    a = wait_for(ranked, what="mia's views of her private note in her analytics")
    assert p["id"] in {x["id"] for x in a["most_edited"]}
    assert env.tag in {t["tag"] for t in a["top_tags"]}


@pytest.mark.parametrize("name", OTHERS)
def test_private_note_absent_from_tags_and_analytics(env, name):
    cred = who(env, name)
    # let mia's views of her note land first, so "most viewed" would show it if it leaked
    wait_for(lambda: {x["id"]: x["count"] for x in analytics(env.srv, env.member)["most_viewed"]}
             .get(env.private["id"], 0) >= 5, what="views recorded")
    counts = tag_counts(env.srv, cred)
    assert env.tag not in counts, counts
    assert counts.get("shared-tag") == 1, "only the public note's tag counts"
    a = analytics(env.srv, cred)
    leak = [x for x in a["most_viewed"] + a["most_edited"] if x["id"] == env.private["id"]]
    assert not leak, leak
    assert env.tag not in {t["tag"] for t in a["top_tags"]}
    assert env.word.encode() not in http_call(env.srv, "GET", "/api/analytics?top=100",
                                              headers=cred.headers).body


def test_private_writes_stay_out_of_others_analytics(env):
    """pia writes only private notes: her name and her activity are hers alone."""
    before = {n: analytics(env.srv, who(env, n)) for n in ("anon", "max", "admin")}
    tag = uniq("piatag")
    n = create(env.srv, env.pia, "pia's diary", body="dear diary", tags=[tag])
    n = must_put(env.srv, env.pia, n["id"], n["rev"], body="dear diary, again")
    for name, b in before.items():
        a = analytics(env.srv, who(env, name))
        assert "pia" not in {c["name"] for c in a["top_contributors"]}, (name, a["top_contributors"])
        assert per_kind(a).get("created", 0) == per_kind(b).get("created", 0), (name, "created")
        assert per_kind(a).get("edited", 0) == per_kind(b).get("edited", 0), (name, "edited")
        assert tag not in {t["tag"] for t in a["top_tags"]}
    mine = analytics(env.srv, env.pia)
    assert {"name": "pia", "revisions": 2} in mine["top_contributors"], mine["top_contributors"]
    assert per_kind(mine).get("created", 0) >= 1
    assert search_ids(env.srv, env.member, author="pia") == []
    assert search_ids(env.srv, env.pia, author="pia") == [n["id"]]


# --- anonymous access ---------------------------------------------------------------------------


def test_public_note_readable_anonymously_when_allowed(env):
    p = env.public
    r = call(env.srv, ANON, "GET", f"/api/notes/{p['id']}")
    assert r.status == 200, r
    assert r.json()["body"] == "open to all" and r.header("etag") == f'"{p["rev"]}"'
    for path in (f"/api/notes/{p['id']}/revisions", f"/api/notes/{p['id']}/events",
                 f"/api/notes/{p['id']}/revisions/{p['rev']}", "/api/notes", "/api/tags",
                 "/api/analytics", "/api/notes?q=open"):
        assert call(env.srv, ANON, "GET", path).status == 200, path
    assert p["id"] in search_ids(env.srv, ANON, q="open")


@pytest.mark.parametrize("method,suffix,body", [
    ("POST", "", {"title": "anon"}),
    ("PUT", "/{id}", {"body": "anon"}),
    ("DELETE", "/{id}", None),
    ("POST", "/{id}/restore", {"rev": "{rev}"}),
    ("POST", "/{id}/resolve", {"merged": {"title": "x"}, "resolves": ["{rev}"]}),
    ("POST", "/{id}/merge", {"rev": "{rev}"}),
])
def test_anonymous_writes_are_401(env, method, suffix, body):
    p = env.public
    suffix = suffix.replace("{id}", p["id"])
    if body:
        body = {k: (v.replace("{rev}", p["rev"]) if isinstance(v, str) else v) for k, v in body.items()}
    r = call(env.srv, ANON, method, f"/api/notes{suffix}", json_body=body,
             headers=if_match(p["rev"]) if method in ("PUT", "DELETE") else None)
    assert_error(r, 401, "unauthorized")
    assert must_get(env.srv, env.member, p["id"])["rev"] == p["rev"]


def test_bad_credentials_are_401_even_for_reads(env):
    bogus = Cred("token", headers=bearer("sht_" + "A" * 43))
    assert_error(call(env.srv, bogus, "GET", f"/api/notes/{env.public['id']}"), 401)
    assert_error(call(env.srv, bogus, "GET", "/api/notes"), 401)


def test_anonymous_read_false_gives_401(closed):
    p = closed.public
    for path in (f"/api/notes/{p['id']}", "/api/notes", "/api/notes?q=public", "/api/tags",
                 "/api/analytics", f"/api/notes/{p['id']}/revisions", f"/api/notes/{p['id']}/events",
                 f"/api/notes/{MISSING_ID}"):
        r = call(closed.srv, ANON, "GET", path)
        assert_error(r, 401, "unauthorized")
        assert b"public but closed" not in r.body
    assert must_get(closed.srv, closed.member, p["id"])["title"] == "public but closed"
    assert must_get(closed.srv, closed.admin, p["id"])["title"] == "public but closed"
    assert_error(call(closed.srv, ANON, "POST", "/api/notes", json_body={"title": "x"}), 401, "unauthorized")


# --- visibility changes --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["max", "admin", "max-session", "admin-session"])
def test_only_owner_changes_visibility(env, name):
    cred = who(env, name)
    n = create(env.srv, env.member, "owned by mia", body="b", visibility="public")
    r = call(env.srv, cred, "PUT", f"/api/notes/{n['id']}", json_body={"visibility": "private"},
             headers=if_match(n["rev"]))
    assert_error(r, 403, "forbidden")
    r = call(env.srv, cred, "PUT", f"/api/notes/{n['id']}",
             json_body={"body": "edited by other", "visibility": "private"}, headers=if_match(n["rev"]))
    assert_error(r, 403, "forbidden")
    got = must_get(env.srv, env.member, n["id"])
    assert got["rev"] == n["rev"] and got["visibility"] == "public" and got["body"] == "b"
    # editing the content is fine; sending the unchanged visibility too
    ed = must_put(env.srv, cred, n["id"], n["rev"], body="edited", visibility="public")
    assert ed["visibility"] == "public"
    # the owner may hide it; then the other gets 404
    hidden = must_put(env.srv, env.member, n["id"], ed["rev"], visibility="private")
    assert hidden["visibility"] == "private"
    assert_error(call(env.srv, cred, "GET", f"/api/notes/{n['id']}"), 404, "not_found")
    assert n["id"] not in search_ids(env.srv, cred, q="edited")


def test_restoring_across_visibility_is_owner_only(env):
    n = create(env.srv, env.member, "flip", body="private start", visibility="private")
    pub = must_put(env.srv, env.member, n["id"], n["rev"], body="public now", visibility="public")
    # max cannot restore the private revision (he may not even see it)
    r = call(env.srv, env.member2, "POST", f"/api/notes/{n['id']}/restore", json_body={"rev": n["rev"]})
    assert r.status in (403, 404), r
    assert b"private start" not in r.body
    assert must_get(env.srv, env.member, n["id"])["rev"] == pub["rev"]


def test_made_public_hides_earlier_private_revisions(env):
    srv, mia, max_ = env.srv, env.member, env.member2
    early = uniq("earlysecret")
    v1 = create(srv, mia, "draft", body=f"first private draft {early}", tags=["draft"])
    v2 = must_put(srv, mia, v1["id"], v1["rev"], title=f"draft {early} two", body="second private draft")
    v3 = must_put(srv, mia, v1["id"], v2["rev"], title="announcement", body="the public text",
                  visibility="public")
    assert v3["visibility"] == "public"
    private_revs = {v1["rev"], v2["rev"]}

    for name in OTHERS:
        cred = who(env, name)
        r = call(srv, cred, "GET", f"/api/notes/{v1['id']}")
        assert r.status == 200, (name, r)
        got = r.json()
        assert got["rev"] == v3["rev"] and got["body"] == "the public text" and got["title"] == "announcement"
        assert early.encode() not in r.body
        r = call(srv, cred, "GET", f"/api/notes/{v1['id']}/revisions")
        assert r.status == 200, r
        revs = r.json()["revisions"]
        assert {x["rev"] for x in revs} == {v3["rev"]}, (name, revs)
        assert early.encode() not in r.body and b"draft" not in r.body
        for rev in private_revs:
            r = call(srv, cred, "GET", f"/api/notes/{v1['id']}/revisions/{rev}")
            assert_error(r, 404, "not_found")
            assert early.encode() not in r.body
        assert v1["id"] not in search_ids(srv, cred, q=early)
        assert v1["id"] in search_ids(srv, cred, q="announcement")
        r = call(srv, cred, "GET", f"/api/notes/{v1['id']}/events")
        assert r.status == 200 and early.encode() not in r.body

    # max edits the public note; the history he sees still hides the private part
    v4 = must_put(srv, max_, v1["id"], v3["rev"], body="the public text, improved")
    assert v4["visibility"] == "public"
    revs = call(srv, max_, "GET", f"/api/notes/{v1['id']}/revisions").json()["revisions"]
    assert {x["rev"] for x in revs} == {v3["rev"], v4["rev"]}
    # mia still sees all four
    revs = call(srv, mia, "GET", f"/api/notes/{v1['id']}/revisions").json()["revisions"]
    assert {x["rev"] for x in revs} == private_revs | {v3["rev"], v4["rev"]}
    r = call(srv, mia, "GET", f"/api/notes/{v1['id']}/revisions/{v1['rev']}")
    assert r.status == 200 and early in r.json()["body"]


def test_visibility_change_moves_tag_counts_and_analytics(env):
    srv, mia = env.srv, env.member
    tag = uniq("fliptag")
    n = create(srv, mia, "flip tags", body="x", tags=[tag], visibility="public")
    for _ in range(2):
        must_get(srv, env.member2, n["id"])
    wait_for(lambda: n["id"] in {x["id"] for x in analytics(srv, env.admin)["most_viewed"]},
             what="views of the public note")
    assert tag_counts(srv, env.member2).get(tag) == 1
    hidden = must_put(srv, mia, n["id"], n["rev"], visibility="private")
    for name in OTHERS:
        cred = who(env, name)
        assert tag not in tag_counts(srv, cred), name
        a = analytics(srv, cred)
        assert tag not in {t["tag"] for t in a["top_tags"]}, name
        assert n["id"] not in {x["id"] for x in a["most_viewed"] + a["most_edited"]}, name
        assert n["id"] not in search_ids(srv, cred, tag=tag), name
    assert tag_counts(srv, mia).get(tag) == 1
    must_put(srv, mia, n["id"], hidden["rev"], visibility="public")
    assert tag_counts(srv, env.member2).get(tag) == 1
    assert search_ids(srv, env.member2, tag=tag) == [n["id"]]


def test_restore_brings_back_content_never_visibility(env):
    """Issue 14: a note made private, then restored to a revision from when it was public,
    stays private — restore brings back title, body and tags; visibility changes only when
    the owner says so."""
    secret = uniq("nowprivate")
    v1 = create(env.srv, env.member, "was public", body=f"old public text {secret}",
                visibility="public", tags=["old"])
    v2 = must_put(env.srv, env.member, v1["id"], v1["rev"], body="newer text",
                  visibility="private")
    r = call(env.srv, env.member, "POST", f"/api/notes/{v1['id']}/restore",
             json_body={"rev": v1["rev"]})
    assert r.status == 200, r
    got = must_get(env.srv, env.member, v1["id"])
    assert got["body"] == f"old public text {secret}" and got["tags"] == ["old"], got
    assert got["visibility"] == "private", got
    assert got["rev"] != v2["rev"]
    for name in OTHERS:
        cred = who(env, name)
        assert_error(call(env.srv, cred, "GET", f"/api/notes/{v1['id']}"), 404)
        assert v1["id"] not in search_ids(env.srv, cred, q=secret)
