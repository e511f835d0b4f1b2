"""Quotas (issue 12 item 4): per-user limits on unfinished tus uploads and media bytes, set
by an admin through `streamhub user limits` and `PATCH /api/users/{name}`, and the free-disk
reserve (`[quotas] min_free_bytes`) below which uploads get 507 before any byte is written.

What a user sees: the status and error code, that nothing was written (no file, no staging
file, no upload row a HEAD could find), that an admin's change takes effect at once and that
other users are unaffected. Everything talks to 127.0.0.1 only.
"""

import base64
import socket
import time
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import (
    AUTH_PW,
    assert_error,
    cli_add_user,
    http_call,
    must_login,
    new_token,
    read_response,
    run_cli,
    user_cli,
)

STAGING = ".streamhub-staging"
TUS = {"Tus-Resumable": "1.0.0"}
TUS_LIMIT = 3  # [quotas] tus_uploads of the module's server
RESERVE = 1 << 20  # [quotas] min_free_bytes of the module's server

CONFIG = f"""
[uploads]
max_bytes = 1099511627776
[quotas]
tus_uploads = {TUS_LIMIT}
"""  # min_free_bytes: by environment (conftest sets it to 0 for other tests)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def tus_create(srv, cred, length, filename, folder="q"):
    h = {**TUS, **cred.headers, "Upload-Length": str(length),
         "Upload-Metadata": f"filename {b64(filename)},folder {b64(folder)}"}
    return http_call(srv, "POST", "/api/tus/", headers=h)


def tus_loc(r):
    assert r.status == 201, r
    return urlparse(r.header("location")).path


def tus_delete(srv, cred, loc):
    r = http_call(srv, "DELETE", loc, headers={**TUS, **cred.headers})
    assert r.status == 204, r


def put(srv, cred, rel, body):
    return http_call(srv, "PUT", "/media/" + rel, headers=cred.headers, body=body, timeout=60)


def put_chunked(srv, cred, rel, body, chunk=4096):
    """A PUT without Content-Length: the body as HTTP/1.1 chunks."""
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
             for i in range(0, len(body), chunk)]
    raw = b"".join(parts) + b"0\r\n\r\n"
    return http_call(srv, "PUT", "/media/" + rel,
                     headers={**cred.headers, "Transfer-Encoding": "chunked"}, body=raw,
                     timeout=60)


def staged(root):
    """Every file under the staging folder: {relpath: size}."""
    st = Path(root) / STAGING
    return {str(p.relative_to(st)): p.stat().st_size for p in st.rglob("*") if p.is_file()}


def free_bytes(root):
    st = os.statvfs(root)
    return st.f_bavail * st.f_frsize


def limits(srv, name, *flags):
    """`streamhub user limits NAME FLAGS` with the server's data dir and config (whose
    [quotas] defaults the command shows): {key: value as printed}."""
    r = run_cli(["user", "limits", name, *flags, "--data-dir", srv.data_dir,
                 "--config", srv.workdir / "streamhub.toml"])
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return dict(line.split("\t") for line in r.stdout.strip().splitlines()[1:])


class Box:
    """The module's server with an admin (boss) and two members (mia, max), as tokens."""

    def __init__(self, srv):
        self.srv = srv
        cli_add_user(srv.data_dir, "boss", admin=True)
        cli_add_user(srv.data_dir, "mia")
        cli_add_user(srv.data_dir, "max")
        self.admin = new_token(srv, must_login(srv, "boss", AUTH_PW), "boss-q")
        self.mia = new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-q")
        self.max = new_token(srv, must_login(srv, "max", AUTH_PW), "max-q")


