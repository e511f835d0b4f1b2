"""Who may replace, move or delete what, judged on what is really there when it happens
(the second outside attack run): ownership is checked again when an upload commits, links
placed by hand are nobody's, a member's folder is theirs only if everything really in it is,
hidden names are never served, names are matched in either Unicode form, and a mount point
inside the root is a clear 400, not a 500.
"""

import base64
import os
import subprocess
from urllib.parse import quote

import pytest

from conftest import assert_error, http_call
from test_upload_faults import Creds, RawPut


@pytest.fixture(scope="module")
def env(module_servers, tmp_path_factory):
    base = tmp_path_factory.mktemp("owners")
    root, outside = base / "media", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside\n")
    srv = module_servers.start(root, tls_listen=(), name="owners")
    srv.creds = Creds(srv)
    srv.root, srv.outside = root, outside
    return srv


def put(srv, cred, path, body, overwrite=False):
    q = "?overwrite=true" if overwrite else ""
    return http_call(srv, "PUT", "/media/" + quote(path) + q, headers=cred.headers, body=body)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def tus_create(srv, cred, filename, length, overwrite=False, folder=None):
    meta = "filename " + b64(filename)
    if folder is not None:
        meta += ",folder " + b64(folder)
    if overwrite:
        meta += ",overwrite " + b64("true")
    return http_call(srv, "POST", "/api/tus/", headers={
        **cred.headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(length),
        "Upload-Metadata": meta})


def tus_patch(srv, cred, loc, offset, data):
    return http_call(srv, "PATCH", loc, body=data, headers={
        **cred.headers, "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream"})


def move(srv, cred, frm, to, overwrite=False):
    return http_call(srv, "POST", "/api/library/move", headers=cred.headers,
                     json_body={"from": frm, "to": to, "overwrite": overwrite})


def test_tus_overwrite_cannot_replace_a_file_someone_else_put_there_meanwhile(env):
    c = env.creds
    r = tus_create(env, c.member, "admin_report.pdf", 10, overwrite=True)
    assert r.status == 201, r
    loc = r.header("location")
    assert tus_patch(env, c.member, loc, 0, b"EVILE").status == 204
    assert put(env, c.admin, "admin_report.pdf", b"ADMIN ORIGINAL").status == 201
    r = tus_patch(env, c.member, loc, 5, b"VIL!!")
    assert_error(r, 403, "forbidden")
    assert (env.root / "admin_report.pdf").read_bytes() == b"ADMIN ORIGINAL"
    # The upload is over: it can never complete.
    h = http_call(env, "HEAD", loc, headers={**c.member.headers, "Tus-Resumable": "1.0.0"})
    assert h.status == 404, h
    assert_error(http_call(env, "DELETE", "/media/admin_report.pdf", headers=c.member.headers),
                 403, "forbidden")


@pytest.mark.parametrize("intruder", ["admin", "by-hand"])
def test_slow_overwrite_put_cannot_replace_what_arrived_meanwhile(env, intruder):
    c = env.creds
    name = f"race-{intruder}.txt"
    up = RawPut(env.port, f"/media/{name}?overwrite=true", c.member.headers, length=10)
    try:
        up.send(b"MEMBER")
        if intruder == "admin":
            assert put(env, c.admin, name, b"THE ADMIN'S").status == 201
        else:
            (env.root / name).write_bytes(b"THE ADMIN'S")
        up.send(b"XXXX")
        assert_error(up.response(), 403, "forbidden")
    finally:
        up.close()
    assert (env.root / name).read_bytes() == b"THE ADMIN'S"


def test_overwrite_of_own_file_still_works_for_put_and_tus(env):
    c = env.creds
    assert put(env, c.member, "mine.txt", b"one").status == 201
    assert put(env, c.member, "mine.txt", b"two", overwrite=True).status == 201
    r = tus_create(env, c.member, "mine.txt", 5, overwrite=True)
    assert r.status == 201, r
    assert tus_patch(env, c.member, r.header("location"), 0, b"three").status == 204
    assert (env.root / "mine.txt").read_bytes() == b"three"


@pytest.fixture()
def links(env):
    r = env.root
    made = {
        "mark": ".streamhub-root",
        "loop1": "loop2",
        "loop2": "loop1",
        "deadin": "dir/nonexist",
        "sneak": "dir/../.streamhub-root",
        "out": str(env.outside / "secret.txt"),
    }
    for name, target in made.items():
        if os.path.lexists(r / name):
            os.unlink(r / name)
        os.symlink(target, r / name)
    yield made
    for name in made:
        if os.path.lexists(r / name):
            os.unlink(r / name)


@pytest.mark.parametrize("who", ["member", "admin"])
@pytest.mark.parametrize("name,status", [
    ("mark", 404), ("loop1", 404), ("deadin", 404), ("sneak", 404), ("out", 403)])
