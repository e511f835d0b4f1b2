"""Notes (issue #6) end to end: CRUD with optimistic concurrency, revisions, restore, search,
events, tags, analytics, conflict endpoints, limits and bad input.

Contract: docs/CONTRACT.md "Notes (issue #6)". Everything runs against the real binary on
127.0.0.1; users come from `AuthEnv` (admin `root`, members `mia` and `max`).

Conflicts: one box's HTTP API cannot make two concurrent revisions (every edit names its base
with If-Match and a stale base gets 412), so only the validation paths of `resolve`/`merge`
are here; real conflicts between two boxes are in test_notes_conflicts.py.
"""

import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

import pytest

from conftest import (
    ANON,
    AuthEnv,
    assert_error,
    api_time,
    auth_config,
    http_call,
    start_auth_server,
    wait_for,
)

NOTE_KEYS = {"id", "rev", "title", "body", "tags", "visibility", "deleted", "author", "owner",
             "updated", "created_at", "changed_at", "conflicts", "contributors", "views", "edits"}
HIT_KEYS = {"id", "rev", "title", "tags", "visibility", "author", "owner", "updated", "changed_at",
            "conflicts", "snippet", "score"}
MISSING_ID = "0" * 32


# --- helpers (local to the notes suites) -------------------------------------------------


def uniq(prefix="w"):
    """A word that appears nowhere else (letters only, so FTS keeps it as one token)."""
    return prefix + "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


def call(srv, cred, method, path, json_body=None, headers=None, body=None):
    h = dict((cred or ANON).headers)
    h.update(headers or {})
    return http_call(srv, method, path, headers=h, json_body=json_body, body=body)


def if_match(rev):
    return {"If-Match": f'"{rev}"'}


def create(srv, cred, title="t", body="", tags=None, visibility=None, **extra):
    doc = {"title": title, "body": body}
    if tags is not None:
        doc["tags"] = tags
    if visibility is not None:
        doc["visibility"] = visibility
    doc.update(extra)
    r = call(srv, cred, "POST", "/api/notes", json_body=doc)
    assert r.status == 201, f"create note failed: {r!r}"
    note = r.json()
    assert r.header("etag") == f'"{note["rev"]}"', r
    return note


def get(srv, cred, nid):
    return call(srv, cred, "GET", f"/api/notes/{nid}")


def must_get(srv, cred, nid):
    r = get(srv, cred, nid)
    assert r.status == 200, r
    return r.json()


def put(srv, cred, nid, rev, **changes):
    return call(srv, cred, "PUT", f"/api/notes/{nid}", json_body=changes,
                headers=if_match(rev) if rev is not None else None)


def must_put(srv, cred, nid, rev, **changes):
    r = put(srv, cred, nid, rev, **changes)
    assert r.status == 200, r
    note = r.json()
    assert r.header("etag") == f'"{note["rev"]}"', r
    return note


def delete(srv, cred, nid, rev):
    return call(srv, cred, "DELETE", f"/api/notes/{nid}",
                headers=if_match(rev) if rev is not None else None)


def search(srv, cred, **params):
    """GET /api/notes with params (lists repeat: tag=[a, b])."""
    qs = urlencode(params, doseq=True, quote_via=quote)
    return call(srv, cred, "GET", "/api/notes" + (f"?{qs}" if qs else ""))


def must_search(srv, cred, **params):
    r = search(srv, cred, **params)
    assert r.status == 200, r
    page = r.json()
    assert isinstance(page.get("items"), list), page
    return page


def ids(page):
    return [it["id"] for it in page["items"]]


def events(srv, cred, nid, **params):
    qs = urlencode(params)
    r = call(srv, cred, "GET", f"/api/notes/{nid}/events" + (f"?{qs}" if qs else ""))
    assert r.status == 200, r
    return r.json()["events"]


def tag_counts(srv, cred):
    r = call(srv, cred, "GET", "/api/tags")
    assert r.status == 200, r
    return {t["tag"]: t["count"] for t in r.json()["tags"]}


def analytics(srv, cred, **params):
    qs = urlencode(params)
    r = call(srv, cred, "GET", "/api/analytics" + (f"?{qs}" if qs else ""))
    assert r.status == 200, r
    return r.json()



def today_utc():
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def per_kind(a):
    """events_per_day summed over the days: {kind: count}."""
    out = {}
    for d in a["events_per_day"]:
        out[d["kind"]] = out.get(d["kind"], 0) + d["count"]
    return out


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(module_servers, auth_media):
    srv = start_auth_server(module_servers, auth_media["root"], name="notes",
                            login_max_failures=200)
    return AuthEnv(srv)


