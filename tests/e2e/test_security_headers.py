"""Security headers on every response; media a browser would run is sandboxed and downloaded."""

import re

import pytest

from conftest import (
    AUTH_MEDIA_FILES,
    AuthEnv,
    csp_directives,
    http_call,
    new_share,
    start_auth_server,
)

# name -> acceptable Content-Type essences
ACTIVE = {
    "evil.html": {"text/html"},
    "page.htm": {"text/html"},
    "page.xhtml": {"application/xhtml+xml"},
    "x.svg": {"image/svg+xml"},
    "data.xml": {"application/xml", "text/xml"},
    # Scripts go out as plain text: with nosniff no page can load them as a <script>.
    "app.js": {"text/plain"},
    "mod.mjs": {"text/plain"},
}
# Rarer spellings of active types, uploaded by a member in the test (judged by their type).
ACTIVE_UPLOADED = {
    "b.xht": b'<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>',
    "t.xslt": b'<?xml version="1.0"?><x/>',
    # issue 12: schemas and DTDs are XML documents a browser renders (and may style by XSLT)
    "s.xsd": b'<?xml version="1.0"?><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>',
    "d.dtd": b'<!ELEMENT x ANY>',
    "f.rss": b'<?xml version="1.0"?><rss version="2.0"/>',
    "c.jsx": b"alert(1)",
    "s.css": b"body{display:none}",
}
PASSIVE = {
    "clip.mp4": {"video/mp4"},
    "pic.png": {"image/png"},
    "ten.bin": {"application/octet-stream"},
}


@pytest.fixture(scope="module")
def env(module_servers, auth_media):
    srv = start_auth_server(module_servers, auth_media["root"], name="headers", login_max_failures=200)
    return AuthEnv(srv)


def policies(r):
    vals = r.header_all("content-security-policy")
    assert vals, f"no Content-Security-Policy: {r!r}"
    return [csp_directives(v) for v in vals]


def check_common(r, tls):
    """The headers every response carries."""
    pols = policies(r)
    # no inline script: some policy restricts scripts without 'unsafe-inline'
    script_ok = False
    for p in pols:
        src = p.get("script-src", p.get("default-src"))
        if src is not None and "'unsafe-inline'" not in [t.lower() for t in src] and "*" not in src:
            script_ok = True
        if "script-src" in p:
            assert "'unsafe-inline'" not in [t.lower() for t in p["script-src"]], p
    assert script_ok, f"CSP does not forbid inline script: {r.header_all('content-security-policy')}"
    assert any(p.get("frame-ancestors") == ["'none'"] for p in pols), r.header_all("content-security-policy")
    assert r.header("x-content-type-options", "").lower() == "nosniff", r
    assert r.header("referrer-policy", "").lower() == "no-referrer", r
    assert r.header("x-frame-options", "").upper() == "DENY", r
    hsts = r.header("strict-transport-security")
    if tls:
        assert hsts, f"no HSTS over HTTPS: {r!r}"
        m = re.search(r"max-age=(\d+)", hsts)
        assert m and int(m.group(1)) > 0, hsts
    else:
        assert hsts is None, f"HSTS over plain HTTP: {hsts!r}"


def scriptless(r):
    """Media a browser shows itself (video, audio, images) is not sandboxed (its player
    needs the origin to load the bytes), but no script may run in it."""
    pols = policies(r)
    assert any(p.get("default-src") == ["'none'"] and "script-src" not in p for p in pols), \
        r.header_all("content-security-policy")


def sandboxed(r):
    pols = policies(r)
    sb = [p["sandbox"] for p in pols if "sandbox" in p]
    assert sb, f"no sandbox in CSP: {r.header_all('content-security-policy')}"
    for toks in sb:
        assert "allow-scripts" not in [t.lower() for t in toks], toks


def disposition(r):
    cd = r.header("content-disposition")
    assert cd, f"no Content-Disposition: {r!r}"
    return cd.split(";")[0].strip().lower()


def essence(r):
    return (r.header("content-type") or "").split(";")[0].strip().lower()