def test_links_that_lead_nowhere_or_out_are_never_deleted_or_replaced(env, links, who, name,
                                                                     status):
    cred = getattr(env.creds, who)
    code = "not_found" if status == 404 else "outside_root"
    assert put(env, env.creds.member, f"src-{who}.txt", b"x", overwrite=True).status == 201
    attempts = [
        http_call(env, "DELETE", "/media/" + name, headers=cred.headers),
        put(env, cred, name, b"MEM", overwrite=True),
        move(env, env.creds.member if who == "member" else cred, f"src-{who}.txt", name,
             overwrite=True),
    ]
    r = tus_create(env, cred, name, 0, overwrite=True)
    attempts.append(r)
    for r in attempts:
        assert_error(r, status, code)
    assert os.readlink(env.root / name) == links[name], "the link was changed"
    assert (env.outside / "secret.txt").read_bytes() == b"outside\n"
    if name == "mark":
        assert (env.root / ".streamhub-root").is_file()


def test_overwrite_through_a_link_inside_writes_the_real_file_with_its_owner(env):
    c = env.creds
    assert put(env, c.member, "own.txt", b"mine").status == 201
    assert put(env, c.admin, "admins.txt", b"admin's").status == 201
    os.symlink("own.txt", env.root / "to-own")
    os.symlink("admins.txt", env.root / "to-admins")
    try:
        r = put(env, c.member, "to-own", b"new content", overwrite=True)
        assert r.status == 201, r
        assert os.readlink(env.root / "to-own") == "own.txt", "the link itself was replaced"
        assert (env.root / "own.txt").read_bytes() == b"new content"
        assert_error(put(env, c.member, "to-admins", b"evil", overwrite=True), 403, "forbidden")
        assert (env.root / "admins.txt").read_bytes() == b"admin's"
        # Without overwrite the name is taken.
        assert_error(put(env, c.member, "to-own", b"x"), 409, "exists")
        # A link is nobody's upload: a member cannot delete or move it; an admin can.
        assert_error(http_call(env, "DELETE", "/media/to-own", headers=c.member.headers),
                     403, "forbidden")
        assert_error(move(env, c.member, "to-own", "moved-link"), 403, "forbidden")
        r = http_call(env, "DELETE", "/media/to-admins", headers=c.admin.headers)
        assert r.status == 204, r
        assert not os.path.lexists(env.root / "to-admins")
        assert (env.root / "admins.txt").read_bytes() == b"admin's"
    finally:
        for n in ("to-own", "to-admins"):
            if os.path.lexists(env.root / n):
                os.unlink(env.root / n)


@pytest.mark.parametrize("extra", ["hand-placed", "hidden", "link"])
def test_member_cannot_carry_away_a_folder_holding_what_is_not_theirs(env, extra):
    c = env.creds
    d = f"mf-{extra}"
    r = http_call(env, "POST", "/api/library/folder", headers=c.member.headers,
                  json_body={"path": d})
    assert r.status == 201, r
    assert put(env, c.member, f"{d}/mine.txt", b"x").status == 201
    if extra == "hand-placed":
        (env.root / d / "sub").mkdir()
        (env.root / d / "sub" / "hand.txt").write_bytes(b"hand")
    elif extra == "hidden":
        (env.root / d / ".hiddendir").mkdir()
        (env.root / d / ".hiddendir" / "secret").write_bytes(b"s")
    else:
        os.symlink("../mine.txt", env.root / d / "hl")
    assert_error(move(env, c.member, d, d + "-moved"), 403, "forbidden")
    assert (env.root / d / "mine.txt").is_file()
    # The admin may.
    r = move(env, c.admin, d, d + "-moved")
    assert r.status == 200, r


def test_member_moves_their_own_folder(env):
    c = env.creds
    assert put(env, c.member, "own-folder/a/b.txt", b"b").status == 201
    r = move(env, c.member, "own-folder", "own-folder-moved")
    assert r.status == 200, r
    assert (env.root / "own-folder-moved" / "a" / "b.txt").read_bytes() == b"b"


def test_a_member_owns_the_parents_a_new_folder_made_and_may_remove_them(env):
    """Newcomer pass: `POST /api/library/folder {"path": "bobdir/sub"}` made `bobdir` too,
    but only `sub` was the member's, so they could not delete the folder they had just made
    (an upload's folders along the way were theirs already)."""
    c = env.creds
    r = http_call(env, "POST", "/api/library/folder", headers=c.member.headers,
                  json_body={"path": "made-by-mia/sub/deeper"})
    assert r.status == 201, r
    for path in ("made-by-mia", "made-by-mia/sub", "made-by-mia/sub/deeper"):
        r = http_call(env, "GET", "/api/library/item?path=" + quote(path, safe=""),
                      headers=c.member.headers)
        assert r.status == 200 and r.json()["yours"] is True, (path, r)
    r = http_call(env, "DELETE", "/media/made-by-mia?recursive=true", headers=c.member.headers)
    assert r.status in (200, 204), r
    assert not (env.root / "made-by-mia").exists()