@pytest.fixture(scope="module")
def box(server_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("quotas") / "media"
    root.mkdir()
    srv = server_factory.start(root, config=CONFIG, tls_listen=(), name="quotas",
                               env={"STREAMHUB_QUOTAS_MIN_FREE_BYTES": str(RESERVE)})
    return Box(srv)


def users_by_name(box):
    r = http_call(box.srv, "GET", "/api/users", headers=box.admin.headers)
    assert r.status == 200, r
    return {u["name"]: u for u in r.json()["users"]}


def test_unfinished_tus_uploads_are_limited_per_user(box):
    srv, root = box.srv, box.srv.media_root
    locs = [tus_loc(tus_create(srv, box.mia, 10, f"t{i}.bin")) for i in range(TUS_LIMIT)]
    before = staged(root)
    r = tus_create(srv, box.mia, 10, "one-too-many.bin")
    assert_error(r, 403, "quota_exceeded")
    assert r.json()["error"] == "quota_exceeded"
    assert "tus_uploads" in r.json()["message"] and str(TUS_LIMIT) in r.json()["message"], r
    assert r.header("location") is None
    assert staged(root) == before, "a refused creation left a staging file"
    # Another user is not affected by mia's uploads.
    other = tus_loc(tus_create(srv, box.max, 10, "max.bin"))
    # Finishing or deleting one frees a place.
    tus_delete(srv, box.mia, locs.pop())
    locs.append(tus_loc(tus_create(srv, box.mia, 10, "again.bin")))
    assert_error(tus_create(srv, box.mia, 10, "still-full.bin"), 403, "quota_exceeded")

    # The admin raises mia's limit from the shell: it applies to the next request.
    shown = limits(srv, "mia", "--tus-uploads", "5")
    assert shown["tus_uploads"] == "5", shown
    locs += [tus_loc(tus_create(srv, box.mia, 10, f"u{i}.bin")) for i in range(2)]
    assert_error(tus_create(srv, box.mia, 10, "u2.bin"), 403, "quota_exceeded")
    # `default` goes back to the config's value.
    shown = limits(srv, "mia", "--tus-uploads", "default")
    assert shown["tus_uploads"] == f"{TUS_LIMIT} (default)", shown
    for loc in locs + [other]:
        tus_delete(srv, box.max if loc == other else box.mia, loc)


def test_media_bytes_quota_counts_files_and_announced_uploads(box):
    srv, root = box.srv, box.srv.media_root
    shown = limits(srv, "mia", "--media-bytes", "1000")
    assert shown["media_bytes"] == "1000" and shown["notes_bytes"] == "unlimited (default)", shown
    assert put(srv, box.mia, "m/a.bin", b"a" * 600).status == 201
    before = staged(root)
    r = put(srv, box.mia, "m/b.bin", b"b" * 500)
    assert_error(r, 403, "quota_exceeded")
    msg = r.json()["message"]
    assert "media_bytes" in msg and "600 of 1000" in msg, msg
    assert not (root / "m" / "b.bin").exists()
    assert staged(root) == before
    # A tus upload's announced length counts at once.
    assert_error(tus_create(srv, box.mia, 401, "big.bin"), 403, "quota_exceeded")
    loc = tus_loc(tus_create(srv, box.mia, 400, "fits.bin"))
    assert_error(put(srv, box.mia, "m/c.bin", b"c"), 403, "quota_exceeded")
    # A body of unknown length is stopped where the quota ends, and nothing is kept.
    tus_delete(srv, box.mia, loc)
    r = put_chunked(srv, box.mia, "m/d.bin", b"d" * 5000)
    assert_error(r, 403, "quota_exceeded")
    assert not (root / "m" / "d.bin").exists()
    assert staged(root) == before
    assert put_chunked(srv, box.mia, "m/e.bin", b"e" * 300).status == 201
    # Other users are not limited by mia's quota.
    assert put(srv, box.max, "m/max.bin", b"x" * 5000).status == 201
    # Unlimited again.
    limits(srv, "mia", "--media-bytes", "unlimited")
    assert put(srv, box.mia, "m/f.bin", b"f" * 5000).status == 201


def test_cli_refuses_bad_values(box):
    r = user_cli(box.srv.data_dir, "limits", "mia", "--media-bytes", "lots")
    assert r.returncode == 2 and "--media-bytes" in r.stderr, (r.stdout, r.stderr)
    r = user_cli(box.srv.data_dir, "limits", "mia", "--tus-uploads", "99999999")
    assert r.returncode == 2 and "tus_uploads" in r.stderr, (r.stdout, r.stderr)
    r = user_cli(box.srv.data_dir, "limits", "nobody")
    assert r.returncode == 1 and "no user named nobody" in r.stderr, (r.stdout, r.stderr)
    shown = limits(box.srv, "max")
    assert set(shown) == {"media_bytes", "tus_uploads", "notes_bytes"}, shown


def test_users_api_shows_and_sets_limits(box):
    srv = box.srv
    u = users_by_name(box)["max"]
    assert u["limits"] == {"media_bytes": 0, "notes_bytes": 0, "tus_uploads": TUS_LIMIT}, u
    assert u["own_limits"] == {"media_bytes": None, "notes_bytes": None, "tus_uploads": None}

    r = http_call(srv, "PATCH", "/api/users/max", headers=box.admin.headers,
                  json_body={"limits": {"media_bytes": 10, "tus_uploads": 1}})
    assert r.status == 200, r
    assert r.json()["own_limits"] == {"media_bytes": 10, "notes_bytes": None, "tus_uploads": 1}
    assert r.json()["limits"]["media_bytes"] == 10 and r.json()["role"] == "member"
    assert users_by_name(box)["max"]["own_limits"]["tus_uploads"] == 1
    assert_error(put(srv, box.max, "m/over.bin", b"x" * 11), 403, "quota_exceeded")
    # mia (unlimited again from the previous test) is not affected.
    assert put(srv, box.mia, "m/mia-ok.bin", b"x" * 11).status == 201

    for body, field in [({"limits": {"media_bytes": -1}}, "media_bytes"),
                        ({"limits": {"tus_uploads": 2_000_000}}, "tus_uploads"),
                        ({"limits": {"media_bytes": "big"}}, "media_bytes"),
                        ({"limits": {"bogus": 1}}, "bogus")]:
        r = http_call(srv, "PATCH", "/api/users/max", headers=box.admin.headers, json_body=body)
        assert_error(r, 422, "invalid")
        assert field in r.json()["message"], (body, r.json())
    assert users_by_name(box)["max"]["own_limits"]["media_bytes"] == 10, "a refused change"

    # A member may not change limits, not even their own.
    r = http_call(srv, "PATCH", "/api/users/max", headers=box.max.headers,
                  json_body={"limits": {"media_bytes": None}})
    assert_error(r, 403, "forbidden")

    # null goes back to the default.
    r = http_call(srv, "PATCH", "/api/users/max", headers=box.admin.headers,
                  json_body={"limits": {"media_bytes": None, "tus_uploads": None}})
    assert r.status == 200, r
    assert r.json()["own_limits"]["media_bytes"] is None
    assert r.json()["limits"]["media_bytes"] == 0
    assert put(srv, box.max, "m/over.bin", b"x" * 11).status == 201


def test_announced_uploads_hold_their_space_and_the_reserve(box):
    """The finding: many announced uploads each smaller than the free space were all taken.
    What unfinished uploads announce is held back from the free space of the next one."""
    srv, root = box.srv, box.srv.media_root
    big = int(free_bytes(root) * 0.6)
    first = tus_loc(tus_create(srv, box.mia, big, "half-a.bin"))
    before = staged(root)
    r = tus_create(srv, box.mia, big, "half-b.bin")
    assert_error(r, 507, "no_space")
    assert staged(root) == before
    # Once the first is gone, its space is free again.
    tus_delete(srv, box.mia, first)
    tus_delete(srv, box.mia, tus_loc(tus_create(srv, box.mia, big, "half-b.bin")))


@pytest.fixture(scope="module")
def reserved(server_factory, tmp_path_factory):
    """A server whose reserve is more than any disk has: every upload is refused."""
    root = tmp_path_factory.mktemp("reserve") / "media"
    root.mkdir()
    srv = server_factory.start(root, tls_listen=(), name="reserve",
                               env={"STREAMHUB_QUOTAS_MIN_FREE_BYTES": str(1 << 62)})
    cli_add_user(srv.data_dir, "mia")
    return srv, new_token(srv, must_login(srv, "mia", AUTH_PW), "mia-r")


def test_free_disk_reserve_refuses_uploads_before_any_byte(reserved):
    srv, mia = reserved
    root = srv.media_root
    for r in [put(srv, mia, "a.bin", b"abc"),
              put_chunked(srv, mia, "b.bin", b"abc"),
              tus_create(srv, mia, 3, "c.bin")]:
        assert_error(r, 507, "no_space")
    assert staged(root) == {}
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".streamhub")) == []


