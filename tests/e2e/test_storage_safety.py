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
                 and any((root / ".streamhub-staging").glob("*.part")), what="the upload")
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