def test_hidden_files_are_never_served_or_listed(env):
    r = env.root
    (r / ".env").write_bytes(b"PASSWORD=hunter2\n")
    (r / ".existing").mkdir()
    (r / ".existing" / "s.txt").write_bytes(b"s")
    (r / "dir2" / ".env.d").mkdir(parents=True)
    (r / "dir2" / ".env.d" / "t").write_bytes(b"t")
    for who in (None, env.creds.admin):
        h = who.headers if who else {}
        for p in (".env", ".existing/s.txt", "dir2/.env.d/t"):
            g = http_call(env, "GET", "/media/" + quote(p), headers=h)
            assert_error(g, 404, "not_found")
            assert b"hunter2" not in g.body
        assert_error(http_call(env, "GET", "/api/library?path=.existing", headers=h),
                     404, "not_found")
    assert_error(http_call(env, "DELETE", "/media/.env", headers=env.creds.admin.headers),
                 404, "not_found")
    assert (r / ".env").read_bytes() == b"PASSWORD=hunter2\n"


def test_names_match_in_either_unicode_form(env):
    c = env.creds
    nfd = "nfd\u0065\u0301"  # e + combining acute, as a Mac writes it
    (env.root / nfd).mkdir()
    r = put(env, c.member, "nfd\u00e9/m3.txt", b"X")  # NFC, as typed elsewhere
    assert r.status == 201, r
    loc = r.header("location")
    assert http_call(env, "GET", loc).status == 200
    assert http_call(env, "GET", "/media/" + quote(nfd + "/m3.txt")).body == b"X"
    assert os.listdir(env.root / nfd) == ["m3.txt"]
    # The member owns what they uploaded, whichever spelling they use to delete it.
    r = http_call(env, "DELETE", "/media/" + quote("nfd\u00e9/m3.txt"), headers=c.member.headers)
    assert r.status == 204, r
    assert os.listdir(env.root / nfd) == []


def test_a_mount_point_inside_the_root_is_a_clear_error(env):
    mnt = env.root / "mnt_in"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        c = env.creds
        r = move(env, c.admin, "mnt_in", "mnt_moved")
        assert_error(r, 400, "invalid", mentions="mounted")
        r = http_call(env, "DELETE", "/media/mnt_in", headers=c.admin.headers)
        assert_error(r, 400, "invalid", mentions="mounted")
        assert os.path.ismount(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("value", ["maybe", "yes", ""])
def test_tus_overwrite_must_be_a_boolean(env, value):
    meta = f"filename {b64('ow.txt')},overwrite {b64(value)}" if value else \
        f"filename {b64('ow.txt')},overwrite"
    r = http_call(env, "POST", "/api/tus/", headers={
        **env.creds.member.headers, "Tus-Resumable": "1.0.0", "Upload-Length": "1",
        "Upload-Metadata": meta})
    if value == "":
        # A key with no value is the tus way to say "set": refused here like any non-boolean.
        assert r.status in (201, 400), r
    else:
        assert_error(r, 400, "bad_metadata")


def test_moves_that_make_no_sense_are_400(env):
    c = env.creds
    assert put(env, c.member, "same.txt", b"s").status == 201
    assert_error(move(env, c.member, "same.txt", "same.txt"), 400, "invalid", mentions="same")
    assert_error(move(env, c.member, "", "x"), 400)


def test_multipart_name_that_cannot_be_read_is_400_not_ignored(env):
    bnd = "B0und"
    for disp in ["filename*=UTF-8''..%2F..%2Fevil.txt", 'filename="\xff\xfe.txt"']:
        body = (f"--{bnd}\r\nContent-Disposition: form-data; name=\"f\"; ").encode("latin-1") + \
            disp.encode("latin-1") + f"\r\n\r\ndata\r\n--{bnd}--\r\n".encode()
        r = http_call(env, "POST", "/api/upload?dir=mp", body=body, headers={
            **env.creds.member.headers, "Content-Type": f"multipart/form-data; boundary={bnd}"})
        assert_error(r, 400, "bad_path")
    assert not (env.root / "evil.txt").exists()


def test_unknown_query_parameter_is_explained_in_our_words(env):
    r = http_call(env, "PUT", "/media/q.txt?bogus=1", headers=env.creds.member.headers, body=b"q")
    assert_error(r, 400, "bad_query", mentions="bogus")
    assert "Failed to deserialize" not in r.json()["message"]


def test_tus_length_sent_twice_is_400(env):
    import socket
    from conftest import read_response
    meta = "filename " + b64("twice.txt")
    req = (f"POST /api/tus/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {env.creds.member.token}\r\n"
           f"Tus-Resumable: 1.0.0\r\nUpload-Length: 5\r\nUpload-Length: 50\r\n"
           f"Upload-Metadata: {meta}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", env.port), timeout=10) as s:
        s.sendall(req.encode())
        r = read_response(s)
    assert_error(r, 400, "bad_header", mentions="more than once")