def noise(n):
    """Text that does not compress: a revision of it is stored at about 3/4 of its length."""
    return base64.b64encode(os.urandom(n)).decode()[:n]


def test_notes_bytes_quota_counts_every_revision(box):
    srv = box.srv
    shown = limits(srv, "mia", "--notes-bytes", "1000")
    assert shown["notes_bytes"] == "1000", shown
    first, second, third = noise(500), noise(500), noise(500)
    r = http_call(srv, "POST", "/api/notes", headers=box.mia.headers,
                  json_body={"title": "a", "body": first})
    assert r.status == 201, r
    note, etag = r.json()["id"], r.header("etag")
    # Rewriting the whole body stores a whole new revision (~380 bytes stored each):
    # two fit in 1000 bytes, a third does not.
    r = http_call(srv, "PUT", f"/api/notes/{note}",
                  headers={**box.mia.headers, "If-Match": etag}, json_body={"body": second})
    assert r.status == 200, r
    etag = r.header("etag")
    r = http_call(srv, "PUT", f"/api/notes/{note}",
                  headers={**box.mia.headers, "If-Match": etag}, json_body={"body": third})
    assert_error(r, 403, "quota_exceeded")
    assert "notes_bytes" in r.json()["message"], r.json()
    r = http_call(srv, "POST", "/api/notes", headers=box.mia.headers,
                  json_body={"title": "b", "body": noise(500)})
    assert_error(r, 403, "quota_exceeded")
    g = http_call(srv, "GET", f"/api/notes/{note}", headers=box.mia.headers)
    assert g.status == 200 and g.json()["body"] == second, g
    # Another user is not limited by mia's quota; lifting it lets mia write again.
    r = http_call(srv, "POST", "/api/notes", headers=box.max.headers,
                  json_body={"title": "m", "body": noise(2000)})
    assert r.status == 201, r
    limits(srv, "mia", "--notes-bytes", "default")
    r = http_call(srv, "PUT", f"/api/notes/{note}",
                  headers={**box.mia.headers, "If-Match": etag}, json_body={"body": third})
    assert r.status == 200, r


