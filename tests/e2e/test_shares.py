"""Share links: `POST /api/shares`, `GET|HEAD /s/<token>`, expiry, revocation, tampering.

The copyparty CVE-2025-58753 lesson: a link to one file must never reveal another file,
whatever is appended to or substituted in the URL.
"""

import base64
import binascii
import re
import time
import uuid
from datetime import datetime

import pytest

from conftest import (
    api_time,
    LEAK_MARK,
    NESTED,
    NESTED_TEXT,
    AUTH_MEDIA_FILES,
    AuthEnv,
    assert_error,
    curl_fetch,
    http_call,
    new_share,
    parse_content_range,
    raw_get,
    start_auth_server,
)

OTHER = "sub/dir/other.txt"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def env(module_servers, auth_media):
    srv = start_auth_server(module_servers, auth_media["root"], name="shares", login_max_failures=200)
    e = AuthEnv(srv)
    # made when the module starts, so the wait for its expiry overlaps other tests
    t0 = time.time()
    # 2 s, not 1: the expiry is stored in whole seconds, so a 1 s link made late in a second
    # could expire before the "at once" read (a rehearsal's 410).
    sh = new_share(srv, e.member, NESTED, expires_in=2)
    e.early_share = (t0, sh, get(srv, sh["url"]))
    return e


@pytest.fixture(scope="module")
def closed(module_servers, auth_media):
    srv = start_auth_server(module_servers, auth_media["root"], name="shares-closed",
                            anonymous_read=False, login_max_failures=200)
    return AuthEnv(srv, second_member=False)


@pytest.fixture(scope="module")
def share(env):
    return new_share(env.srv, env.member, NESTED)


def token_of(sh):
    m = re.fullmatch(r"https?://[^/]+/s/([^/?#]+)", sh["url"])
    assert m, f"share url is not a full URL ending in /s/<token>: {sh['url']!r}"
    return m.group(1)


def get(srv, target, method="GET", headers=None):
    """Byte-exact request target (no client normalisation)."""
    return raw_get(srv.port, target, method=method, headers=headers)


def assert_no_leak(r):
    assert LEAK_MARK not in r.body, f"another file's bytes leaked through a share URL: {r!r}"


def ts(v):
    """A timestamp field: RFC 3339 UTC (docs/CONTRACT.md), as epoch seconds."""
    return api_time(v)


# --- create + fetch ---------------------------------------------------------------------------------


def test_create_share_fields(env):
    t0 = time.time()
    r = http_call(env.srv, "POST", "/api/shares", headers=env.member.headers, json_body={"path": NESTED})
    assert r.status == 201, r
    j = r.json()
    assert set(j) == {"id", "path", "url", "expires_at"}, j
    assert j["path"] == NESTED
    tok = token_of(j)
    assert len(tok) >= 20, tok
    # default lifetime: 604800 s
    assert abs(ts(j["expires_at"]) - (t0 + 604800)) < 120, j


def test_get_share_exact_bytes_anonymous(env, share):
    r = get(env.srv, share["url"])
    assert r.status == 200, r
    assert r.body == NESTED_TEXT
    assert int(r.header("content-length")) == len(NESTED_TEXT)
    assert r.header("content-type", "").startswith("text/plain")
    assert r.header("accept-ranges") == "bytes"
    assert r.header("etag", "").startswith('"')


def test_share_with_curl(env, share):
    assert share["url"].startswith(f"http://127.0.0.1:{env.srv.port}/s/"), share["url"]
    r = curl_fetch(share["url"])  # the link exactly as handed out
    assert r.status == 200 and r.body == NESTED_TEXT, r
    path = "/s/" + token_of(share)
    r = curl_fetch(env.srv.tls_url(path), extra=["--cacert", env.srv.cert_path])
    assert r.status == 200 and r.body == NESTED_TEXT, r


def test_share_head(env, share):
    r = get(env.srv, share["url"], method="HEAD")
    assert r.status == 200, r
    assert r.body == b""
    assert int(r.header("content-length")) == len(NESTED_TEXT)
    assert r.header("etag")


@pytest.mark.parametrize("rng,start,end", [("bytes=2-5", 2, 5), ("bytes=-4", len(NESTED_TEXT) - 4, len(NESTED_TEXT) - 1),
                                           ("bytes=10-", 10, len(NESTED_TEXT) - 1)])
