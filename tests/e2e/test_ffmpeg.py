"""Real media clients: ffmpeg seeking and ffprobe over HTTP(S)."""

import subprocess

from conftest import VIDEO, media_path

FRAME_BYTES = 320 * 240 * 3


def grab_frame(src, extra=()):
    r = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *extra,
         "-ss", "5", "-i", src, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def test_ffmpeg_seek_over_http_matches_local(server, media):
    local = grab_frame(str(media["root"] / VIDEO))
    assert len(local) == FRAME_BYTES
    remote = grab_frame(server.url(media_path(VIDEO)))
    assert len(remote) == FRAME_BYTES
    assert remote == local


def test_ffmpeg_frames_differ_by_position(server, media):
    # guards against a server that ignores ranges and a decoder that falls back
    a = grab_frame(server.url(media_path(VIDEO)))
    r = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
         "-ss", "1", "-i", server.url(media_path(VIDEO)), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout) == FRAME_BYTES and r.stdout != a


def test_ffprobe_duration_over_http(server):
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=width,height",
         "-of", "default=noprint_wrappers=1", server.url(media_path(VIDEO))],
        capture_output=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr.decode()
    out = dict(line.split("=", 1) for line in r.stdout.decode().split() if "=" in line)
    assert abs(float(out["duration"]) - 10.0) < 0.2, out
    assert out["width"] == "320" and out["height"] == "240"


def test_ffprobe_duration_over_https(server):
    # ffmpeg's TLS verification is off by default; we only check the stream works over TLS
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration",
         "-of", "csv=p=0", server.tls_url(media_path(VIDEO), host="127.0.0.1")],
        capture_output=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert abs(float(r.stdout.decode().strip()) - 10.0) < 0.2