def test_notes_bytes_quota_counts_the_change_of_an_edit(box):
    """An edit is stored as its change against the revision before (docs/CONTRACT.md
    "Quotas"): many small additions to a note fit where whole copies would not."""
    srv = box.srv
    cli_add_user(srv.data_dir, "ned")
    ned = new_token(srv, must_login(srv, "ned", AUTH_PW), "ned-q")
    limits(srv, "ned", "--notes-bytes", "3000")
    body = noise(2000)  # ~1,500 bytes stored
    r = http_call(srv, "POST", "/api/notes", headers=ned.headers,
                  json_body={"title": "log", "body": body})
    assert r.status == 201, r
    note, etag = r.json()["id"], r.header("etag")
    for i in range(20):  # 20 whole copies would be 40,000 bytes
        body += f"entry {i}\n"
        r = http_call(srv, "PUT", f"/api/notes/{note}",
                      headers={**ned.headers, "If-Match": etag}, json_body={"body": body})
        assert r.status == 200, (i, r)
        etag = r.header("etag")
    # Rewriting it all is a whole new copy: over the limit, refused, nothing stored.
    r = http_call(srv, "PUT", f"/api/notes/{note}",
                  headers={**ned.headers, "If-Match": etag}, json_body={"body": noise(2000)})
    assert_error(r, 403, "quota_exceeded")
    assert "notes_bytes" in r.json()["message"], r.json()
    g = http_call(srv, "GET", f"/api/notes/{note}", headers=ned.headers)
    assert g.status == 200 and g.json()["body"] == body and g.header("etag") == etag, g