REQUESTS = [
    ("GET", "/api/library", None, 200),
    ("GET", "/api/me", None, 401),
    ("GET", "/api/me", "member", 200),
    ("GET", "/api/tokens", "member", 200),
    ("POST", "/api/login", "badlogin", 401),
    ("GET", "/healthz", None, 200),
    ("GET", "/readyz", None, 200),
    ("GET", "/media/ten.bin", None, 200),
    ("HEAD", "/media/ten.bin", None, 200),
    ("GET", "/media/nope.bin", None, 404),
    ("GET", "/media/%2e%2e/secret", None, 400),
    ("GET", "/no/such/route", None, 404),
    ("PATCH", "/media/ten.bin", None, 405),
    ("GET", "/s/not-a-valid-token", None, 404),
    ("GET", "/api/users", "member", 403),
]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("method,path,who,status", REQUESTS, ids=[f"{m} {p} {w or 'anon'}" for m, p, w, _ in REQUESTS])
def test_headers_on_every_response(env, tls, method, path, who, status):
    kw = {}
    headers = {}
    if who == "member":
        headers = env.member.headers
    elif who == "badlogin":
        kw["json_body"] = {"name": "mia", "password": "wrong password"}
    r = http_call(env.srv, method, path, headers=headers, tls=tls, **kw)
    assert r.status == status, r
    check_common(r, tls)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_headers_on_share_and_range(env, tls):
    sh = new_share(env.srv, env.member, "sub/dir/deep.txt")
    for hdrs, status in (({}, 200), ({"Range": "bytes=0-3"}, 206)):
        r = http_call(env.srv, "GET", sh["url"], headers=hdrs, tls=tls)
        assert r.status == status, r
        check_common(r, tls)
    r = http_call(env.srv, "GET", "/media/ten.bin", headers={"Range": "bytes=1-2"}, tls=tls)
    assert r.status == 206 and r.body == b"12"
    check_common(r, tls)


@pytest.mark.parametrize("name", sorted(ACTIVE))
@pytest.mark.parametrize("method", ["GET", "HEAD", "RANGE"])
def test_active_media_is_sandboxed_attachment(env, name, method):
    headers = {"Range": "bytes=0-4"} if method == "RANGE" else {}
    r = http_call(env.srv, "HEAD" if method == "HEAD" else "GET", "/media/" + name, headers=headers)
    assert r.status == (206 if method == "RANGE" else 200), r
    assert essence(r) in ACTIVE[name], r.header("content-type")
    assert disposition(r) == "attachment", r.header("content-disposition")
    sandboxed(r)
    check_common(r, False)
    if method == "GET":
        assert r.body == AUTH_MEDIA_FILES[name]


@pytest.mark.parametrize("name", sorted(PASSIVE))
def test_passive_media_is_inline(env, name):
    r = http_call(env.srv, "GET", "/media/" + name)
    assert r.status == 200, r
    assert essence(r) in PASSIVE[name], r.header("content-type")
    assert disposition(r) == "inline", r.header("content-disposition")
    if essence(r).startswith(("video/", "image/")):
        scriptless(r)
    else:
        sandboxed(r)
    check_common(r, False)
    assert r.body == AUTH_MEDIA_FILES[name]


@pytest.mark.parametrize("name,kind", [("evil.html", "attachment"), ("x.svg", "attachment"), ("clip.mp4", "inline")])
def test_share_of_media_same_treatment(env, name, kind):
    sh = new_share(env.srv, env.member, name)
    for method in ("GET", "HEAD"):
        r = http_call(env.srv, method, sh["url"])
        assert r.status == 200, r
        assert essence(r) in {**ACTIVE, **PASSIVE}[name]
        assert disposition(r) == kind, r.header("content-disposition")
        if kind == "attachment":
            sandboxed(r)
        else:
            scriptless(r)
        check_common(r, False)


@pytest.mark.parametrize("name", sorted(ACTIVE_UPLOADED))
def test_rarer_active_types_are_downloaded_and_scripts_are_text(env, name):
    r = http_call(env.srv, "PUT", f"/media/active/{name}", headers=env.member.headers,
                  body=ACTIVE_UPLOADED[name])
    assert r.status == 201, r
    r = http_call(env.srv, "GET", f"/media/active/{name}")
    assert r.status == 200 and r.body == ACTIVE_UPLOADED[name], r
    sandboxed(r)
    if name.endswith((".jsx", ".css")):
        assert essence(r) == "text/plain", r.header("content-type")
    else:
        assert disposition(r) == "attachment", r.header("content-disposition")
        # and the same through a share link, GET and HEAD
        sh = new_share(env.srv, env.member, f"active/{name}")
        for method in ("GET", "HEAD"):
            r = http_call(env.srv, method, sh["url"])
            assert r.status == 200, r
            assert disposition(r) == "attachment", (method, r.header("content-disposition"))
            sandboxed(r)


def test_media_with_credentials_still_sandboxed(env):
    # logged-in users are the ones a script in an uploaded file would target
    r = http_call(env.srv, "GET", "/media/evil.html", headers=env.member_s.headers)
    assert r.status == 200
    assert disposition(r) == "attachment"
    sandboxed(r)
    r = http_call(env.srv, "GET", "/media/evil.html", headers=env.admin.headers, tls=True)
    assert r.status == 200
    assert disposition(r) == "attachment"
    sandboxed(r)
    check_common(r, True)


def test_upper_case_extension_is_still_active(env):
    # UPPER.HTML must not slip past a case-sensitive extension check
    r = http_call(env.srv, "GET", "/media/UPPER.HTML")
    assert r.status == 200, r
    assert essence(r) == "text/html", r.header("content-type")
    assert disposition(r) == "attachment"
    sandboxed(r)
