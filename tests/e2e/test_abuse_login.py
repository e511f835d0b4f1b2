"""Issue 12: logins in parallel. Attempts are counted before the password is hashed, argon2
runs a few at a time (the rest wait briefly, then 503 busy), and memory stays bounded."""

import socket
import threading
import time
from collections import Counter

import pytest

from conftest import (
    AUTH_PW,
    BIN,
    assert_error,
    basic_auth,
    cli_add_user,
    http_call,
    login,
    read_response,
    start_auth_server,
)

MAX_FAILURES = 5
# Long enough that the lock outlasts 100 parallel logins on a loaded 2-core CI machine (at 30 s
# the lock once ran out before the test's last login, under a concurrent build).
LOCKOUT_SECS = 300
# The release build is what ships: the budget. A debug build holds more per
# connection; its bound is looser but still far below the 610 MiB measured before the fix.
RELEASE = "release" in BIN.parts
HWM_GROWTH_MIB = 64 if RELEASE else 160


def proc_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def in_parallel(n, call):
    """Runs call(i) in n threads released together; returns the results (or exceptions)."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait()
        try:
            out[i] = call(i)
        except Exception as e:  # noqa: BLE001 - reported by the caller's assertions
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "requests still hanging after 120 s"
    return out


OTHER_ADDRESS = "127.0.0.2"


def healthz_from(srv, src):
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return read_response(s, timeout=5).status
    finally:
        s.close()


def retry_after(r):
    v = r.header("retry-after")
    assert v is not None and v.isdigit() and int(v) >= 1, f"no Retry-After seconds: {r!r}"
    return int(v)


@pytest.fixture
def limited(module_servers, auth_media):
    # One server per test: the address 127.0.0.1 locked by one test must not decide the next.
    srv = start_auth_server(module_servers, auth_media["root"], name="abuse-limited",
                            login_max_failures=MAX_FAILURES, login_lockout_secs=LOCKOUT_SECS)
    for name in ("bob", "basil"):
        cli_add_user(srv.data_dir, name)
    return srv


def test_parallel_wrong_passwords_are_limited_like_sequential_ones(limited):
    rs = in_parallel(100, lambda i: login(limited, "bob", f"wrong password {i}")[0])
    assert not [r for r in rs if isinstance(r, Exception)], rs
    by_status = Counter(r.status for r in rs)
    # Only max_failures attempts get to the password check; the rest are refused at once.
    assert set(by_status) <= {401, 429, 503}, by_status
    assert 1 <= by_status[401] <= MAX_FAILURES, by_status
    assert by_status[429] >= 100 - MAX_FAILURES, by_status
    for r in rs:
        if r.status == 429:
            assert_error(r, 429, "too_many_attempts")
            assert retry_after(r) <= LOCKOUT_SECS
        elif r.status == 401:
            assert_error(r, 401)
    # the name stays locked for the right password too, from any address
    r, _ = login(limited, "bob", AUTH_PW)
    assert_error(r, 429, "too_many_attempts")
    retry_after(r)


def test_parallel_wrong_basic_credentials_are_limited(limited):
    hdr = basic_auth("basil", "not the password")
    rs = in_parallel(60, lambda i: http_call(limited, "GET", "/api/me", headers=hdr))
    assert not [r for r in rs if isinstance(r, Exception)], rs
    by_status = Counter(r.status for r in rs)
    assert set(by_status) <= {401, 429, 503}, by_status
    assert by_status[401] <= MAX_FAILURES and by_status[429] >= 60 - MAX_FAILURES, by_status
    for r in rs:
        if r.status == 429:
            retry_after(r)


@pytest.fixture(scope="module")
def open_limits(module_servers, auth_media):
    # The limiter would lock 127.0.0.1 after 5 attempts and hide the hashing from this test:
    # a flood from many addresses (a botnet, a LAN of phones) is what the cap must hold.
    srv = start_auth_server(module_servers, auth_media["root"], name="abuse-open",
                            login_max_failures=1000)
    cli_add_user(srv.data_dir, "olga")
    return srv


def test_flood_of_unknown_names_is_answered_with_bounded_memory(open_limits):
    srv = open_limits
    pid = srv.proc.pid
    # fault in the request paths that do not hash
    for _ in range(3):
        assert http_call(srv, "GET", "/healthz").status == 200
        assert http_call(srv, "GET", "/api/library").status == 200
    base_rss = proc_kib(pid, "VmRSS")

    stop = threading.Event()
    health = []
    peak_rss = [base_rss]

    def watch():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                # Another box on the LAN: the flood's address may be over its share of
                # connections (server.max_connections_per_ip), this one is not.
                status = healthz_from(srv, OTHER_ADDRESS)
            except Exception as e:  # noqa: BLE001 - a hang is a failure, reported below
                status = repr(e)
            health.append((status, time.monotonic() - t0))
            peak_rss[0] = max(peak_rss[0], proc_kib(pid, "VmRSS"))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    t0 = time.monotonic()
    try:
        rs = in_parallel(400, lambda i: login(srv, f"nobody-{i}", "some password", )[0])
    finally:
        stop.set()
        watcher.join(30)
    took = time.monotonic() - t0
    hwm = proc_kib(pid, "VmHWM")

    errors = [r for r in rs if isinstance(r, Exception)]
    assert not errors, f"{len(errors)} logins got no answer: {errors[:3]}"
    by_status = Counter(r.status for r in rs)
    print(f"400 unknown-name logins: {dict(by_status)} in {took:.1f} s; VmRSS {base_rss / 1024:.1f} MiB "
          f"before, {peak_rss[0] / 1024:.1f} MiB sampled peak, VmHWM {hwm / 1024:.1f} MiB "
          f"({'release' if RELEASE else 'debug'} build)")
    assert set(by_status) <= {401, 429, 503}, by_status
    assert by_status[401] > 0, by_status
    for r in rs:
        if r.status == 503:
            assert_error(r, 503, "busy")
            retry_after(r)
        else:
            assert_error(r, r.status)
    # Nobody waits long for a hash slot: the flood is over in seconds, not minutes.
    assert took < 30, f"400 logins took {took:.1f} s"

    assert health, "no /healthz probe ran during the flood"
    # The < 1 s p99 target is a benchmark (docs/PERFORMANCE.md); on a shared 2-core test
    # machine with 400 client threads this asserts what a user notices: never a hang.
    slow = [(s, d) for s, d in health if s != 200 or d > 3.0]
    assert not slow, f"/healthz slow or failing during the flood: {slow}"

    growth_mib = (hwm - base_rss) / 1024
    assert growth_mib <= HWM_GROWTH_MIB, (
        f"peak RSS grew by {growth_mib:.1f} MiB over the idle {base_rss / 1024:.1f} MiB "
        f"(bound {HWM_GROWTH_MIB} MiB)")

    # the server still works: the right password logs in
    r, cred = login(srv, "olga", AUTH_PW)
    assert r.status == 200 and cred, r
