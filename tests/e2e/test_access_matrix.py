"""Every cell of the access matrix in docs/SECURITY.md.

Principals: anon (no credentials), member and admin, each as an API token (Bearer) and as a
session cookie (with its X-CSRF-Token, as a browser client sends it). "owner" = the member
who created the object. A second server runs with `auth.anonymous_read = false`.
"""

import shutil
import uuid

import pytest

from conftest import (
    ANON,
    AUTH_PW,
    NESTED,
    NESTED_TEXT,
    AuthEnv,
    assert_error,
    cli_add_user,
    http_call,
    login,
    must_login,
    new_share,
    new_token,
    start_auth_server,
    wait_setup_token,
)

WHO = ["anon", "member", "admin", "member-session", "admin-session"]


@pytest.fixture(scope="module")
def matrix_media(auth_media, tmp_path_factory):
    """A private copy: the upload rows write, move and delete files."""
    root = tmp_path_factory.mktemp("matrixmedia") / "media"
    shutil.copytree(auth_media["root"], root)
    return root


@pytest.fixture(scope="module")
def env(module_servers, matrix_media):
    srv = start_auth_server(module_servers, matrix_media, name="matrix", login_max_failures=200)
    return AuthEnv(srv)


@pytest.fixture(scope="module")
def closed(module_servers, matrix_media):
    """anonymous_read = false."""
    srv = start_auth_server(module_servers, matrix_media, name="closed",
                            anonymous_read=False, login_max_failures=200)
    return AuthEnv(srv, second_member=False)


def cred(env, who):
    return {
        "anon": ANON,
        "member": env.member,
        "admin": env.admin,
        "member-session": env.member_s,
        "admin-session": env.admin_s,
    }[who]


def role(who):
    return who.split("-")[0]


def call(env, who, method, path, **kw):
    return http_call(env.srv, method, path, headers=cred(env, who).headers, **kw)


def user_names(env):
    r = http_call(env.srv, "GET", "/api/users", headers=env.admin.headers)
    assert r.status == 200, r
    return {u["name"] for u in r.json()["users"]}


def expect(r, status):
    if status >= 400:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "exists"}.get(status)
        assert_error(r, status, code)
    else:
        assert r.status == status, r


# --- read routes -----------------------------------------------------------------------------

READS = [
    ("GET", "/media/" + NESTED),
    ("HEAD", "/media/" + NESTED),
    ("GET", "/api/library"),
    ("GET", "/api/library?path=sub/dir"),
]
PROBES = [("GET", "/healthz"), ("GET", "/readyz")]


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("method,path", READS + PROBES, ids=[f"{m} {p}" for m, p in READS + PROBES])
def test_read_routes_open(env, who, method, path):
    r = call(env, who, method, path)
    assert r.status == 200, r
    if path.startswith("/media/"):
        assert r.body == (NESTED_TEXT if method == "GET" else b"")
        assert int(r.header("content-length")) == len(NESTED_TEXT)


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("method,path", READS + PROBES, ids=[f"{m} {p}" for m, p in READS + PROBES])
def test_read_routes_closed(closed, who, method, path):
    r = call(closed, who, method, path)
    if who == "anon" and (method, path) in READS:
        if method == "HEAD":
            assert r.status == 401 and r.body == b"", r
        else:
            assert_error(r, 401, "unauthorized")
        assert NESTED_TEXT not in r.body
    else:
        assert r.status == 200, r
        if path.startswith("/media/") and method == "GET":
            assert r.body == NESTED_TEXT


def test_closed_library_listing_does_not_leak(closed):
    r = http_call(closed.srv, "GET", "/api/library?path=sub/dir")
    assert_error(r, 401, "unauthorized")
    assert b"deep.txt" not in r.body


