"""S3 redirect mode (a real Garage node, `garage` fixture): after streamhub has checked
access, media answers 307 to a presigned URL on `s3.public_endpoint`, which curl and ffmpeg
follow (whole file, ranges, seeks); no login is 401, never a redirect; share links redirect
too; the page CSP names the store only in this mode; risky types are still proxied with
their protection; an expired URL is refused by the store. Without redirect: 200/206.
"""

import subprocess
import time
from urllib.parse import quote, urlsplit

import pytest

from conftest import AuthEnv, ServerFactory, csp_directives, http_call
from test_library import make_video

PREFIX = "redir"
VIDEO = "films/Clip S3.mp4"
BLOB = bytes(range(256)) * 4096  # 1 MiB


def public_endpoint(garage):
    # Another host name for the same store: what browsers would reach.
    return garage.endpoint.replace("127.0.0.1", "localhost")


def start(garage, factory, tmp, name, **extra):
    env = {**garage.env(PREFIX), "STREAMHUB_AUTH_ANONYMOUS_READ": "false", **extra}
    return AuthEnv(factory.start(tmp / "unused-root", tls_listen=(), env=env, name=name),
                   second_member=False)


@pytest.fixture(scope="module")
def seeded(garage, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s3redir")
    make_video(tmp / "v.mp4", seconds=4, size="320x180")
    video = (tmp / "v.mp4").read_bytes()
    for key, data in [(VIDEO, video), ("blob.mp3", BLOB),
                      ("page.html", b"<script>alert(1)</script>"),
                      ("pic.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")]:
        status, body = garage.curl_s3("PUT", f"{PREFIX}/{key}", data)
        assert status == 200, body
    return tmp, video


@pytest.fixture(scope="module")
def env(garage, seeded, tmp_path_factory):
    tmp, video = seeded
    f = ServerFactory(tmp_path_factory)
    e = start(garage, f, tmp, "s3redir", STREAMHUB_S3_REDIRECT="true",
              STREAMHUB_S3_PUBLIC_ENDPOINT=public_endpoint(garage))
    e.video = video
    yield e
    f.stop_all()


def curl(args, timeout=60):
    r = subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout


def auth_args(cred):
    return [a for k, v in cred.headers.items() for a in ("-H", f"{k}: {v}")]


def test_first_answer_is_307_to_the_public_endpoint(env, garage):
    r = http_call(env.srv, "GET", "/media/blob.mp3", headers=env.member.headers)
    assert r.status == 307, r
    loc = r.header("location")
    pub = urlsplit(public_endpoint(garage))
    assert urlsplit(loc).netloc == pub.netloc, loc
    assert "X-Amz-Signature=" in loc and "X-Amz-Expires=14400" in loc, loc
    assert "no-store" in r.header("cache-control"), r
    # The store answers the presigned URL with our type and an inline disposition.
    head = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", loc],
                          capture_output=True, text=True, timeout=30).stdout.lower()
    assert " 200" in head.splitlines()[0], head
    assert "content-type: audio/mpeg" in head, head
    assert "content-disposition: inline; filename*=utf-8''blob.mp3" in head, head


def test_curl_follows_whole_and_ranges_byte_exact(env):
    url = env.srv.url("/media/blob.mp3")
    assert curl(["-L", *auth_args(env.member), url]) == BLOB
    for lo, hi in [(0, 0), (1000, 4999), (len(BLOB) - 10, len(BLOB) - 1)]:
        got = curl(["-L", "-r", f"{lo}-{hi}", *auth_args(env.member), url])
        assert got == BLOB[lo:hi + 1], (lo, hi)
    # HEAD is redirected to a HEAD-signed URL.
    out = subprocess.run(["curl", "-sS", "-I", "-L", *auth_args(env.member), url],
                         capture_output=True, text=True, timeout=30).stdout.lower()
    assert f"content-length: {len(BLOB)}" in out, out


def test_no_login_is_401_never_a_redirect(env):
    for method in ("GET", "HEAD"):
        r = http_call(env.srv, method, "/media/blob.mp3")
        assert r.status == 401, r
        assert r.header("location") is None, r


def test_share_link_redirects_and_ffmpeg_seeks_over_it(env, tmp_path):
    r = http_call(env.srv, "POST", "/api/shares", headers=env.member.headers,
                  json_body={"path": VIDEO})
    assert r.status == 201, r
    link = env.srv.url(urlsplit(r.json()["url"]).path)
    first = http_call(env.srv, "GET", urlsplit(link).path)
    assert first.status == 307, first
    assert curl(["-L", link]) == env.video

    def frame(src, dst):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", "2.5", "-i", src,
                        "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", str(dst)],
                       check=True, timeout=120)
        return dst.read_bytes()

    local = tmp_path / "local.mp4"
    local.write_bytes(env.video)
    assert frame(link, tmp_path / "got.raw") == frame(str(local), tmp_path / "want.raw")


def test_page_csp_names_the_store_for_media_only(env, garage):
    r = http_call(env.srv, "GET", "/")
    d = csp_directives(r.header("content-security-policy"))
    origin = public_endpoint(garage).rstrip("/")
    assert origin in d["media-src"] and origin in d["img-src"], d
    assert origin not in d["default-src"] and origin not in d["script-src"], d


def test_risky_types_are_proxied_with_their_protection(env):
    r = http_call(env.srv, "GET", "/media/page.html", headers=env.member.headers)
    assert r.status == 200, r
    assert r.header("content-disposition").startswith("attachment"), r
    assert "sandbox" in r.header("content-security-policy"), r
    r = http_call(env.srv, "GET", "/media/pic.svg", headers=env.member.headers)
    assert r.status == 200 and r.header("location") is None, r
    assert "sandbox" in r.header("content-security-policy"), r


def test_expired_url_is_refused_by_the_store(garage, seeded, tmp_path_factory):
    tmp, _ = seeded
    f = ServerFactory(tmp_path_factory)
    try:
        e = start(garage, f, tmp, "s3redir-short", STREAMHUB_S3_REDIRECT="true",
                  STREAMHUB_S3_REDIRECT_EXPIRY_SECS="1")
        r = http_call(e.srv, "GET", "/media/blob.mp3", headers=e.member.headers)
        assert r.status == 307, r
        loc = r.header("location")
        assert urlsplit(loc).netloc == urlsplit(garage.endpoint).netloc, loc
        time.sleep(2.5)
        out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", loc],
                             capture_output=True, text=True, timeout=30).stdout
        body, _, status = out.rpartition("\n")
        # Garage answers 400 "Date is too old" (AWS 403 "Request has expired").
        assert status in ("400", "403") and ("expired" in body or "too old" in body), out
        d = csp_directives(http_call(e.srv, "GET", "/").header("content-security-policy"))
        assert garage.endpoint.rstrip("/") in d["media-src"], d
    finally:
        f.stop_all()


def test_without_redirect_media_is_proxied(garage, seeded, tmp_path_factory):
    tmp, _ = seeded
    f = ServerFactory(tmp_path_factory)
    try:
        e = start(garage, f, tmp, "s3proxy")
        r = http_call(e.srv, "GET", "/media/blob.mp3", headers=e.member.headers)
        assert r.status == 200 and r.body == BLOB, r
        r = http_call(e.srv, "GET", "/media/blob.mp3",
                      headers={**e.member.headers, "Range": "bytes=10-19"})
        assert r.status == 206 and r.body == BLOB[10:20], r
        d = csp_directives(http_call(e.srv, "GET", "/").header("content-security-policy"))
        assert "media-src" not in d, d
    finally:
        f.stop_all()
