"""Folder operations on S3 that stop half-way (a real Garage node, `garage` fixture, killed
while streamhub moves or deletes a folder object by object): the client gets a clear status
with a JSON body saying how many objects went and that the same request again finishes the
job, and once Garage is back the same request does finish it, every byte in place.
"""

import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

import garage_util
from conftest import AUTH_PW, cli_add_user, http_call, must_login, new_token

PREFIX = "halfway"
N = 300


@pytest.fixture()
def node(servers, garage, tmp_path):
    root = tmp_path / "unused-root"
    root.mkdir()
    env = {**garage.env(PREFIX), "STREAMHUB_STORAGE_TIMEOUT_SECS": "3"}
    srv = servers.start(root, tls_listen=(), env=env, name="s3half")
    # Files put straight into the bucket have no uploader: an admin may change them.
    cli_add_user(srv.data_dir, "boss", admin=True)
    srv.token = new_token(srv, must_login(srv, "boss", AUTH_PW), "boss-s3-half")
    return srv


def call(srv, method, path, **kw):
    return http_call(srv, method, path, headers=srv.token.headers, timeout=120, **kw)


def count(garage, folder):
    """Objects under `folder` (≤ 1000), listed straight from Garage."""
    prefix = quote(f"{PREFIX}/{folder}/", safe="")
    r = subprocess.run(
        ["curl", "-sS", "--aws-sigv4", f"aws:amz:{garage_util.REGION}:s3",
         "--user", f"{garage_util.KEY_ID}:{garage_util.SECRET}",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         f"{garage.endpoint}/{garage_util.BUCKET}?list-type=2&prefix={prefix}"],
        capture_output=True, timeout=30)
    m = re.search(rb"<KeyCount>(\d+)</KeyCount>", r.stdout)
    assert m, r.stdout[:500]
    return int(m.group(1))


def seed(garage, folder):
    def put(i):
        status, _ = garage.curl_s3("PUT", f"{PREFIX}/{folder}/f{i:03}.bin", b"%d" % i * 100)
        assert status == 200
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(put, range(N)))


def cut_garage_when(garage, done, request):
    """Runs `request` in a thread and kills Garage once `done()` says the operation is under
    way; returns the request's answer (Garage is started again)."""
    out = []
    t = threading.Thread(target=lambda: out.append(request()))
    t.start()
    try:
        while t.is_alive() and not done():
            pass
        assert t.is_alive(), f"the operation ended before Garage could be stopped half-way: {out}"
        garage.kill()
        t.join(timeout=120)
    finally:
        garage.start()
    return out[0]


def assert_partial(r, verb):
    assert r.status == 503, r
    body = r.json()
    assert body["error"] == "partial", body
    assert 0 < body["done"] < N, body
    assert f"{verb} {body['done']} " in body["message"], body
    assert "again to finish" in body["message"], body
    assert int(r.header("retry-after")) > 0, r
    return body["done"]


def test_a_folder_move_cut_half_way_says_how_far_and_finishes_when_run_again(node, garage):
    seed(garage, "mv/src")
    move = {"from": "mv/src", "to": "mv/dst"}
    r = cut_garage_when(garage, lambda: count(garage, "mv/dst") >= 5,
                        lambda: call(node, "POST", "/api/library/move", json_body=move))
    moved = assert_partial(r, "moved")
    assert count(garage, "mv/src") + count(garage, "mv/dst") >= N
    # The same move again finishes it (not a move into mv/dst/src, not 409 exists)
    r = call(node, "POST", "/api/library/move", json_body=move)
    assert r.status == 200, r
    assert count(garage, "mv/src") == 0
    assert count(garage, "mv/dst") == N
    for i in (0, N // 2, N - 1):
        got = http_call(node, "GET", f"/media/mv/dst/f{i:03}.bin", headers=node.token.headers)
        assert got.status == 200 and got.body == b"%d" % i * 100
    assert moved > 0
    status, _ = garage.curl_s3("GET", f"{PREFIX}/mv/dst/.streamhub-moving")
    assert status == 404, "the move's mark is left"


def test_a_recursive_delete_cut_half_way_says_how_far_and_finishes_when_run_again(node, garage):
    seed(garage, "del/tree")
    r = cut_garage_when(garage, lambda: count(garage, "del/tree") <= N - 5,
                        lambda: call(node, "DELETE", "/media/del/tree?recursive=true"))
    assert_partial(r, "deleted")
    assert 0 < count(garage, "del/tree") < N
    r = call(node, "DELETE", "/media/del/tree?recursive=true")
    assert r.status == 204, r
    assert count(garage, "del/tree") == 0
    assert call(node, "GET", "/api/library?path=del/tree").status == 404
