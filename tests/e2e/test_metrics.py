"""Metrics, request ids and log hygiene, checked against the real binary.

What an operator checks: Prometheus can scrape a dedicated listener without login, the main
listener's /metrics needs an admin, the figures move with real traffic, route labels are
patterns (not raw paths), every response has a request id that the access log repeats, and a
hostile user name cannot forge a log line.
"""

import queue
import re
import time

import pytest

from conftest import (
    AUTH_PW,
    NESTED,
    NESTED_TEXT,
    AuthEnv,
    assert_error,
    http_call,
    raw_get,
)

METRICS_LINE = re.compile(r"^metrics on http://127\.0\.0\.1:(\d+)/metrics$")


def next_stdout_line(srv, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = srv._q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            continue
        if line is None:
            break
        srv.stdout_lines.append(line)
        return line
    raise AssertionError(f"no further stdout line; seen {srv.stdout_lines!r}")


@pytest.fixture(scope="module")
def msrv(module_servers, auth_media):
    srv = module_servers.start(
        auth_media["root"],
        config='[server]\nmetrics_listen = ["127.0.0.1:0"]\n',
        name="metrics",
    )
    m = METRICS_LINE.match(next_stdout_line(srv))
    assert m, srv.stdout_lines
    srv.metrics_port = int(m.group(1))
    srv.env = AuthEnv(srv)
    return srv


def scrape(srv):
    r = raw_get(srv.metrics_port, "/metrics")
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("application/openmetrics-text"), r
    return r.body.decode()


def sample(text, name, **labels):
    """The value of one sample, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$"
    for line in text.splitlines():
        m = re.match(pat, line)
        if m:
            return float(m.group(1))
    return None


def test_dedicated_listener_scrape_moves_with_traffic(msrv):
    before = scrape(msrv)
    base_200 = sample(before, "streamhub_http_requests_total",
                      route="/media/{*path}", method="GET", status="200") or 0
    base_bytes = sample(before, "streamhub_media_bytes_streamed_total") or 0
    r = raw_get(msrv.port, "/media/" + NESTED)
    assert r.status == 200 and r.body == NESTED_TEXT
    r = raw_get(msrv.port, "/media/" + NESTED, headers={"Range": "bytes=0-3"})
    assert r.status == 206
    after = scrape(msrv)
    assert sample(after, "streamhub_http_requests_total",
                  route="/media/{*path}", method="GET", status="200") == base_200 + 1
    assert sample(after, "streamhub_http_requests_total",
                  route="/media/{*path}", method="GET", status="206") >= 1
    assert sample(after, "streamhub_media_bytes_streamed_total") >= base_bytes + len(NESTED_TEXT) + 4
    assert sample(after, "streamhub_media_active_streams") == 0
    assert sample(after, "streamhub_storage_up", backend="local") == 1
    assert sample(after, "streamhub_storage_check_duration_seconds", backend="local") >= 0
    assert sample(after, "streamhub_database_size_bytes") > 0
    assert "streamhub_http_request_duration_seconds_bucket" in after
    # labels are route patterns: no file name ever becomes a label value
    assert "deep.txt" not in after
    assert after.rstrip().endswith("# EOF")


def test_dedicated_listener_serves_nothing_else(msrv):
    assert_error(raw_get(msrv.metrics_port, "/media/" + NESTED), 404, "not_found")
    assert_error(raw_get(msrv.metrics_port, "/api/me"), 404, "not_found")


def test_main_listener_metrics_is_admin_only(msrv):
    env = msrv.env
    assert_error(http_call(msrv, "GET", "/metrics"), 401, "unauthorized")
    assert_error(http_call(msrv, "GET", "/metrics", headers=env.member.headers), 403, "forbidden")
    r = http_call(msrv, "GET", "/metrics", headers=env.admin.headers)
    assert r.status == 200 and b"streamhub_http_requests_total" in r.body


def test_login_failures_are_counted(msrv):
    base = sample(scrape(msrv), "streamhub_login_failures_total") or 0
    r = http_call(msrv, "POST", "/api/login", json_body={"name": "mia", "password": "wrong-one"})
    assert r.status == 401
    assert sample(scrape(msrv), "streamhub_login_failures_total") == base + 1


def test_request_id_in_response_and_access_log(msrv):
    a = raw_get(msrv.port, "/healthz")
    b = raw_get(msrv.port, "/healthz")
    ida, idb = a.header("x-request-id"), b.header("x-request-id")
    assert ida and idb and ida != idb
    deadline = time.monotonic() + 5
    while f'request_id="{idb}"' not in msrv.stderr_text():
        assert time.monotonic() < deadline, msrv.stderr_text()[-2000:]
        time.sleep(0.05)
    line = next(l for l in msrv.stderr_text().splitlines() if f'request_id="{idb}"' in l)
    for field in ('method=GET', 'path="/healthz"', "status=200", "duration_ms=", "peer="):
        assert field in line, line
    # The body's length, also for JSON (newcomer pass: every answer but media said bytes=0).
    assert f"bytes={len(b.body)}" in line and len(b.body) > 0, (line, b.body)


def test_user_supplied_text_cannot_forge_log_lines(msrv):
    evil = "mallory\nINJECTED fake log line status=200"
    r = http_call(msrv, "POST", "/api/login", json_body={"name": evil, "password": AUTH_PW})
    assert r.status == 401
    deadline = time.monotonic() + 5
    while "failed login" not in msrv.stderr_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for line in msrv.stderr_text().splitlines():
        assert not line.startswith("INJECTED"), line
    # Nor fields within a line: the name is quoted, so `ip=`/`user=` inside it stay inside it
    # (a key=value reader, a fail2ban filter, takes the first `ip=` it finds).
    forged = "mallory ip=10.9.9.9 user=admin" + "x" * 5000
    r = http_call(msrv, "POST", "/api/login", json_body={"name": forged, "password": "wrong password"})
    assert r.status == 401
    deadline = time.monotonic() + 5
    while "mallory ip=" not in msrv.stderr_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    line = next(ln for ln in msrv.stderr_text().splitlines() if "mallory ip=" in ln)
    assert 'user="mallory ip=10.9.9.9 user=admin' in line and "ip=127.0.0.1" in line, line
    assert len(line) < 1000, f"a {len(line)}-byte log line from one login"


def test_uploads_are_counted_by_result(msrv):
    env = msrv.env
    before = scrape(msrv)
    ok0 = sample(before, "streamhub_uploads_total", result="ok") or 0
    exists0 = sample(before, "streamhub_uploads_total", result="exists") or 0
    bytes0 = sample(before, "streamhub_upload_bytes_total") or 0
    body = b"x" * 1234
    r = http_call(msrv, "PUT", "/media/metrics-up/a.bin", headers=env.member.headers, body=body)
    assert r.status == 201, r
    r = http_call(msrv, "PUT", "/media/metrics-up/a.bin", headers=env.member.headers, body=body)
    assert r.status == 409, r
    after = scrape(msrv)
    assert sample(after, "streamhub_uploads_total", result="ok") == ok0 + 1
    assert sample(after, "streamhub_uploads_total", result="exists") == exists0 + 1
    assert sample(after, "streamhub_upload_bytes_total") == bytes0 + len(body)