def test_closed_healthz_body(closed):
    r = http_call(closed.srv, "GET", "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}


# --- setup / login / logout / me ---------------------------------------------------------------


@pytest.mark.parametrize("who", WHO)
def test_setup_after_first_user_409(env, who):
    token = wait_setup_token(env.srv)
    r = call(env, who, "POST", "/api/setup", json_body={"token": token, "name": f"late-{who}", "password": AUTH_PW})
    assert_error(r, 409, "already_set_up")
    assert f"late-{who}" not in user_names(env)


def test_login_anon(env):
    r, c = login(env.srv, "mia", AUTH_PW)
    assert r.status == 200 and c.role == "member"
    r, c = login(env.srv, "mia", "not-the-password")
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize("who,name,exp_role", [("member", "mia", "member"), ("admin", "root", "admin")])
def test_login_while_authenticated(env, who, name, exp_role):
    r, c = login(env.srv, name, AUTH_PW, headers=cred(env, who).headers)
    assert r.status == 200, r
    assert r.json()["role"] == exp_role


@pytest.mark.parametrize("who", WHO)
def test_logout(env, who):
    if who == "anon":
        assert_error(http_call(env.srv, "POST", "/api/logout"), 401, "unauthorized")
        return
    name = "mia" if role(who) == "member" else "root"
    fresh = must_login(env.srv, name, AUTH_PW)
    if who.endswith("-session"):
        c = fresh
    else:
        c = new_token(env.srv, fresh, "logout-cell")
    r = http_call(env.srv, "POST", "/api/logout", headers=c.headers)
    assert r.status == 204, r


@pytest.mark.parametrize("who", WHO)
def test_me(env, who):
    r = call(env, who, "GET", "/api/me")
    if who == "anon":
        assert_error(r, 401, "unauthorized")
        return
    j = r.json()
    assert r.status == 200, r
    assert j["name"] == ("mia" if role(who) == "member" else "root")
    assert j["role"] == role(who)
    assert j["auth"] == ("session" if who.endswith("-session") else "token")


# --- tokens ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", WHO)
def test_post_tokens(env, who):
    r = call(env, who, "POST", "/api/tokens", json_body={"label": f"cell-{who}"})
    if who == "anon":
        assert_error(r, 401, "unauthorized")
    else:
        assert r.status == 201, r
        assert r.json()["token"].startswith("sht_")


@pytest.mark.parametrize("who", WHO)
def test_get_tokens(env, who):
    mine_member = new_token(env.srv, env.member_s, "list-member")
    other_member = new_token(env.srv, env.member2_s, "list-member2")
    admins = new_token(env.srv, env.admin_s, "list-admin")
    r = call(env, who, "GET", "/api/tokens")
    if who == "anon":
        assert_error(r, 401, "unauthorized")
        return
    assert r.status == 200, r
    toks = r.json()["tokens"]
    ids = {t["id"] for t in toks}
    for t in (mine_member, other_member, admins):
        assert t.token not in r.body.decode()
    if role(who) == "member":  # own only
        assert mine_member.token_id in ids
        assert other_member.token_id not in ids and admins.token_id not in ids
        assert {t["user"] for t in toks} == {"mia"}
    else:  # all
        assert {mine_member.token_id, other_member.token_id, admins.token_id} <= ids
        assert {"mia", "max", "root"} <= {t["user"] for t in toks}


@pytest.mark.parametrize(
    "who,owner,status",
    [
        ("anon", "member", 401),
        ("member", "member2", 404),  # another member's
        ("member", "admin", 404),
        ("member-session", "member2", 404),
        ("admin", "member", 204),
        ("admin-session", "member2", 204),
        ("member", "member", 204),  # owner
        ("member-session", "member", 204),  # owner, by session
    ],
)
def test_delete_token(env, who, owner, status):
    owner_s = {"member": env.member_s, "member2": env.member2_s, "admin": env.admin_s}[owner]
    victim = new_token(env.srv, owner_s, "delete-cell")
    r = call(env, who, "DELETE", f"/api/tokens/{victim.token_id}")
    expect(r, status)
    still = http_call(env.srv, "GET", "/api/me", headers=victim.headers)
    assert still.status == (401 if status == 204 else 200), still


# --- users -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", WHO)
def test_get_users(env, who):
    r = call(env, who, "GET", "/api/users")
    exp = {"anon": 401, "member": 403, "admin": 200}[role(who)]
    expect(r, exp)
    if exp == 200:
        users = {u["name"]: u for u in r.json()["users"]}
        assert users["root"]["role"] == "admin" and users["mia"]["role"] == "member"
        # What a user is: no secret, only the name, role, age and the limits that apply (issue 12).
        assert set(users["mia"]) == {"name", "role", "created_at", "limits", "own_limits"}, users["mia"]
        assert "password" not in r.body.decode().lower() and "argon2" not in r.body.decode()
    else:
        assert b"mia" not in r.body


@pytest.mark.parametrize("who", WHO)
def test_post_users(env, who):
    name = f"made-by-{who}"
    r = call(env, who, "POST", "/api/users", json_body={"name": name, "password": AUTH_PW, "role": "member"})
    exp = {"anon": 401, "member": 403, "admin": 201}[role(who)]
    expect(r, exp)
    assert (name in user_names(env)) == (exp == 201)
    if exp == 201:
        assert r.json()["name"] == name and r.json()["role"] == "member"


@pytest.mark.parametrize("who", WHO)
def test_delete_users(env, who):
    victim = f"victim-of-{who}"
    exp = {"anon": 401, "member": 403, "admin": 204}[role(who)]
    if exp == 204:  # check that the deleted user's credentials die with it
        cli_add_user(env.srv.data_dir, victim)
        vtok = new_token(env.srv, must_login(env.srv, victim, AUTH_PW), "victim")
    else:
        r = http_call(env.srv, "POST", "/api/users", headers=env.admin.headers,
                      json_body={"name": victim, "password": AUTH_PW, "role": "member"})
        assert r.status == 201, r
    r = call(env, who, "DELETE", f"/api/users/{victim}")
    expect(r, exp)
    assert (victim in user_names(env)) == (exp != 204)
    if exp == 204:
        assert_error(http_call(env.srv, "GET", "/api/me", headers=vtok.headers), 401, "unauthorized")


def test_delete_last_admin_409(env):
    users = http_call(env.srv, "GET", "/api/users", headers=env.admin.headers).json()["users"]
    admins = [u["name"] for u in users if u["role"] == "admin"]
    assert admins == ["root"], admins  # this module never leaves a second admin behind
    r = http_call(env.srv, "DELETE", "/api/users/root", headers=env.admin.headers)
    assert_error(r, 409, "last_admin")
    assert http_call(env.srv, "GET", "/api/me", headers=env.admin.headers).status == 200


def test_delete_admin_when_another_exists(env):
    r = http_call(env.srv, "POST", "/api/users", headers=env.admin.headers,
                  json_body={"name": "root2", "password": AUTH_PW, "role": "admin"})
    assert r.status == 201, r
    assert must_login(env.srv, "root2", AUTH_PW).role == "admin"
    r = http_call(env.srv, "DELETE", "/api/users/root2", headers=env.admin.headers)
    assert r.status == 204, r
    assert login(env.srv, "root2", AUTH_PW)[0].status == 401


# --- shares ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", WHO)
def test_post_shares(env, who):
    r = call(env, who, "POST", "/api/shares", json_body={"path": NESTED})
    if who == "anon":
        assert_error(r, 401, "unauthorized")
    else:
        assert r.status == 201, r
        url = r.json()["url"]
        assert url.startswith(f"http://127.0.0.1:{env.srv.port}/s/"), url
        assert http_call(env.srv, "GET", url).body == NESTED_TEXT


@pytest.mark.parametrize("who", WHO)
def test_get_shares(env, who):
    mine = new_share(env.srv, env.member, NESTED)
    other = new_share(env.srv, env.member2, NESTED)
    admins = new_share(env.srv, env.admin, NESTED)
    r = call(env, who, "GET", "/api/shares")
    if who == "anon":
        assert_error(r, 401, "unauthorized")
        return
    assert r.status == 200, r
    shares = r.json()["shares"]
    ids = {s["id"] for s in shares}
    if role(who) == "member":
        assert mine["id"] in ids and other["id"] not in ids and admins["id"] not in ids
        assert {s["user"] for s in shares} == {"mia"}
    else:
        assert {mine["id"], other["id"], admins["id"]} <= ids


@pytest.mark.parametrize(
    "who,owner,status",
    [
        ("anon", "member", 401),
        ("member", "member2", 404),
        ("member", "admin", 404),
        ("member-session", "member2", 404),
        ("admin", "member", 204),
        ("admin-session", "member2", 204),
        ("member", "member", 204),
        ("member-session", "member", 204),
    ],
)
def test_delete_share(env, who, owner, status):
    owner_c = {"member": env.member, "member2": env.member2, "admin": env.admin}[owner]
    sh = new_share(env.srv, owner_c, NESTED)
    r = call(env, who, "DELETE", f"/api/shares/{sh['id']}")
    expect(r, status)
    g = http_call(env.srv, "GET", sh["url"])
    if status == 204:
        assert_error(g, 410, "link_revoked")
    else:
        assert g.status == 200 and g.body == NESTED_TEXT, g


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_share_link_readable_by_all(env, who, method):
    sh = new_share(env.srv, env.member, NESTED)
    r = call(env, who, method, sh["url"])
    assert r.status == 200, r
    assert r.body == (NESTED_TEXT if method == "GET" else b"")
    assert int(r.header("content-length")) == len(NESTED_TEXT)


@pytest.mark.parametrize("who", WHO)
def test_share_link_readable_by_all_closed(closed, who):
    sh = new_share(closed.srv, closed.member, NESTED)
    r = call(closed, who, "GET", sh["url"])
    assert r.status == 200 and r.body == NESTED_TEXT, r


# --- uploads and file management (issue #5 rows) ---------------------------------------------------------
# "owner" = the member who uploaded the file (the library index records the uploader): they may
# replace, move and delete it. "other-member" = a second member acting on the owner's file (403).
# "hand" = a member acting on a file placed in the media root by hand: no owner, admins only.


def fresh_name(prefix="up"):
    return f"uploads/{prefix}-{uuid.uuid4().hex[:12]}.bin"


def put(env, c, path, data, query=""):
    return http_call(env.srv, "PUT", "/media/" + path + query,
                     headers=dict(c.headers, **{"Content-Type": "application/octet-stream"}), body=data)


def admin_put(env, data=b"original bytes\n"):
    path = fresh_name("base")
    r = put(env, env.admin, path, data)
    assert r.status == 201, r
    return path


OWNED = ["owner", "other-member", "hand"]


def subject(env, who):
    """(path, credentials) for one cell: the file acted on and who acts on it."""
    if who in ("owner", "other-member"):
        path = fresh_name("owned")
        assert put(env, env.member, path, b"original bytes\n").status == 201
        return path, env.member if who == "owner" else env.member2
    if who == "hand":
        path = fresh_name("hand")
        (env.srv.media_root / path).write_bytes(b"original bytes\n")
        return path, env.member
    return admin_put(env), cred(env, who)


def on_disk(env, path):
    p = env.srv.media_root / path
    return p.read_bytes() if p.exists() else None


@pytest.mark.parametrize("who", WHO)
def test_put_new_name(env, who):
    path = fresh_name(who)
    r = put(env, cred(env, who), path, b"new file by " + who.encode())
    if who == "anon":
        expect(r, 401)
        assert on_disk(env, path) is None
        return
    assert r.status == 201, r
    assert r.json()["path"] == path and r.json()["size"] == len(b"new file by " + who.encode())
    assert http_call(env.srv, "GET", "/media/" + path).body == b"new file by " + who.encode()


@pytest.mark.parametrize("who", WHO + OWNED)
def test_put_overwrite(env, who):
    path, c = subject(env, who)
    r = put(env, c, path, b"REPLACED", query="?overwrite=true")
    exp = {"anon": 401, "member": 403, "admin": 201, "owner": 201, "other": 403, "hand": 403}[role(who)]
    expect(r, exp)
    assert on_disk(env, path) == (b"REPLACED" if exp == 201 else b"original bytes\n")


@pytest.mark.parametrize("who", WHO)
def test_put_existing_without_overwrite_409(env, who):
    path = admin_put(env)
    r = put(env, cred(env, who), path, b"REPLACED")
    expect(r, 401 if who == "anon" else 409)
    assert on_disk(env, path) == b"original bytes\n"


def multipart(files):
    boundary = "e2e" + uuid.uuid4().hex
    body = b""
    for name, data in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


@pytest.mark.parametrize("who", WHO)
def test_post_upload(env, who):
    name = f"mp-{uuid.uuid4().hex[:12]}.bin"
    ctype, body = multipart([(name, b"multipart bytes")])
    r = http_call(env.srv, "POST", "/api/upload?dir=uploads",
                  headers=dict(cred(env, who).headers, **{"Content-Type": ctype}), body=body)
    if who == "anon":
        expect(r, 401)
        assert on_disk(env, f"uploads/{name}") is None
        return
    assert r.status == 201, r
    assert [f["path"] for f in r.json()["files"]] == [f"uploads/{name}"]
    assert on_disk(env, f"uploads/{name}") == b"multipart bytes"


@pytest.mark.parametrize("who", WHO + OWNED)
def test_move(env, who):
    src, c = subject(env, who)
    dst = fresh_name("moved")
    r = http_call(env.srv, "POST", "/api/library/move", headers=c.headers, json_body={"from": src, "to": dst})
    exp = {"anon": 401, "member": 403, "admin": 200, "owner": 200, "other": 403, "hand": 403}[role(who)]
    expect(r, exp)
    if exp == 200:
        assert on_disk(env, src) is None and on_disk(env, dst) == b"original bytes\n"
    else:
        assert on_disk(env, src) == b"original bytes\n" and on_disk(env, dst) is None


@pytest.mark.parametrize("who", WHO + OWNED)
def test_delete_media(env, who):
    path, c = subject(env, who)
    r = http_call(env.srv, "DELETE", "/media/" + path, headers=c.headers)
    exp = {"anon": 401, "member": 403, "admin": 204, "owner": 204, "other": 403, "hand": 403}[role(who)]
    expect(r, exp)
    assert (on_disk(env, path) is None) == (exp == 204)
    assert http_call(env.srv, "GET", "/media/" + path).status == (404 if exp == 204 else 200)


@pytest.mark.parametrize("who", WHO)
def test_create_folder(env, who):
    path = f"uploads/dir-{uuid.uuid4().hex[:12]}"
    r = http_call(env.srv, "POST", "/api/library/folder", headers=cred(env, who).headers, json_body={"path": path})
    if who == "anon":
        expect(r, 401)
        assert not (env.srv.media_root / path).exists()
    else:
        assert r.status == 201, r
        assert (env.srv.media_root / path).is_dir()
