"""S3 storage state and folder deletes (a real Garage node, `garage` fixture): `/readyz` names
the backend and why it is not ready, quickly, and `/metrics` shows the storage state, with
Garage stopped and back; a recursive delete of a folder removes every object under it
(more than one listing page), and the listing, the library search and the bucket agree.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from conftest import ServerFactory, http_call, wait_for
from test_metrics import sample
from test_s3_files import Env

PREFIX = "state"


@pytest.fixture(scope="module")
def env(garage, tmp_path_factory):
    f = ServerFactory(tmp_path_factory)
    root = tmp_path_factory.mktemp("s3-state-unused-root")
    extra = {**garage.env(PREFIX), "STREAMHUB_STORAGE_TIMEOUT_SECS": "3"}
    srv = f.start(root, tls_listen=(), env=extra, name="s3state")
    yield Env(srv, garage)
    f.stop_all()


def scrape(env):
    r = env.call("GET", "/metrics", cred=env.admin)
    assert r.status == 200, r
    return r.body.decode()


def test_readyz_and_metrics_with_garage_stopped_and_back(env, garage):
    r = http_call(env.srv, "GET", "/readyz")
    assert r.status == 200, r
    media = r.json()["checks"]["media_root"]
    assert media["ok"] and media["backend"] == "s3", media
    text = scrape(env)
    assert sample(text, "streamhub_storage_up", backend="s3") == 1, text
    assert sample(text, "streamhub_storage_check_duration_seconds", backend="s3") < 3
    failures = sample(text, "streamhub_storage_check_failures_total", backend="s3") or 0
    garage.stop()
    try:
        time.sleep(2.1)  # past the cached answer
        t0 = time.monotonic()
        r = http_call(env.srv, "GET", "/readyz", timeout=30)
        assert time.monotonic() - t0 < 4, "readyz took longer than the storage timeout"
        assert r.status == 503, r
        media = r.json()["checks"]["media_root"]
        assert not media["ok"] and media["backend"] == "s3", media
        assert "S3 endpoint" in media["error"] and "s3.endpoint" in media["error"], media
        # A flood of probes is answered from the one check.
        t0 = time.monotonic()
        for _ in range(20):
            assert http_call(env.srv, "GET", "/readyz", timeout=30).status == 503
        assert time.monotonic() - t0 < 2
        text = scrape(env)
        assert sample(text, "streamhub_storage_up", backend="s3") == 0, text
        assert sample(text, "streamhub_storage_check_failures_total", backend="s3") > failures
    finally:
        garage.start()
    wait_for(lambda: http_call(env.srv, "GET", "/readyz").status == 200, 30,
             "readyz to recover", every=0.5)
    assert sample(scrape(env), "streamhub_storage_up", backend="s3") == 1


def test_recursive_delete_of_a_nested_folder(env, garage):
    files = {"tree/a.mp3": b"a", "tree/sub/b.mp3": b"bb", "tree/sub/deep/c.mp3": b"ccc"}
    for rel, body in files.items():
        assert env.call("PUT", "/media/" + quote(rel, safe="/"), cred=env.admin, body=body).status == 201
    assert env.call("POST", "/api/library/folder", cred=env.admin,
                    json_body={"path": "tree/empty"}).status == 201
    # More than one ListObjectsV2 page, put straight into the bucket.
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: garage.curl_s3("PUT", f"{PREFIX}/tree/many/{i}.bin", b"x")[0],
                              range(1005)))
    assert codes == [200] * 1005
    r = env.call("DELETE", "/media/tree", cred=env.admin)
    assert r.status == 409 and r.json()["error"] == "not_empty", r
    t0 = time.monotonic()
    r = env.call("DELETE", "/media/tree?recursive=true", cred=env.admin)
    assert r.status == 204, r
    assert r.header("x-trash-id") is None, r  # no trash on S3: gone for good
    assert http_call(env.srv, "GET", "/api/info").json()["trash"] is False
    took = time.monotonic() - t0
    assert "tree" not in env.names(""), took
    for rel in files:
        assert env.in_bucket(rel) is None, rel
        assert env.get(rel).status == 404, rel
    assert env.in_bucket("tree/many/1004.bin") is None
    assert env.in_bucket("tree/empty/") is None
    r = env.call("GET", "/api/library?q=" + quote("b.mp3") + "&per_page=100")
    assert r.status == 200 and not [e for e in r.json()["entries"]
                                    if e["path"].startswith("tree/")], r.json()
    # Deleting again: the folder is gone.
    assert env.call("DELETE", "/media/tree?recursive=true", cred=env.admin).status == 404