@pytest.fixture(scope="module")
def small(module_servers, auth_media):
    """`[notes] max_body_bytes = 1000`."""
    cfg = auth_config(login_max_failures=200) + "[notes]\nmax_body_bytes = 1000\n"
    srv = module_servers.start(auth_media["root"], config=cfg, name="notes-small")
    return AuthEnv(srv, second_member=False)


# --- CRUD --------------------------------------------------------------------------------


def test_create_returns_note_with_etag_and_normalised_tags(env):
    t0 = time.time() * 1000
    note = create(env.srv, env.member, title="Groceries", body="milk\neggs",
                  tags=["  Kitchen ", "kitchen", "SHOPPING", "b-list", "Ärger"])
    assert NOTE_KEYS <= set(note), f"missing keys {NOTE_KEYS - set(note)}: {note}"
    assert note["title"] == "Groceries" and note["body"] == "milk\neggs"
    assert note["tags"] == ["b-list", "kitchen", "shopping", "ärger"], note["tags"]
    assert note["visibility"] == "private", "default visibility is private"
    assert note["deleted"] is False
    assert note["author"] == "mia"
    assert note["conflicts"] == []
    assert note["contributors"] == [{"name": "mia", "revisions": 1}]
    assert isinstance(note["rev"], str) and note["rev"]
    assert note["owner"] == "mia"
    for k in ("created_at", "changed_at", "updated"):
        assert t0 / 1000 - 60 <= api_time(note[k]) <= time.time() + 60, (k, note[k])
    assert api_time(note["changed_at"]) >= api_time(note["created_at"]) - 0.001

    r = get(env.srv, env.member, note["id"])
    assert r.status == 200, r
    got = r.json()
    assert r.header("etag") == f'"{note["rev"]}"'
    for k in ("id", "rev", "title", "body", "tags", "visibility", "author", "created_at"):
        assert got[k] == note[k], k


def test_body_and_tags_and_visibility_are_optional(env):
    note = create(env.srv, env.member, title="only a title")
    assert note["body"] == "" and note["tags"] == [] and note["visibility"] == "private"
    r = call(env.srv, env.member, "POST", "/api/notes", json_body={"title": "pub", "visibility": "public"})
    assert r.status == 201, r
    assert r.json()["visibility"] == "public"


def test_put_with_if_match_makes_a_new_revision(env):
    srv = env.srv
    note = create(srv, env.member, title="plan", body="v1 body", tags=["a"], visibility="public")
    r = put(srv, env.member, note["id"], note["rev"], body="v2 body")
    assert r.status == 200, r
    v2 = r.json()
    assert v2["rev"] != note["rev"]
    assert r.header("etag") == f'"{v2["rev"]}"' != f'"{note["rev"]}"'
    assert v2["body"] == "v2 body"
    assert v2["title"] == "plan" and v2["tags"] == ["a"], "fields not sent keep their value"
    assert v2["id"] == note["id"]

    # a member other than the owner may edit a public note
    v3 = must_put(srv, env.member2, note["id"], v2["rev"], title="plan B", tags=["B ", "c"])
    assert v3["tags"] == ["b", "c"] and v3["title"] == "plan B" and v3["body"] == "v2 body"
    assert v3["author"] == "max"
    contributors = {c["name"]: c["revisions"] for c in v3["contributors"]}
    assert contributors == {"mia": 2, "max": 1}, v3["contributors"]

    r = get(srv, env.member, note["id"])
    assert r.header("etag") == f'"{v3["rev"]}"'
    assert r.json()["title"] == "plan B"


def test_put_without_if_match_is_428_and_changes_nothing(env):
    note = create(env.srv, env.member, title="keep", body="original")
    r = put(env.srv, env.member, note["id"], None, body="overwritten")
    assert_error(r, 428, "precondition_required")
    r = delete(env.srv, env.member, note["id"], None)
    assert_error(r, 428, "precondition_required")
    got = must_get(env.srv, env.member, note["id"])
    assert got["rev"] == note["rev"] and got["body"] == "original" and not got["deleted"]


