"""Storage safe by construction (issue 11): nothing is ever created, renamed or revealed
outside the media root — through a link, a link swapped in during a request, or a hidden
name on the way — and a failed upload leaves nothing behind, not even its folders.

Every case is tried as a member would, from outside, against the real binary: PUT,
multipart, new folder, move, tus, reads.
"""

import base64
import os
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import assert_error, http_call, wait_for
from test_upload_faults import Creds, RawPut, stream_until_answer, wait_staging_empty
from test_tus_shared_root import node_id

SECRET = b"TOPSECRET outside the media root\n"


def tree(base):
    """Every path under `base` (links not followed), for "nothing changed here"."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(base):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), base))
    return out


@pytest.fixture(scope="module")
def env(module_servers, tmp_path_factory):
    base = tmp_path_factory.mktemp("safety")
    root, outside = base / "media", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "existing-file").write_bytes(SECRET)
    (outside / "existing-dir").mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "up").symlink_to("..", target_is_directory=True)
    (root / "dir").mkdir()
    srv = module_servers.start(root, tls_listen=(), name="safety")
    srv.creds = Creds(srv)
    srv.outside = outside
    return srv


def tus_create(srv, cred, filename, folder=None, length=5):
    meta = "filename " + base64.b64encode(filename.encode()).decode()
    if folder is not None:
        meta += ",folder " + base64.b64encode(folder.encode()).decode()
    return http_call(srv, "POST", "/api/tus/", headers={
        **cred.headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(length),
        "Upload-Metadata": meta})


def multipart(srv, cred, d, name="m.txt", data=b"multipart"):
    bnd = "safetyBoundary"
    body = (f"--{bnd}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\n\r\n"
            ).encode() + data + f"\r\n--{bnd}--\r\n".encode()
    return http_call(srv, "POST", "/api/upload?dir=" + quote(d, safe=""), body=body,
                     headers={**cred.headers,
                              "Content-Type": f"multipart/form-data; boundary={bnd}"})


@pytest.mark.parametrize("target", [
    "link/newA/newB/f.txt",
    "link/f.txt",
    "link/existing-file/x",
    "link/missing/x",
    "link/existing-dir/x",
    "up/outside/new/f.txt",
])
def test_writes_through_a_link_create_nothing_outside_and_reveal_nothing(env, target):
    c = env.creds
    before = tree(env.outside)
    r = http_call(env, "PUT", "/media/" + target, headers=c.member.headers, body=b"data")
    # The same answer whatever exists out there: no oracle.
    assert_error(r, 403, "outside_root")
    assert tree(env.outside) == before
    assert wait_staging_empty(env.media_root) == []


@pytest.mark.parametrize("how", ["folder", "move", "multipart", "tus"])
@pytest.mark.parametrize("where", ["link/a/b", "link/existing-file", "link/missing"])
def test_every_endpoint_refuses_a_path_through_a_link(env, how, where):
    c = env.creds
    before = tree(env.outside)
    if how == "folder":
        r = http_call(env, "POST", "/api/library/folder", headers=c.member.headers,
                      json_body={"path": where + "/new"})
    elif how == "move":
        src = f"mine-{abs(hash(where))}.txt"
        assert http_call(env, "PUT", "/media/" + src, headers=c.member.headers,
                         body=b"m").status == 201
        r = http_call(env, "POST", "/api/library/move", headers=c.member.headers,
                      json_body={"from": src, "to": where + "/moved.txt"})
        assert (env.media_root / src).exists(), "the source stays where it was"
    elif how == "multipart":
        r = multipart(env, c.member, where)
    else:
        r = tus_create(env, c.member, "t.bin", folder=where)
    assert_error(r, 403, "outside_root")
    assert tree(env.outside) == before


def test_reads_through_a_link_reveal_nothing(env):
    for p in ["link/existing-file", "link/missing", "link/existing-dir/nothing",
              "up/outside/existing-file"]:
        r = http_call(env, "GET", "/media/" + p)
        assert_error(r, 403, "outside_root")
        assert SECRET not in r.body
    for d in ["link", "link/existing-dir", "link/missing"]:
        assert_error(http_call(env, "GET", "/api/library?path=" + d,
                               headers=env.creds.member.headers), 403, "outside_root")


def test_a_folder_swapped_for_a_link_during_a_slow_put_keeps_the_file_inside(env):
    c = env.creds
    root = env.media_root
    (root / "swap").mkdir()
    body = os.urandom(300_000)
    up = RawPut(env.port, "/media/swap/slow.bin", c.member.headers, length=len(body))
    try:
        up.send(body[:100_000])
        # Wait until the upload is really under way (its staging file exists).
        wait_for(lambda: (root / ".streamhub-staging").exists()
                 and any((root / ".streamhub-staging").glob("*/*.part")), what="the upload")
        os.rename(root / "swap", root / "swap.old")
        os.symlink(env.outside, root / "swap", target_is_directory=True)
        r, _ = stream_until_answer(up, len(body), body[100_000:])
    finally:
        up.close()
    assert_error(r, 403, "outside_root")
    assert not (env.outside / "slow.bin").exists()
    assert not (root / "swap.old" / "slow.bin").exists()
    assert wait_staging_empty(root) == []


@pytest.mark.parametrize("target", [
    ".hidden/x.txt", "CON/x.txt", "trail./x.txt", "ok/.hid/x.txt", "sp /x.txt"])
def test_every_name_on_the_way_must_be_a_good_new_name(env, target):
    c = env.creds
    r = http_call(env, "PUT", "/media/" + quote(target), headers=c.member.headers, body=b"x")
    assert_error(r, 400, "bad_name")
    first = target.split("/")[0]
    assert not (env.media_root / first).exists()


def test_hidden_folders_are_refused_on_every_endpoint(env):
    c = env.creds
    root = env.media_root
    assert_error(http_call(env, "POST", "/api/library/folder", headers=c.member.headers,
                           json_body={"path": ".hid/sub"}), 400, "bad_name")
    assert_error(multipart(env, c.member, ".hid"), 400, "bad_name")
    assert http_call(env, "PUT", "/media/plain.txt", headers=c.member.headers,
                     body=b"p").status == 201
    assert_error(http_call(env, "POST", "/api/library/move", headers=c.member.headers,
                           json_body={"from": "plain.txt", "to": ".hid/x"}), 400, "bad_name")
    assert_error(tus_create(env, c.member, "t.bin", folder=".hid"), 400, "bad_name")
    assert not (root / ".hid").exists()
    assert (root / "plain.txt").exists()


def test_a_broken_upload_leaves_no_folder_behind(env):
    c = env.creds
    root = env.media_root
    body = os.urandom(200_000)
    up = RawPut(env.port, "/media/gone/deeper/f.bin", c.member.headers, length=len(body))
    try:
        up.send(body[:50_000])
        time.sleep(0.3)
    finally:
        up.close()  # the client goes away mid-body
    wait_for(lambda: wait_staging_empty(root) == [], what="the staging file to go")
    assert not (root / "gone").exists()


@pytest.mark.parametrize("kind", ["abs", "rel"])
@pytest.mark.parametrize("there", ["exists", "missing"])
def test_a_link_through_the_outside_and_back_is_refused_either_way(env, kind, there):
    # Whether the outside folder on the way exists must not change the answer (no oracle),
    # and nothing may be written through such a link.
    root = env.media_root
    (root / "inside").mkdir(exist_ok=True)
    (root / "inside/f.txt").write_bytes(b"f")
    mid = "existing-dir" if there == "exists" else "no-such-dir"
    if kind == "abs":
        target = f"{env.outside}/{mid}/../../{root.name}/inside"
    else:
        target = f"../{env.outside.name}/{mid}/../../{root.name}/inside"
    link = root / f"back-{kind}-{there}"
    if not link.is_symlink():
        link.symlink_to(target)
    assert_error(http_call(env, "GET", f"/media/{link.name}/f.txt"), 403, "outside_root")
    r = http_call(env, "PUT", f"/media/{link.name}/new.txt", headers=env.creds.member.headers,
                  body=b"n")
    assert_error(r, 403, "outside_root")
    assert not (root / "inside/new.txt").exists()


def test_streamhub_names_are_unreachable_through_a_link(env):
    c = env.creds
    root = env.media_root
    assert http_call(env, "PUT", "/media/seed.txt", headers=c.member.headers,
                     body=b"s").status in (201, 409)
    (root / "stg").symlink_to(".streamhub-staging", target_is_directory=True)
    (root / "mk").symlink_to(".streamhub-root")
    try:
        for p in ["stg", "stg/resumable", "mk"]:
            assert_error(http_call(env, "GET", "/media/" + p), 404, "not_found")
        assert_error(http_call(env, "GET", "/api/library?path=stg",
                               headers=c.member.headers), 404, "not_found")
        r = http_call(env, "PUT", "/media/stg/x.txt", headers=c.member.headers, body=b"x")
        assert r.status == 404, r
        r = http_call(env, "POST", "/api/library/folder", headers=c.member.headers,
                      json_body={"path": "stg/newf"})
        assert r.status == 404, r
        names = [e["name"] for e in http_call(env, "GET", "/api/library?path=",
                                              headers=c.member.headers).json()["entries"]]
        assert "stg" not in names and "mk" not in names, names
        assert not (root / ".streamhub-staging/x.txt").exists()
        assert not (root / ".streamhub-staging/newf").exists()
    finally:
        (root / "stg").unlink()
        (root / "mk").unlink()


def test_ownership_follows_the_file_not_the_alias(env):
    c = env.creds
    root = env.media_root
    (root / "alicedir").mkdir()
    (root / "bobdir").mkdir()
    (root / "L").symlink_to("alicedir", target_is_directory=True)
    # The member uploads through the alias: she owns the real file.
    assert http_call(env, "PUT", "/media/L/f.txt", headers=c.member.headers,
                     body=b"mine").status == 201
    # An admin's file; the alias is re-pointed at its folder.
    assert http_call(env, "PUT", "/media/bobdir/f.txt", headers=c.admin.headers,
                     body=b"the admin's").status == 201
    (root / "L").unlink()
    (root / "L").symlink_to("bobdir", target_is_directory=True)
    r = http_call(env, "PUT", "/media/L/f.txt?overwrite=true", headers=c.member.headers,
                  body=b"overwritten")
    assert_error(r, 403, "forbidden")
    assert_error(http_call(env, "DELETE", "/media/L/f.txt", headers=c.member.headers),
                 403, "forbidden")
    assert (root / "bobdir/f.txt").read_bytes() == b"the admin's"
    # Her own file is hers by its real path too.
    r = http_call(env, "DELETE", "/media/alicedir/f.txt", headers=c.member.headers)
    assert r.status == 204, r


@pytest.mark.parametrize("name", ["COM0", "lpt0.txt", "CONIN$", "CLOCK$", "nul .txt",
                                  "COM\u00b9.txt"])
def test_all_windows_device_names_are_refused(env, name):
    r = http_call(env, "PUT", "/media/" + quote(name), headers=env.creds.member.headers,
                  body=b"x")
    assert_error(r, 400, "bad_name")


@pytest.mark.parametrize("name", ["x\u00a0", "x\u3000", "\u2003x", "dir\u00a0/f.txt"])
def test_names_with_white_space_at_an_end_are_refused(env, name):
    # A trailing no-break or ideographic space looks like `x` in every listing.
    r = http_call(env, "PUT", "/media/" + quote(name), headers=env.creds.member.headers,
                  body=b"x")
    assert_error(r, 400, "bad_name")
    assert [n for n in os.listdir(env.media_root) if n != n.strip()] == []


def test_a_new_name_finds_the_folder_a_mac_made(env):
    import unicodedata
    root = env.media_root
    nfd = unicodedata.normalize("NFD", "caf\u00e9")
    (root / nfd).mkdir()
    r = http_call(env, "PUT", "/media/" + quote("caf\u00e9") + "/new.txt",
                  headers=env.creds.member.headers, body=b"n")
    assert r.status == 201, r
    assert (root / nfd / "new.txt").read_bytes() == b"n"
    assert not (root / "caf\u00e9").exists() or (root / "caf\u00e9").samefile(root / nfd)


@pytest.fixture()
def usb(env):
    """A second disk (tmpfs) mounted inside the media root."""
    import subprocess
    mnt = env.media_root / "usb"
    mnt.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_a_disk_mounted_inside_the_root_takes_uploads_and_refuses_moves_clearly(env, usb):
    c = env.creds
    r = tus_create(env, c.member, "t.bin", folder="usb", length=10)
    assert r.status == 201, r
    loc = r.header("location")
    tus = {**c.member.headers, "Tus-Resumable": "1.0.0",
           "Content-Type": "application/offset+octet-stream"}
    r = http_call(env, "PATCH", loc, headers={**tus, "Upload-Offset": "0"}, body=b"01234")
    assert r.status == 204, r
    r = http_call(env, "PATCH", loc, headers={**tus, "Upload-Offset": "5"}, body=b"56789")
    assert r.status == 204, r
    assert (usb / "t.bin").read_bytes() == b"0123456789"
    # a PUT there stages on that disk, in this node's folder, so its commit is a rename
    r = http_call(env, "PUT", "/media/usb/put.bin", headers=c.member.headers, body=b"p" * 1000)
    assert r.status == 201, r
    assert (usb / "put.bin").read_bytes() == b"p" * 1000
    usb_staging = usb / ".streamhub-staging"
    assert [p.name for p in usb_staging.iterdir()] == [node_id(env.data_dir)]
    assert not [p for p in usb_staging.rglob("*") if not p.is_dir()], "staging data left"
    assert http_call(env, "PUT", "/media/across.txt", headers=c.admin.headers,
                     body=b"a").status == 201
    r = http_call(env, "POST", "/api/library/move", headers=c.admin.headers,
                  json_body={"from": "across.txt", "to": "usb/across.txt"})
    assert_error(r, 400, "invalid", mentions="another disk")
    assert (env.media_root / "across.txt").exists()


def test_a_multipart_form_that_fails_half_way_says_what_was_stored(env):
    c = env.creds
    bnd = "partBoundary"
    body = (f"--{bnd}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"ok.txt\"\r\n\r\n"
            f"fine\r\n--{bnd}\r\nContent-Disposition: form-data; name=\"f\"; "
            f"filename=\".bad\"\r\n\r\nhidden\r\n--{bnd}--\r\n").encode()
    r = http_call(env, "POST", "/api/upload?dir=half", body=body,
                  headers={**c.member.headers,
                           "Content-Type": f"multipart/form-data; boundary={bnd}"})
    err = assert_error(r, 400, "bad_name", mentions="half/ok.txt")
    assert [f["path"] for f in err["files"]] == ["half/ok.txt"], err
    assert (env.media_root / "half/ok.txt").read_bytes() == b"fine"
