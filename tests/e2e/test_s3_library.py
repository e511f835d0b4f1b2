"""The library over S3 (a real Garage node, `garage` fixture): files put into the bucket by
hand are found by the scan (ListObjectsV2), probed by ffprobe through a presigned URL (no
download by streamhub), searchable, and a seek with ffmpeg through streamhub gives the right
frames.
"""

import subprocess
from urllib.parse import quote

import pytest

from conftest import ServerFactory, http_call, wait_for
from test_library import make_video

PREFIX = "libs3"
VIDEO = "films/Big Buck S3.mp4"


@pytest.fixture(scope="module")
def srv(garage, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s3lib")
    make_video(tmp / "v.mp4", seconds=4, size="640x360")
    status, body = garage.curl_s3("PUT", f"{PREFIX}/{VIDEO}", (tmp / "v.mp4").read_bytes())
    assert status == 200, body
    f = ServerFactory(tmp_path_factory)
    env = {**garage.env(PREFIX), "STREAMHUB_LIBRARY_SCAN_INTERVAL_SECS": "10"}
    s = f.start(tmp / "unused-root", tls_listen=(), env=env, name="s3lib")
    s.video = (tmp / "v.mp4").read_bytes()
    yield s
    f.stop_all()


def item(srv, path):
    return http_call(srv, "GET", "/api/library/item?path=" + quote(path, safe=""), timeout=30)


def test_scan_finds_and_probes_through_a_presigned_url(srv):
    def probed():
        r = item(srv, VIDEO)
        return r.json() if r.status == 200 and r.json()["probed"] else None

    v = wait_for(probed, 40, "the S3 video to be probed", every=0.2)
    assert abs(v["duration"] - 4.0) < 0.3, v
    assert (v["video_codec"], v["width"], v["height"]) == ("h264", 640, 360), v
    assert v["probe_error"] is None, v
    r = http_call(srv, "GET", "/api/library?q=buck&per_page=100", timeout=30)
    assert r.status == 200, r
    assert VIDEO in [e["path"] for e in r.json()["entries"]], r.json()


def test_ffmpeg_seeks_over_http_from_s3(srv, tmp_path):
    url = srv.url("/media/" + quote(VIDEO))
    out = tmp_path / "frame.raw"

    def frame(src, dst):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", "2.5", "-i", src,
                        "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", str(dst)],
                       check=True, timeout=120)
        return dst.read_bytes()

    local = tmp_path / "local.mp4"
    local.write_bytes(srv.video)
    assert frame(url, out) == frame(str(local), tmp_path / "want.raw")


def test_a_file_ffprobe_cannot_read_leaves_no_presigned_url_in_the_log(srv, garage):
    """Newcomer pass: ffprobe names its input in its error, and on S3 that is a presigned
    URL, which the log showed whole (a working link to the file, with the access key id)."""
    status, body = garage.curl_s3("PUT", f"{PREFIX}/not a film.mp4", b"still not a film\n")
    assert status == 200, body

    def failed():
        r = item(srv, "not a film.mp4")
        return r.json() if r.status == 200 and r.json()["probe_error"] else None

    v = wait_for(failed, 40, "the broken file to be probed", every=0.2)
    assert v["probe_error"] == "not a media file ffprobe can read", v
    log = srv.stderr_text()
    assert "probe failed" in log, log[-2000:]
    assert "X-Amz-Signature" not in log and "X-Amz-Credential" not in log, log[-2000:]