def test_no_lost_update_second_writer_gets_412_with_current(env):
    srv = env.srv
    note = create(srv, env.member, title="shared", body="base text", visibility="public")
    base = note["rev"]
    # both clients read the same revision
    assert must_get(srv, env.member, note["id"])["rev"] == base
    assert must_get(srv, env.member2, note["id"])["rev"] == base

    first = must_put(srv, env.member, note["id"], base, body="mia's edit")
    r = put(srv, env.member2, note["id"], base, body="max's edit")
    body = assert_error(r, 412, "stale")
    cur = body.get("current")
    assert isinstance(cur, dict), f"412 must carry the current note: {body}"
    assert cur["rev"] == first["rev"] and cur["body"] == "mia's edit", cur
    assert cur["id"] == note["id"]

    # a stale delete is refused too
    body = assert_error(delete(srv, env.member2, note["id"], base), 412, "stale")
    assert body["current"]["rev"] == first["rev"]

    got = must_get(srv, env.admin, note["id"])
    assert got["rev"] == first["rev"] and got["body"] == "mia's edit" and not got["deleted"]
    # max retries on top of the current revision: accepted
    again = must_put(srv, env.member2, note["id"], cur["rev"], body="max's edit, rebased")
    assert again["body"] == "max's edit, rebased"


def test_delete_tombstone_restore_and_revisions(env):
    srv, mia = env.srv, env.member
    v1 = create(srv, mia, title="history", body="alpha", tags=["h"], visibility="public")
    v2 = must_put(srv, mia, v1["id"], v1["rev"], body="beta")
    r = delete(srv, mia, v1["id"], v2["rev"])
    assert r.status == 200, r
    v3 = r.json()
    assert v3["deleted"] is True and v3["rev"] not in (v1["rev"], v2["rev"])
    assert r.header("etag") == f'"{v3["rev"]}"'
    assert v1["id"] not in ids(must_search(srv, mia, tag="h", per_page=100)), "deleted notes are not listed"

    # editing a deleted note -> 409 deleted (restore first)
    assert_error(put(srv, mia, v1["id"], v3["rev"], body="gamma"), 409, "deleted")

    # restore the first revision: its content comes back as a new revision
    r = call(srv, mia, "POST", f"/api/notes/{v1['id']}/restore", json_body={"rev": v1["rev"]})
    assert r.status == 200, r
    v4 = r.json()
    assert r.header("etag") == f'"{v4["rev"]}"'
    assert v4["deleted"] is False and v4["body"] == "alpha" and v4["title"] == "history"
    assert v4["rev"] not in (v1["rev"], v2["rev"], v3["rev"])
    got = must_get(srv, env.member2, v1["id"])
    assert got["body"] == "alpha" and got["rev"] == v4["rev"]
    assert v1["id"] in ids(must_search(srv, mia, tag="h", per_page=100))

    r = call(srv, mia, "GET", f"/api/notes/{v1['id']}/revisions")
    assert r.status == 200, r
    revs = {x["rev"]: x for x in r.json()["revisions"]}
    assert set(revs) == {v1["rev"], v2["rev"], v3["rev"], v4["rev"]}, revs
    assert revs[v1["rev"]]["parents"] == []
    assert revs[v2["rev"]]["parents"] == [v1["rev"]]
    assert revs[v3["rev"]]["parents"] == [v2["rev"]]
    assert revs[v4["rev"]]["parents"] == [v3["rev"]]
    assert [revs[x["rev"]]["gen"] for x in (v1, v2, v3, v4)] == [1, 2, 3, 4]
    assert [r_["current"] for r_ in (revs[v1["rev"]], revs[v2["rev"]], revs[v3["rev"]], revs[v4["rev"]])] == [False, False, False, True]
    assert [revs[x["rev"]]["leaf"] for x in (v1, v2, v3, v4)] == [False, False, False, True]
    assert revs[v3["rev"]]["deleted"] is True and revs[v4["rev"]]["deleted"] is False
    assert all(x["author"] == "mia" and x["title"] == "history" for x in revs.values())

    # one revision in full
    r = call(srv, mia, "GET", f"/api/notes/{v1['id']}/revisions/{v2['rev']}")
    assert r.status == 200, r
    full = r.json()
    assert full["rev"] == v2["rev"] and full["body"] == "beta" and full["parents"] == [v1["rev"]]
    assert full["title"] == "history" and full["tags"] == ["h"] and full["deleted"] is False

    # unknowns are 404
    assert_error(call(srv, mia, "GET", f"/api/notes/{v1['id']}/revisions/{'f' * 64}"), 404, "not_found")
    assert_error(call(srv, mia, "POST", f"/api/notes/{v1['id']}/restore", json_body={"rev": "f" * 64}),
                 404, "not_found")
    assert must_get(srv, mia, v1["id"])["rev"] == v4["rev"], "a failed restore changes nothing"