def test_share_range(env, share, rng, start, end):
    r = get(env.srv, share["url"], headers={"Range": rng})
    assert r.status == 206, r
    assert parse_content_range(r.header("content-range")) == (start, end, len(NESTED_TEXT))
    assert r.body == NESTED_TEXT[start:end + 1]


def test_share_range_unsatisfiable(env, share):
    r = get(env.srv, share["url"], headers={"Range": "bytes=1000-2000"})
    assert_error(r, 416, "range_not_satisfiable")
    assert r.header("content-range") == f"bytes */{len(NESTED_TEXT)}"


def test_share_conditional(env, share):
    etag = get(env.srv, share["url"], method="HEAD").header("etag")
    r = get(env.srv, share["url"], headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b"", r
    r = get(env.srv, share["url"], headers={"If-Match": '"definitely-not-it"'})
    assert_error(r, 412, "precondition_failed")


def test_share_works_with_anonymous_read_off(closed):
    sh = new_share(closed.srv, closed.member, NESTED)
    # sanity: anonymous media access is closed on this server
    assert_error(get(closed.srv, "/media/" + NESTED), 401, "unauthorized")
    r = get(closed.srv, sh["url"])
    assert r.status == 200 and r.body == NESTED_TEXT, r
    r = get(closed.srv, sh["url"], headers={"Range": "bytes=0-3"})
    assert r.status == 206 and r.body == NESTED_TEXT[:4], r
    r = get(closed.srv, sh["url"], method="HEAD")
    assert r.status == 200 and r.body == b"" and int(r.header("content-length")) == len(NESTED_TEXT)


def test_share_of_prefix_named_file_serves_only_it(env):
    # deep.tx is a prefix of deep.txt: each link serves its own file exactly
    sh = new_share(env.srv, env.member, "sub/dir/deep.tx")
    r = get(env.srv, sh["url"])
    assert r.status == 200 and r.body == AUTH_MEDIA_FILES["sub/dir/deep.tx"], r


# --- tampering: never anything but the one file ----------------------------------------------------

ATTACKS = [
    "{u}/sibling.txt",
    "{u}/../sibling.txt",
    "{u}/../deep.txt",
    "{u}/..%2Fsibling.txt",
    "{u}%2F..%2Fsibling.txt",
    "{u}%2f..%2fsibling.txt",
    "{u}/%2e%2e/sibling.txt",
    "{u}/%2e%2e%2fsibling.txt",
    "{u}/x",
    "{u}/",
    "{u}/.",
    "{u}/..",
    "{u}//sibling.txt",
    "{u}sibling.txt",
    "{u}/deep.txt",
    "{u}.bak",
    "{u}/../../secret.txt",
    "{u}/../peek.txt",
    "{u};/sibling.txt",
    "{u}%00/../sibling.txt",
    "{u}%00",
    "/s/sibling.txt",
    "/s/sub/dir/sibling.txt",
    "/s/sub%2Fdir%2Fsibling.txt",
    "/s/../s/{t}/../sibling.txt",
    "/s/",
    "/s",
    "/s//{t}",
    "/s/{t}{t}",
    "/s/{t}/{t}",
]


@pytest.mark.parametrize("pattern", ATTACKS)
def test_tampered_urls_404(env, share, pattern):
    url = share["url"]
    target = pattern.format(u=url, t=token_of(share))
    for method in ("GET", "HEAD"):
        r = get(env.srv, target, method=method)
        assert_no_leak(r)
        if method == "GET":
            assert_error(r, 404, "not_found")
        else:
            assert r.status == 404 and r.body == b"", r


def test_query_string_cannot_redirect_a_share(env, share):
    for q in ("?path=sub/dir/sibling.txt", "?file=../sibling.txt", "?p=%2e%2e%2fsibling.txt"):
        r = get(env.srv, share["url"] + q)
        assert_no_leak(r)
        assert r.status in (200, 404), r
        if r.status == 200:
            assert r.body == NESTED_TEXT


def _flip(c):
    if c in B64URL:
        return B64URL[B64URL.index(c) ^ 0x20]  # changes a high-order, always-significant bit
    return "A"


def test_flipped_token_character_404(env, share):
    tok = token_of(share)
    positions = sorted({0, 1, len(tok) // 3, len(tok) // 2, 2 * len(tok) // 3, len(tok) - 2, len(tok) - 1})
    for i in positions:
        bad = tok[:i] + _flip(tok[i]) + tok[i + 1:]
        assert bad != tok
        r = get(env.srv, f"/s/{bad}")
        assert_no_leak(r)
        assert_error(r, 404, "not_found")
    for bad in (tok[:-1], tok[1:], tok + "A", tok.upper() if tok.upper() != tok else tok.lower()):
        if bad == tok:
            continue
        r = get(env.srv, f"/s/{bad}")
        assert_error(r, 404, "not_found")


def test_spliced_tokens_404(env):
    a = token_of(new_share(env.srv, env.member, NESTED))
    b = token_of(new_share(env.srv, env.member, OTHER))
    c = token_of(new_share(env.srv, env.member2, "sub/dir/sibling.txt"))
    assert len({a, b, c}) == 3
    tried = 0
    for x, y in ((a, b), (b, a), (a, c), (c, a), (b, c)):
        n = min(len(x), len(y))
        for k in sorted({n // 4, n // 2, 3 * n // 4, n - 8}):
            spliced = x[:k] + y[k:]
            if spliced in (a, b, c):
                continue
            tried += 1
            r = get(env.srv, f"/s/{spliced}")
            assert_error(r, 404, "not_found")
            # a splice may only ever fail: not the sibling, not the others
            assert r.body not in (NESTED_TEXT, AUTH_MEDIA_FILES[OTHER])
    assert tried >= 10


def _decode_variants(tok):
    """(decoded bytes, re-encoder) for each way the token (or a '.'-part) decodes."""
    out = []
    parts = tok.split(".")
    for idx, part in enumerate(parts):
        def rebuild(newpart, idx=idx):
            p2 = list(parts)
            p2[idx] = newpart
            return ".".join(p2)
        pad = "=" * (-len(part) % 4)
        for dec, enc in (
            (lambda s: base64.urlsafe_b64decode(s + pad),
             lambda b, strip=not part.endswith("="): base64.urlsafe_b64encode(b).decode().rstrip("=" if strip else "")),
            (lambda s: base64.b64decode(s + pad, validate=True), lambda b: base64.b64encode(b).decode()),
            (lambda s: binascii.unhexlify(s), lambda b: binascii.hexlify(b).decode()),
        ):
            try:
                raw = dec(part)
            except (binascii.Error, ValueError):
                continue
            out.append((raw, lambda b, enc=enc, rebuild=rebuild: rebuild(enc(b))))
    return out


def test_substituted_token_bytes_404(env, share):
    """Byte-level substitution: the token of the sibling's share with parts of this one's
    (e.g. the sibling's id with this link's signature, or the other way round) never works."""
    tok = token_of(share)
    sib = token_of(new_share(env.srv, env.member, "sub/dir/sibling.txt"))
    # a token that spells the path in the clear: substituting another name must fail
    for needle, repl in (("sub%2Fdir%2Fdeep.txt", "sub%2Fdir%2Fpeek.txt"), ("deep.txt", "peek.txt")):
        if needle in tok:
            r = get(env.srv, "/s/" + tok.replace(needle, repl))
            assert_no_leak(r)
            assert_error(r, 404, "not_found")
    tried = 0
    for (ra, enc), (rb, _) in zip(_decode_variants(tok), _decode_variants(sib)):
        if len(ra) != len(rb) or len(ra) < 8:
            continue
        for needle in (b"deep.txt",):
            if needle in ra:  # the path in encoded form: swap in a same-length sibling name
                r = get(env.srv, "/s/" + enc(ra.replace(needle, b"peek.txt")))
                assert_no_leak(r)
                assert_error(r, 404, "not_found")
        for k in range(1, len(ra)):
            for x, y in ((ra, rb), (rb, ra)):
                spliced = x[:k] + y[k:]
                if spliced in (ra, rb):
                    continue
                tried += 1
                r = get(env.srv, "/s/" + enc(spliced))
                assert_no_leak(r)
                assert_error(r, 404, "not_found")
    if not tried:
        pytest.skip("token is neither base64 nor hex; covered by the character-level tests")


# --- expiry, revocation, ownership, listing -------------------------------------------------------------


def test_share_expires(env):
    t0, sh, first = env.early_share
    assert abs(ts(sh["expires_at"]) - (t0 + 2)) < 3, sh
    assert first.status == 200 and first.body == NESTED_TEXT, f"must work at once: {first!r}"
    time.sleep(max(0.0, t0 + 3.2 - time.time()))
    r = get(env.srv, sh["url"])
    assert_error(r, 410, "link_expired")
    assert NESTED_TEXT not in r.body
    r = get(env.srv, sh["url"], headers={"Range": "bytes=0-3"})
    assert_error(r, 410, "link_expired")
    r = get(env.srv, sh["url"], method="HEAD")
    assert r.status == 410 and r.body == b"", r


def test_share_revoke(env):
    sh = new_share(env.srv, env.member, NESTED)
    assert get(env.srv, sh["url"]).status == 200
    r = http_call(env.srv, "DELETE", f"/api/shares/{sh['id']}", headers=env.member.headers)
    assert r.status == 204 and r.body == b"", r
    r = get(env.srv, sh["url"])
    assert_error(r, 410, "link_revoked")
    assert NESTED_TEXT not in r.body
    # listing shows it revoked
    lst = http_call(env.srv, "GET", "/api/shares", headers=env.member.headers).json()["shares"]
    mine = [s for s in lst if s["id"] == sh["id"]]
    assert len(mine) == 1 and mine[0]["revoked"] is True, mine
    # deleting again: it is no longer a live share of yours (204 or 404, never 5xx)
    r = http_call(env.srv, "DELETE", f"/api/shares/{sh['id']}", headers=env.member.headers)
    assert r.status in (204, 404), r


def test_share_delete_by_other_member_and_admin(env):
    sh = new_share(env.srv, env.member, NESTED)
    r = http_call(env.srv, "DELETE", f"/api/shares/{sh['id']}", headers=env.member2.headers)
    assert_error(r, 404, "not_found")
    assert get(env.srv, sh["url"]).body == NESTED_TEXT
    r = http_call(env.srv, "DELETE", f"/api/shares/{sh['id']}", headers=env.admin.headers)
    assert r.status == 204, r
    assert_error(get(env.srv, sh["url"]), 410, "link_revoked")


@pytest.mark.parametrize(
    "path,status,code",
    [
        ("sub/dir/missing.txt", 404, "not_found"),
        ("../x", 400, "bad_path"),
        ("sub/../../x", 400, "bad_path"),
        ("/etc/passwd", 404, "not_found"),  # a leading "/" is the media root
        ("//etc/passwd", 400, "bad_path"),
        ("sub/dir/deep.txt\u0000", 400, "bad_path"),
        ("sub\\dir\\deep.txt", 400, "bad_path"),
    ],
)
def test_share_bad_paths(env, path, status, code):
    r = http_call(env.srv, "POST", "/api/shares", headers=env.member.headers, json_body={"path": path})
    assert_error(r, status, code)


def test_share_of_file_removed_later_404(env):
    name = f"gone-{uuid.uuid4().hex}.txt"
    p = env.srv.media_root / name
    p.write_bytes(b"soon gone\n")
    try:
        sh = new_share(env.srv, env.member, name)
        assert get(env.srv, sh["url"]).body == b"soon gone\n"
    finally:
        p.unlink()
    assert_error(get(env.srv, sh["url"]), 404, "not_found")


def test_share_listing_own_vs_all(env):
    a = new_share(env.srv, env.member, NESTED)
    b = new_share(env.srv, env.member2, OTHER)
    r = http_call(env.srv, "GET", "/api/shares", headers=env.member.headers)
    assert r.status == 200, r
    shares = r.json()["shares"]
    ids = {s["id"] for s in shares}
    assert a["id"] in ids and b["id"] not in ids
    assert {s["user"] for s in shares} == {"mia"}
    ent = [s for s in shares if s["id"] == a["id"]][0]
    assert set(ent) == {"id", "path", "url", "user", "created_at", "expires_at", "revoked"}, ent
    assert ent["path"] == NESTED and ent["url"] == a["url"] and ent["revoked"] is False
    assert ent["expires_at"] == a["expires_at"]
    r = http_call(env.srv, "GET", "/api/shares", headers=env.admin.headers)
    ids = {s["id"] for s in r.json()["shares"]}
    assert {a["id"], b["id"]} <= ids
    assert_error(http_call(env.srv, "GET", "/api/shares"), 401, "unauthorized")


def test_share_tokens_never_reach_the_log(env):
    srv = env.srv
    share = new_share(srv, env.member, NESTED)
    r = raw_get(srv.port, share["url"])
    assert r.status == 200
    token = share["url"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 5
    while 'path="/s/<token>"' not in srv.stderr_text():
        assert time.monotonic() < deadline, srv.stderr_text()[-2000:]
        time.sleep(0.05)
    assert token not in srv.stderr_text()