def test_restoring_old_revisions_counts_against_notes_bytes(box):
    """The attack run: alternating restores of a big and a tiny revision stored the big text
    again each time, 56x past the quota. A restore is judged like an edit."""
    srv = box.srv
    cli_add_user(srv.data_dir, "rita")
    rita = new_token(srv, must_login(srv, "rita", AUTH_PW), "rita-q")
    limits(srv, "rita", "--notes-bytes", "4000")
    r = http_call(srv, "POST", "/api/notes", headers=rita.headers,
                  json_body={"title": "big", "body": noise(2000)})  # ~1,500 bytes stored
    assert r.status == 201, r
    note, big = r.json()["id"], r.json()["rev"]
    r = http_call(srv, "PUT", f"/api/notes/{note}",
                  headers={**rita.headers, "If-Match": r.header("etag")}, json_body={"body": "tiny"})
    assert r.status == 200, r
    tiny = r.json()["rev"]
    answers = []
    for i in range(10):
        r = http_call(srv, "POST", f"/api/notes/{note}/restore", headers=rita.headers,
                      json_body={"rev": big if i % 2 == 0 else tiny})
        answers.append(r.status)
        if r.status != 200:
            assert_error(r, 403, "quota_exceeded")
            assert "notes_bytes" in r.json()["message"], r.json()
    assert 403 in answers and answers.index(403) <= 3, answers
    g = http_call(srv, "GET", f"/api/notes/{note}/revisions", headers=rita.headers)
    assert g.status == 200 and len(g.json()["revisions"]) == 2 + answers.count(200), g


def test_parallel_uploads_without_a_length_stay_within_the_quota(box):
    """The attack run: ten chunked PUTs at once, each judged on the same count, stored 1.4 MB
    against a 1 MB quota. One without a length holds what is left while it streams."""
    srv, root = box.srv, box.srv.media_root
    cli_add_user(srv.data_dir, "pat")
    pat = new_token(srv, must_login(srv, "pat", AUTH_PW), "pat-q")
    limits(srv, "pat", "--media-bytes", str(400_000))
    # Every body's head and first chunk are sent before any body ends, so all ten overlap.
    socks = []
    for i in range(10):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        head = [f"PUT /media/par/r{i}.bin HTTP/1.1", f"Host: 127.0.0.1:{srv.port}",
                "Transfer-Encoding: chunked", "Connection: close"]
        head += [f"{k}: {v}" for k, v in pat.headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.sendall(b"%x\r\n%s\r\n" % (40_000, bytes([i]) * 40_000))
        socks.append(sock)
    time.sleep(0.5)
    results = []
    for i, sock in enumerate(socks):
        try:
            sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (40_000, bytes([i]) * 40_000))
        except OSError:
            pass  # refused early: the answer is already there
        results.append(read_response(sock, timeout=30))
        sock.close()
    stored = sum(p.stat().st_size for p in (root / "par").glob("*.bin")) if (root / "par").exists() else 0
    assert stored <= 400_000, (stored, [r.status for r in results])
    assert all(r.status in (201, 403) for r in results), results
    assert any(r.status == 201 for r in results), results
    for r in results:
        if r.status == 403:
            assert r.json()["error"] == "quota_exceeded", r
    assert staged(root) == {} or all("resumable" in k for k in staged(root)), staged(root)