@pytest.mark.parametrize("method,suffix,body", [
    ("GET", "", None),
    ("PUT", "", {"body": "x"}),
    ("DELETE", "", None),
    ("GET", "/revisions", None),
    ("GET", "/revisions/" + "a" * 64, None),
    ("GET", "/events", None),
    ("POST", "/restore", {"rev": "a" * 64}),
])
def test_unknown_note_is_404(env, method, suffix, body):
    r = call(env.srv, env.member, method, f"/api/notes/{MISSING_ID}{suffix}", json_body=body,
             headers=if_match("a" * 64) if method in ("PUT", "DELETE") else None)
    assert_error(r, 404, "not_found")


# --- search --------------------------------------------------------------------------------


def test_search_ranks_title_and_body_above_a_single_mention(env):
    w = uniq("rank")
    once = create(env.srv, env.member, title="misc jottings",
                  body=f"a long list of words that mentions {w} only once among other things",
                  visibility="public")
    twice = create(env.srv, env.member, title=f"{w} handbook", body=f"all about {w}", visibility="public")
    create(env.srv, env.member, title="unrelated", body="nothing to see", visibility="public")
    page = must_search(env.srv, env.member2, q=w)
    assert ids(page) == [twice["id"], once["id"]], page
    a, b = page["items"]
    assert HIT_KEYS <= set(a), f"missing {HIT_KEYS - set(a)}"
    assert a["score"] < b["score"], "lower bm25 score is better"
    # upper-case query finds the same notes
    assert ids(must_search(env.srv, env.member2, q=w.upper())) == [twice["id"], once["id"]]


def test_search_prefix_and_snippet(env):
    tag = uniq("pfx")
    streaming = create(env.srv, env.member, title="media", body="notes on streaming over the LAN",
                       tags=[tag], visibility="public")
    create(env.srv, env.member, title="other", body="nothing with that prefix here", tags=[tag],
           visibility="public")
    page = must_search(env.srv, env.member, q="stre*", tag=tag)
    assert ids(page) == [streaming["id"]], page
    assert ids(must_search(env.srv, env.member, q="stre", tag=tag)) == [], "no prefix without *"

    w = uniq("snip")
    n = create(env.srv, env.member, title="snippet", visibility="public",
               body=f"The first part is plain. Then {w} appears. Later text follows here.")
    page = must_search(env.srv, env.member, q=w)
    assert ids(page) == [n["id"]]
    snippet = page["items"][0]["snippet"]
    assert isinstance(snippet, list) and snippet, page
    hits = [f["text"] for f in snippet if f["hit"]]
    assert hits and all(h.lower() == w for h in hits), snippet
    assert all(w not in f["text"].lower() for f in snippet if not f["hit"]), snippet
    text = "".join(f["text"] for f in snippet)
    assert "appears" in text, f"the snippet is taken around the hit: {text!r}"


def test_search_finds_tags_and_unicode(env):
    tag = uniq("tagword")
    n = create(env.srv, env.member, title="plain", body="plain", tags=[tag], visibility="public")
    assert ids(must_search(env.srv, env.member, q=tag)) == [n["id"]], "tags are searched"
    u = create(env.srv, env.member, title="Grüße", body=f"Grüße aus Köln {tag}x 日本語", visibility="public")
    assert u["id"] in ids(must_search(env.srv, env.member, q="köln")), "unicode word"
    assert u["id"] in ids(must_search(env.srv, env.member, q="Grüße"))


def test_search_tag_author_and_visibility_filters(env):
    t1, t2 = uniq("ta"), uniq("tb")
    both = create(env.srv, env.member, title="both", tags=[t1, t2], visibility="public")
    one = create(env.srv, env.member, title="one", tags=[t1], visibility="public")
    other = create(env.srv, env.member2, title="other", tags=[t2], visibility="public")
    mine = create(env.srv, env.member, title="mine", tags=[t1], visibility="private")

    assert set(ids(must_search(env.srv, env.member2, tag=t1))) == {both["id"], one["id"]}
    assert set(ids(must_search(env.srv, env.member, tag=t1))) == {both["id"], one["id"], mine["id"]}
    assert ids(must_search(env.srv, env.member, tag=[t1, t2])) == [both["id"]], "tags are ANDed"
    assert ids(must_search(env.srv, env.member, tag=[t1, uniq("none")])) == []
    assert ids(must_search(env.srv, env.member, tag=[t2], author="max")) == [other["id"]]
    assert set(ids(must_search(env.srv, env.member, tag=[t2], author="mia"))) == {both["id"]}
    assert set(ids(must_search(env.srv, env.member, tag=t1, visibility="private"))) == {mine["id"]}
    assert set(ids(must_search(env.srv, env.member, tag=t1, visibility="public"))) == {both["id"], one["id"]}
    # with a text query too
    assert ids(must_search(env.srv, env.member, q="both", tag=[t1, t2])) == [both["id"]]


