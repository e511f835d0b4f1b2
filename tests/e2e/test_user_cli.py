"""`streamhub user add|list|passwd|del` against the data dir of a RUNNING service.

Every change must be visible to the service at once (shared SQLite in WAL mode).
"""

import re
from datetime import datetime

import pytest

from conftest import (
    AUTH_PW,
    NESTED,
    AuthEnv,
    assert_error,
    basic_auth,
    cli_add_user,
    http_call,
    login,
    must_login,
    new_share,
    new_token,
    run_cli,
    start_auth_server,
    toml_str,
    user_cli,
    wait_setup_token,
)

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"


@pytest.fixture(scope="module")
def env(module_servers, auth_media):
    srv = start_auth_server(module_servers, auth_media["root"], name="usercli", login_max_failures=200)
    return AuthEnv(srv)


def list_users(data_dir):
    r = user_cli(data_dir, "list")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    out = {}
    for line in r.stdout.splitlines():
        cols = line.split("\t")
        assert len(cols) == 3, f"user list line is not NAME<TAB>ROLE<TAB>created: {line!r}"
        name, role, created = cols
        assert role in ("admin", "member"), line
        m = re.fullmatch(rf"(?:created )?({RFC3339})", created)
        assert m, f"bad created column {created!r}"
        datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
        out[name] = role
    return out


def test_add_member_logs_in_at_once(env):
    r = user_cli(env.srv.data_dir, "add", "nina", password=AUTH_PW)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.strip() == "user nina added (member)"
    r, c = login(env.srv, "nina", AUTH_PW)
    assert r.status == 200, r
    assert r.json()["role"] == "member"


def test_add_admin(env):
    r = user_cli(env.srv.data_dir, "add", "otto", "--admin", password=AUTH_PW)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.strip() == "user otto added (admin)"
    c = must_login(env.srv, "otto", AUTH_PW)
    assert c.role == "admin"
    # an admin: the users API is open to it
    assert http_call(env.srv, "GET", "/api/users", headers=c.headers).status == 200


def test_list(env):
    cli_add_user(env.srv.data_dir, "lister")
    users = list_users(env.srv.data_dir)
    assert users.get("root") == "admin"
    assert users.get("mia") == "member" and users.get("max") == "member"
    assert users.get("lister") == "member"
    # a user created through the API shows up too
    r = http_call(env.srv, "POST", "/api/users", headers=env.admin.headers,
                  json_body={"name": "via.api", "password": AUTH_PW, "role": "admin"})
    assert r.status == 201, r
    assert list_users(env.srv.data_dir).get("via.api") == "admin"
    r = http_call(env.srv, "DELETE", "/api/users/via.api", headers=env.admin.headers)
    assert r.status == 204, r


def test_passwd_takes_effect(env):
    cli_add_user(env.srv.data_dir, "pia")
    assert login(env.srv, "pia", AUTH_PW)[0].status == 200
    new_pw = "a brand new secret"
    r = user_cli(env.srv.data_dir, "passwd", "pia", password=new_pw)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert login(env.srv, "pia", AUTH_PW)[0].status == 401
    assert login(env.srv, "pia", new_pw)[0].status == 200
    # Basic too
    assert http_call(env.srv, "GET", "/api/me", headers=basic_auth("pia", new_pw)).status == 200
    assert http_call(env.srv, "GET", "/api/me", headers=basic_auth("pia", AUTH_PW)).status == 401


def test_passwd_unknown_user(env):
    r = user_cli(env.srv.data_dir, "passwd", "nobody-here", password=AUTH_PW)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "error: no user named nobody-here" in r.stderr


def test_passwd_short_password(env):
    cli_add_user(env.srv.data_dir, "quinn")
    r = user_cli(env.srv.data_dir, "passwd", "quinn", password="short")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert re.search(r"^error: password: ", r.stderr, re.M), r.stderr
    assert login(env.srv, "quinn", AUTH_PW)[0].status == 200


def test_del_ends_sessions_tokens_shares(env):
    cli_add_user(env.srv.data_dir, "rita")
    sess = must_login(env.srv, "rita", AUTH_PW)
    tok = new_token(env.srv, sess, "rita-token")
    sh = new_share(env.srv, tok, NESTED)
    assert http_call(env.srv, "GET", sh["url"]).status == 200
    assert http_call(env.srv, "GET", "/api/me", headers=sess.headers).status == 200

    r = user_cli(env.srv.data_dir, "del", "rita")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert login(env.srv, "rita", AUTH_PW)[0].status == 401
    assert_error(http_call(env.srv, "GET", "/api/me", headers=tok.headers), 401, "unauthorized")
    assert_error(http_call(env.srv, "GET", "/api/me", headers=sess.headers), 401, "unauthorized")
    # present-but-dead credentials are 401 even where anonymous may read
    assert_error(http_call(env.srv, "GET", "/media/" + NESTED, headers=tok.headers), 401)
    g = http_call(env.srv, "GET", sh["url"])
    assert g.status in (404, 410), g  # revoked (410 link_revoked) or gone; never served
    assert b"deep nested" not in g.body
    assert "rita" not in list_users(env.srv.data_dir)
    # the name is free again; the new rita does not inherit the old token
    cli_add_user(env.srv.data_dir, "rita", password="another password")
    assert http_call(env.srv, "GET", "/api/me", headers=tok.headers).status == 401


def test_del_unknown_user(env):
    r = user_cli(env.srv.data_dir, "del", "nobody-here")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "error: no user named nobody-here" in r.stderr