@pytest.fixture(scope="module")
def escape(module_servers, tmp_path_factory):
    """`storage.allow_symlink_escape = true`: a linked folder outside can be read, never
    written (the third outside run: members could create files anywhere under it)."""
    base = tmp_path_factory.mktemp("escape")
    root, outside = base / "media", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside\n")
    (root / "do").symlink_to(outside, target_is_directory=True)
    (root / "mine.txt").write_bytes(b"in")
    srv = module_servers.start(root, tls_listen=(), name="escape",
                               config="[storage]\nallow_symlink_escape = true\n")
    srv.creds = Creds(srv)
    srv.root, srv.outside = root, outside
    return srv


def test_escapes_are_for_reading_only(escape):
    c, out = escape.creds, escape.outside
    assert http_call(escape, "GET", "/media/do/secret.txt").body == b"outside\n"
    for cred in (c.member, c.admin):
        assert_error(put(escape, cred, "do/new.txt", b"x"), 403, "outside_root")
        assert_error(put(escape, cred, "do/secret.txt", b"x", overwrite=True), 403,
                     "outside_root")
        assert_error(http_call(escape, "POST", "/api/library/folder", headers=cred.headers,
                               json_body={"path": "do/newdir"}), 403, "outside_root")
        assert_error(http_call(escape, "DELETE", "/media/do/secret.txt", headers=cred.headers),
                     403, "outside_root")
        own = f"own-{cred.name}.txt"
        assert put(escape, cred, own, b"own", overwrite=True).status == 201
        assert_error(move(escape, cred, own, "do/" + own), 403, "outside_root")
        assert_error(move(escape, cred, "do/secret.txt", "got.txt"), 403, "outside_root")
    assert sorted(os.listdir(out)) == ["secret.txt"]
    assert (out / "secret.txt").read_bytes() == b"outside\n"
    assert (escape.root / "mine.txt").read_bytes() == b"in"


def test_a_link_does_not_make_a_hidden_name_public(env):
    r = env.root
    (r / ".env").write_bytes(b"PASSWORD=hunter2\n")
    (r / ".private").mkdir(exist_ok=True)
    (r / ".private" / "p.txt").write_bytes(b"private")
    os.symlink(".env", r / "venv")
    os.symlink(".private", r / "album")
    try:
        for p in ("venv", "album/p.txt"):
            g = http_call(env, "GET", "/media/" + p)
            assert_error(g, 404, "not_found")
        assert_error(http_call(env, "GET", "/api/library?path=album"), 404, "not_found")
        w = put(env, env.creds.member, "album/new.txt", b"x")
        assert w.status in (403, 404, 409), w
        # A resumable upload there is refused as the PUT is, when it is created, not after
        # the whole file was sent.
        t = tus_create(env, env.creds.member, "new.txt", 1, folder="album")
        assert t.status == w.status, (t, w)
        assert t.json()["error"] == w.json()["error"], (t, w)
        assert sorted(os.listdir(r / ".private")) == ["p.txt"]
        r2 = http_call(env, "POST", "/api/shares", headers=env.creds.member.headers,
                       json_body={"path": "venv"})
        assert r2.status == 404, r2
    finally:
        os.unlink(r / "venv")
        os.unlink(r / "album")


def test_moving_a_link_onto_its_own_target_is_refused(env):
    c = env.creds
    assert put(env, c.admin, "prec.txt", b"precious").status == 201
    os.symlink("prec.txt", env.root / "precl")
    try:
        assert_error(move(env, c.admin, "precl", "prec.txt", overwrite=True), 400, "invalid")
        assert (env.root / "prec.txt").read_bytes() == b"precious"
        assert os.readlink(env.root / "precl") == "prec.txt"
    finally:
        os.unlink(env.root / "precl")


def test_a_unix_socket_in_the_root_is_not_found_not_500(env):
    import socket
    path = env.root / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        assert_error(http_call(env, "GET", "/media/sock"), 404, "not_found")
        assert http_call(env, "HEAD", "/media/sock").status == 404
        r = http_call(env, "POST", "/api/shares", headers=env.creds.member.headers,
                      json_body={"path": "sock"})
        assert r.status == 404, r
    finally:
        s.close()
        os.unlink(path)