def test_search_pagination_newest_first(env):
    tag = uniq("page")
    made = [create(env.srv, env.member, title=f"p{i}", tags=[tag], visibility="public")["id"]
            for i in range(5)]
    seen = []
    for page_no, (n, more) in enumerate([(2, True), (2, True), (1, False)], start=1):
        page = must_search(env.srv, env.member2, tag=tag, per_page=2, page=page_no)
        assert page["page"] == page_no and page["per_page"] == 2, page
        assert len(page["items"]) == n and page["has_more"] is more, page
        seen += ids(page)
    assert seen == list(reversed(made)), "empty q lists newest first, pages do not overlap"
    page = must_search(env.srv, env.member2, tag=tag, per_page=2, page=4)
    assert page["items"] == [] and page["has_more"] is False


HOSTILE = ['"', '""', "'", "AND OR (", "NEAR(", "NEAR(a b", "*", "**", "a*b*", "-", "-x", "^",
           "title:x", "body:", "{a b}", "a OR", "NOT", "a AND NOT b", ")(", "\\", "%", "_",
           "x" * 300, "é" * 300, "日本語", "🎉🎉", "\u200b", "\x00", "a\x00b", "' OR 1=1 --",
           "\"unterminated", "col:\"x", "*" * 50, " ".join(["w"] * 200)]