@pytest.mark.parametrize("dup", ["sam", "SAM", "Sam"])
def test_duplicate_user(env, dup):
    if "sam" not in list_users(env.srv.data_dir):
        cli_add_user(env.srv.data_dir, "sam")
    r = user_cli(env.srv.data_dir, "add", dup, password="other password")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert re.search(rf"^error: user {dup} already exists", r.stderr, re.M | re.I), r.stderr
    if dup == "SAM":  # the original password is unchanged
        assert login(env.srv, "sam", AUTH_PW)[0].status == 200
        assert login(env.srv, "sam", "other password")[0].status == 401
    assert [n for n in list_users(env.srv.data_dir) if n.lower() == "sam"] == ["sam"]


@pytest.mark.parametrize("pw", ["", "1234567", "x" * 1025], ids=["empty", "7-chars", "1025-chars"])
def test_bad_password(env, pw):
    r = user_cli(env.srv.data_dir, "add", "tina", password=pw)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert re.search(r"^error: password: ", r.stderr, re.M), r.stderr
    assert "tina" not in list_users(env.srv.data_dir)


@pytest.mark.parametrize("pw", ["12345678", "x" * 1024, "  spaces around  ", "p\u00e4ssw\u00f6rd-\u65e5\u672c"],
                         ids=["8-chars", "1024-chars", "spaces", "unicode"])
def test_password_bounds_and_exact_line(env, pw):
    name = f"pw{len(pw)}-{abs(hash(pw)) % 10000}"
    r = user_cli(env.srv.data_dir, "add", name, password=pw)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert login(env.srv, name, pw)[0].status == 200
    if pw != pw.strip():
        assert login(env.srv, name, pw.strip())[0].status == 401


@pytest.mark.parametrize("name", ["a b", "", "x" * 65, "a/b", "b\u00f6b", "a:b", "tab\tname", "../etc"],
                         ids=["space", "empty", "65-chars", "slash", "non-ascii", "colon", "tab", "dotdot-slash"])
def test_bad_name(env, name):
    r = user_cli(env.srv.data_dir, "add", name, password=AUTH_PW)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error:"), r.stderr
    assert name not in list_users(env.srv.data_dir) or name == ""


@pytest.mark.parametrize("name", ["x" * 64, "A.b_c-9", "z"], ids=["64-chars", "all-classes", "1-char"])
def test_good_names(env, name):
    r = user_cli(env.srv.data_dir, "add", name, password=AUTH_PW)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert login(env.srv, name, AUTH_PW)[0].status == 200


def test_name_problems_are_said_before_a_password_is_asked(env, tmp_path):
    """No terminal and no --password-stdin: had the password been asked first, each of these
    would end in "cannot ask for a password"; the user learns the real problem first."""
    if "vera" not in list_users(env.srv.data_dir):
        cli_add_user(env.srv.data_dir, "vera")
    d = ["--data-dir", env.srv.data_dir]
    r = run_cli(["user", "add", "vera"] + d, timeout=20)
    assert r.returncode == 1 and "error: user vera already exists" in r.stderr, r
    r = run_cli(["user", "passwd", "nobody-here"] + d, timeout=20)
    assert r.returncode == 1 and "error: no user named nobody-here" in r.stderr, r
    r = run_cli(["user", "add", "wes", "--data-dir", str(tmp_path / "none")], timeout=20)
    assert r.returncode == 2 and "no database at" in r.stderr, r
    # With --init and no database, the password is still asked first, and nothing is made:
    # not without a terminal, not for a password the accounts refuse, not for passwd.
    new = tmp_path / "new"
    r = run_cli(["user", "add", "wes", "--init", "--data-dir", str(new)], timeout=20)
    assert r.returncode == 2 and "cannot ask for a password" in r.stderr, r
    r = run_cli(["user", "add", "wes", "--init", "--password-stdin", "--data-dir", str(new)],
                stdin="short\n", timeout=20)
    assert r.returncode == 2 and r.stderr.startswith("error:"), r
    r = run_cli(["user", "passwd", "wes", "--init", "--password-stdin", "--data-dir", str(new)],
                stdin=AUTH_PW + "\n", timeout=20)
    assert r.returncode == 1 and "error: no user named wes" in r.stderr, r
    assert not new.exists(), sorted(p.name for p in new.iterdir())


def test_add_without_terminal_fails(env):
    r = run_cli(["user", "add", "uma", "--data-dir", env.srv.data_dir], timeout=20)
    assert r.returncode != 0, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.splitlines()[-1].startswith("error:"), r.stderr
    assert "uma" not in list_users(env.srv.data_dir)


def test_setup_token_dead_once_cli_added_a_user(servers, auth_media):
    srv = start_auth_server(servers, auth_media["root"], name="cli-first")
    token = wait_setup_token(srv)
    cli_add_user(srv.data_dir, "first", admin=True)
    r = http_call(srv, "POST", "/api/setup", json_body={"token": token, "name": "intruder", "password": AUTH_PW})
    assert_error(r, 409, "already_set_up")
    assert login(srv, "intruder", AUTH_PW)[0].status == 401
    assert must_login(srv, "first", AUTH_PW).role == "admin"


def test_cli_with_config_file_data_dir(servers, auth_media, tmp_path):
    """--config FILE whose server.data_dir points at the running service's data dir."""
    srv = start_auth_server(servers, auth_media["root"], name="cli-config")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[server]\ndata_dir = {toml_str(srv.data_dir)}\n")
    r = run_cli(["user", "add", "vera", "--password-stdin", "--config", cfg], stdin=AUTH_PW + "\n")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert must_login(srv, "vera", AUTH_PW).role == "member"