@pytest.mark.parametrize("q", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_never_fail(env, q):
    r = search(env.srv, env.member, q=q)
    assert r.status == 200, f"q={q!r}: {r!r}"
    page = r.json()
    assert isinstance(page["items"], list)


def test_hostile_queries_still_find_literal_text(env):
    w = uniq("lit")
    n = create(env.srv, env.member, title="literal", body=f'he said "{w}" AND left (NEAR the door) or not',
               visibility="public")
    for q in (f'"{w}"', f"{w} AND", f"({w}", f"{w} NEAR(", f'"{w}" OR'):
        page = must_search(env.srv, env.member, q=q)
        assert n["id"] in ids(page), f"q={q!r} should match the literal words: {page}"


def test_hostile_filters_never_fail(env):
    for params in ({"tag": '"'}, {"tag": "' OR 1=1 --"}, {"author": "%"}, {"author": "' OR ''='"},
                   {"tag": "x" * 300}, {"author": "日本"}):
        r = search(env.srv, env.member, **params)
        assert r.status == 200, (params, r)
        assert r.json()["items"] == [], params
    for params in ({"page": "0"}, {"per_page": "0"}, {"per_page": "100000"}, {"page": "-1"},
                   {"visibility": "secret"}, {"page": "x"}):
        r = search(env.srv, env.member, **params)
        assert r.status < 500, (params, r)


# --- events, tags, analytics ------------------------------------------------------------------


def test_event_log(env):
    srv, mia, max_ = env.srv, env.member, env.member2
    v1 = create(srv, mia, title="logged", body="one", visibility="public")
    assert [e["kind"] for e in events(srv, mia, v1["id"])] == ["created"]
    assert must_get(srv, max_, v1["id"])["rev"] == v1["rev"]
    evs = wait_for(lambda: [e for e in events(srv, mia, v1["id"]) if e["kind"] == "viewed"],
                   what="a viewed event after GET")
    assert evs[0]["actor"] == "max" and evs[0]["rev"] == v1["rev"]
    v2 = must_put(srv, mia, v1["id"], v1["rev"], body="two")
    v3 = delete(srv, max_, v1["id"], v2["rev"]).json()
    assert v3["deleted"] is True
    r = call(srv, mia, "POST", f"/api/notes/{v1['id']}/restore", json_body={"rev": v2["rev"]})
    assert r.status == 200, r
    v4 = r.json()

    evs = events(srv, mia, v1["id"])
    assert all({"id", "kind", "rev", "actor", "at"} <= set(e) for e in evs), evs
    ids_ = [e["id"] for e in evs]
    assert ids_ == sorted(ids_, reverse=True), "newest first"
    writes = [(e["kind"], e["rev"], e["actor"]) for e in evs if e["kind"] != "viewed"]
    assert writes == [("restored", v4["rev"], "mia"), ("deleted", v3["rev"], "max"),
                      ("edited", v2["rev"], "mia"), ("created", v1["rev"], "mia")], writes
    now = time.time()
    assert all(now - 120 < api_time(e["at"]) <= now + 60 for e in evs), evs

    # paging: limit and before
    first = events(srv, mia, v1["id"], limit=1)
    assert len(first) == 1 and first[0]["id"] == evs[0]["id"]
    rest = events(srv, mia, v1["id"], before=first[0]["id"], limit=2)
    assert [e["id"] for e in rest] == [e["id"] for e in evs[1:3]]


def test_tag_counts(env):
    a, b = uniq("cnta"), uniq("cntb")
    notes = [create(env.srv, env.member, title=f"c{i}", tags=[a] + ([b] if i == 0 else []),
                    visibility="public") for i in range(3)]
    counts = tag_counts(env.srv, env.member2)
    assert counts.get(a) == 3 and counts.get(b) == 1, {a: counts.get(a), b: counts.get(b)}
    # re-tagging moves the count
    must_put(env.srv, env.member, notes[1]["id"], notes[1]["rev"], tags=[b])
    counts = tag_counts(env.srv, env.member2)
    assert counts.get(a) == 2 and counts.get(b) == 2
    # a deleted note no longer counts
    assert delete(env.srv, env.member, notes[2]["id"], notes[2]["rev"]).status == 200
    counts = tag_counts(env.srv, env.member2)
    assert counts.get(a) == 1 and counts.get(b) == 2, {a: counts.get(a), b: counts.get(b)}


def test_analytics(env):
    srv, mia, max_ = env.srv, env.member, env.member2
    before = analytics(srv, env.admin, days=30, top=100)
    assert {"days", "events_per_day", "most_viewed", "most_edited", "top_tags",
            "top_contributors", "searches"} <= set(before), before
    assert before["days"] == 30

    tag = uniq("an")
    watched = create(srv, mia, title="watched", tags=[tag], visibility="public")
    edited = create(srv, max_, title="edited", tags=[tag], visibility="public")
    rev = edited["rev"]
    for i in range(4):
        rev = must_put(srv, max_, edited["id"], rev, body=f"edit {i}")["rev"]
    for _ in range(3):
        assert get(srv, env.admin, watched["id"]).status == 200

    def viewed_enough():
        a = analytics(srv, env.admin, days=30, top=100)
        hit = [x for x in a["most_viewed"] if x["id"] == watched["id"]]
        return a if hit and hit[0]["count"] >= 3 else None

    after = wait_for(viewed_enough, what="3 views in most_viewed")
    mv = {x["id"]: x for x in after["most_viewed"]}
    assert mv[watched["id"]]["title"] == "watched" and mv[watched["id"]]["count"] == 3
    counts = [x["count"] for x in after["most_viewed"]]
    assert counts == sorted(counts, reverse=True)

    me = {x["id"]: x for x in after["most_edited"]}
    assert edited["id"] in me, after["most_edited"]
    assert me[edited["id"]]["count"] == must_get(srv, max_, edited["id"])["edits"] >= 4
    counts = [x["count"] for x in after["most_edited"]]
    assert counts == sorted(counts, reverse=True)

    assert {"tag": tag, "count": 2} in after["top_tags"], after["top_tags"]
    kinds_b, kinds_a = per_kind(before), per_kind(after)
    assert kinds_a.get("created", 0) - kinds_b.get("created", 0) == 2, (kinds_b, kinds_a)
    assert kinds_a.get("edited", 0) - kinds_b.get("edited", 0) == 4, (kinds_b, kinds_a)
    assert kinds_a.get("viewed", 0) - kinds_b.get("viewed", 0) >= 3
    assert any(d["day"] == today_utc() and d["kind"] == "created" for d in after["events_per_day"])
    contrib_b = {c["name"]: c["revisions"] for c in before["top_contributors"]}
    contrib_a = {c["name"]: c["revisions"] for c in after["top_contributors"]}
    assert contrib_a.get("max", 0) - contrib_b.get("max", 0) == 5, (contrib_b, contrib_a)
    assert contrib_a.get("mia", 0) - contrib_b.get("mia", 0) == 1, (contrib_b, contrib_a)

    # a search is counted
    s0 = analytics(srv, env.admin)["searches"]
    must_search(srv, max_, q=uniq("counted"))
    assert analytics(srv, env.admin)["searches"] == s0 + 1

    top1 = analytics(srv, env.admin, top=1)
    assert len(top1["top_tags"]) <= 1 and len(top1["most_viewed"]) <= 1
    assert len(top1["top_contributors"]) <= 1


# --- conflicts: only validation is reachable through the API ----------------------------------


def test_api_edits_never_make_conflicts(env):
    n = create(env.srv, env.member, title="c", body="x", visibility="public")
    assert n["conflicts"] == []
    n2 = must_put(env.srv, env.member, n["id"], n["rev"], body="y")
    assert n2["conflicts"] == []
    revs = call(env.srv, env.member, "GET", f"/api/notes/{n['id']}/revisions").json()["revisions"]
    assert [r["rev"] for r in revs if r["leaf"]] == [n2["rev"]], "one leaf only"


def test_resolve_validation(env):
    srv, mia = env.srv, env.member
    n = create(srv, mia, title="resolve me", body="line one\nline two\n", visibility="public")
    merged = {"title": "merged", "body": "merged body", "tags": [], "visibility": "public"}
    r = call(srv, mia, "POST", f"/api/notes/{n['id']}/resolve", json_body={"merged": merged, "resolves": []})
    assert_error(r, 422, "invalid", mentions="resolves")
    r = call(srv, mia, "POST", f"/api/notes/{n['id']}/resolve",
             json_body={"merged": merged, "resolves": ["b" * 64]})
    assert_error(r, 422, "invalid", mentions="resolves")
    # the current revision is not a conflict of itself
    r = call(srv, mia, "POST", f"/api/notes/{n['id']}/resolve",
             json_body={"merged": merged, "resolves": [n["rev"]]})
    assert_error(r, 422, "invalid", mentions="resolves")
    r = call(srv, mia, "POST", f"/api/notes/{n['id']}/resolve", json_body={"merged": merged})
    assert_error(r, 422, "invalid", mentions="resolves")
    r = call(srv, mia, "POST", f"/api/notes/{n['id']}/resolve",
             json_body={"merged": {"title": "x", "bogus": 1}, "resolves": [n["rev"]]})
    assert_error(r, 422, "invalid", mentions="bogus")
    r = call(srv, mia, "POST", f"/api/notes/{MISSING_ID}/resolve",
             json_body={"merged": merged, "resolves": ["b" * 64]})
    assert_error(r, 404, "not_found")
    got = must_get(srv, mia, n["id"])
    assert got["rev"] == n["rev"] and got["title"] == "resolve me", "a failed resolve changes nothing"


def test_merge_validation(env):
    srv, mia = env.srv, env.member
    n = create(srv, mia, title="merge me", body="line one\nline two\n", visibility="public")
    r = call(srv, mia, "POST", f"/api/notes/{n['id']}/merge", json_body={"rev": n["rev"]})
    assert 400 <= r.status < 500, f"merging the current revision with itself: {r!r}"
    r = call(srv, mia, "POST", f"/api/notes/{n['id']}/merge", json_body={})
    assert_error(r, 422, "invalid", mentions="rev")
    r = call(srv, mia, "POST", f"/api/notes/{MISSING_ID}/merge", json_body={"rev": "c" * 64})
    assert_error(r, 404, "not_found")
    got = must_get(srv, mia, n["id"])
    assert got["rev"] == n["rev"] and got["title"] == "merge me", "a failed merge changes nothing"
    # a revision this note does not have: not found (brief: 404)
    r = call(srv, mia, "POST", f"/api/notes/{n['id']}/merge", json_body={"rev": "c" * 64})
    assert_error(r, 404, "not_found")


# --- limits and bad input -------------------------------------------------------------------


def post_raw(srv, cred, body, ctype="application/json", path="/api/notes", method="POST", headers=None):
    h = dict(cred.headers)
    if ctype is not None:
        h["Content-Type"] = ctype
    h.update(headers or {})
    return http_call(srv, method, path, headers=h, body=body)


def test_title_limit_is_500_characters(env):
    ok = create(env.srv, env.member, title="é" * 500)  # 1000 bytes, 500 characters
    assert len(ok["title"]) == 500
    r = call(env.srv, env.member, "POST", "/api/notes", json_body={"title": "t" * 501})
    assert_error(r, 413, "too_large")
    r = put(env.srv, env.member, ok["id"], ok["rev"], title="é" * 501)
    assert_error(r, 413, "too_large")
    assert must_get(env.srv, env.member, ok["id"])["rev"] == ok["rev"]


def test_body_limit_is_1_mib(env):
    mib = 1024 * 1024
    ok = create(env.srv, env.member, title="big", body="b" * mib)
    assert len(ok["body"]) == mib
    r = call(env.srv, env.member, "POST", "/api/notes", json_body={"title": "big", "body": "b" * (mib + 1)})
    assert_error(r, 413, "too_large")
    # multi-byte: 524289 two-byte characters are 1 MiB + 2 bytes
    r = call(env.srv, env.member, "POST", "/api/notes", json_body={"title": "big", "body": "é" * (mib // 2 + 1)})
    assert_error(r, 413, "too_large")
    r = put(env.srv, env.member, ok["id"], ok["rev"], body="c" * (mib + 1))
    assert_error(r, 413, "too_large")
    # more than 8 MiB of JSON
    r = post_raw(env.srv, env.member, b'{"title":"x","body":"' + b"\\u0041" * (1_500_000) + b'"}')
    assert_error(r, 413, "too_large")


def test_tag_limits(env):
    ok = create(env.srv, env.member, title="64 tags", tags=[f"t{i}" for i in range(64)])
    assert len(ok["tags"]) == 64
    r = call(env.srv, env.member, "POST", "/api/notes",
             json_body={"title": "65 tags", "tags": [f"t{i}" for i in range(65)]})
    assert_error(r, 422, "invalid", mentions="tags")
    # duplicates collapse before counting
    ok2 = create(env.srv, env.member, title="dups", tags=[f"T{i % 64}" for i in range(100)])
    assert len(ok2["tags"]) == 64
    ok3 = create(env.srv, env.member, title="64 chars", tags=["x" * 64])
    assert ok3["tags"] == ["x" * 64]
    r = put(env.srv, env.member, ok["id"], ok["rev"], tags=[f"u{i}" for i in range(65)])
    assert_error(r, 422, "invalid", mentions="tags")
    # a tag over 64 characters: the contract keeps 413 for title/body, so this is 422
    r = call(env.srv, env.member, "POST", "/api/notes", json_body={"title": "long tag", "tags": ["x" * 65]})
    assert_error(r, 422, "invalid", mentions="tags")


@pytest.mark.parametrize("doc,field", [
    ({"title": "x", "colour": "red"}, "colour"),
    ({"title": 5}, "title"),
    ({"title": "x", "body": ["a"]}, "body"),
    ({"title": "x", "tags": "a,b"}, "tags"),
    ({"title": "x", "tags": [1, 2]}, "tags"),
    ({"title": "x", "visibility": "secret"}, "visibility"),
    ({"title": "x", "visibility": True}, "visibility"),
    ({"body": "no title"}, "title"),
])
def test_bad_fields_are_422_naming_the_field(env, doc, field):
    r = call(env.srv, env.member, "POST", "/api/notes", json_body=doc)
    assert_error(r, 422, "invalid", mentions=field)


def test_put_bad_fields_are_422(env):
    n = create(env.srv, env.member, title="edit me")
    for doc, field in (({"colour": "red"}, "colour"), ({"title": 1}, "title"),
                       ({"tags": {"a": 1}}, "tags"), ({"visibility": "everyone"}, "visibility")):
        assert_error(put(env.srv, env.member, n["id"], n["rev"], **doc), 422, "invalid", mentions=field)
    assert must_get(env.srv, env.member, n["id"])["rev"] == n["rev"]


@pytest.mark.parametrize("raw", [
    b'{"title":"\xff\xfe bad"}',
    b'{"title":"ok","body":"\xc3\x28"}',
    b'{"title":"ok","body":"\xed\xa0\x80"}',  # UTF-8 encoded surrogate
])
def test_invalid_utf8_is_400(env, raw):
    assert_error(post_raw(env.srv, env.member, raw), 400)


@pytest.mark.parametrize("raw", [b'{"title": "x"', b"{title: 'x'}", b"", b'{"title":"x"} junk', b"[1,"])
def test_malformed_json_is_400(env, raw):
    assert_error(post_raw(env.srv, env.member, raw), 400, "bad_json")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_is_415(env, ctype):
    assert_error(post_raw(env.srv, env.member, b'{"title":"x"}', ctype=ctype), 415, "unsupported_media_type")
    n = create(env.srv, env.member, title="ctype")
    r = post_raw(env.srv, env.member, b'{"body":"y"}', ctype=ctype, path=f"/api/notes/{n['id']}",
                 method="PUT", headers=if_match(n["rev"]))
    assert_error(r, 415, "unsupported_media_type")


def test_configured_body_limit(small):
    ok = create(small.srv, small.member, title="fits", body="x" * 1000)
    assert len(ok["body"]) == 1000
    r = call(small.srv, small.member, "POST", "/api/notes", json_body={"title": "too big", "body": "x" * 2000})
    assert_error(r, 413, "too_large")
    r = put(small.srv, small.member, ok["id"], ok["rev"], body="y" * 2000)
    assert_error(r, 413, "too_large")
    r = call(small.srv, small.member, "POST", "/api/notes", json_body={"title": "one over", "body": "x" * 1001})
    assert_error(r, 413, "too_large")
