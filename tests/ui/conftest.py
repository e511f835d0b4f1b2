"""Browser tests of the web UI: headless Chromium (Debian's) driven by Playwright, against
the real binary, inside the network namespace `run.sh` makes (the server listens on a
private, non-loopback address, so the pages run in an insecure context as on a LAN).

One browser for the whole suite; a fresh context (no cookies, no storage) per test.
"""

import importlib.util
import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
_spec = importlib.util.spec_from_file_location("e2e_support", HERE.parent / "e2e" / "conftest.py")
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

ADDR = os.environ.get("STREAMHUB_UI_ADDR")
CHROMIUM = os.environ.get("STREAMHUB_CHROMIUM", "/usr/bin/chromium")
SHOTS = REPO / "target" / "ui-screenshots"
ADMIN = ("admin", "admin-pass-1")
MEMBER = ("mia", "member-pass-1")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def pytest_sessionstart(session):
    if not ADDR:
        raise pytest.UsageError("run the UI suite through tests/ui/run.sh (it makes the network namespace)")
    if not e2e.BIN.exists():
        raise pytest.UsageError(f"no streamhub binary at {e2e.BIN}: run `cargo build` first, "
                                "or set STREAMHUB_BIN to the binary to test")


def make_clip(path, seconds=8, size="160x120"):
    """A WebM (VP9 + Opus) test clip, as browsers play natively."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds), "-c:v", "libvpx-vp9",
         "-b:v", "150k", "-deadline", "realtime", "-c:a", "libopus", "-shortest", str(path)],
        check=True, timeout=120,
    )


SRT = "1\r\n00:00:00,500 --> 00:00:07,500\r\nHello from the subtitles\r\n\r\n"


@pytest.fixture(scope="session")
def media_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("uimedia") / "media"
    make_clip(root / "films" / "clip.webm")
    (root / "films" / "clip.srt").write_text(SRT)
    make_clip(root / "films" / "second.webm", seconds=3)
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("hello\n")
    return root


class App:
    """A running server, its address, and a way to call its API (as a logged-in user)."""

    def __init__(self, srv):
        self.srv = srv
        self.base = f"http://{ADDR}:{srv.port}"

    def url(self, path="/"):
        return self.base + path

    def session(self, who):
        return ApiSession(self, *who)


class ApiSession:
    """Cookie login + CSRF, as the pages do (Basic is refused from a non-loopback peer)."""

    def __init__(self, app, name, password):
        self.app = app
        self.cookie = None
        self.csrf = None
        st, body, headers = self.call("POST", "/api/login", {"name": name, "password": password})
        assert st == 200, body
        self.cookie = headers["Set-Cookie"].split(";")[0]
        self.csrf = body["csrf_token"]

    def call(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.cookie:
            h["Cookie"] = self.cookie
            if method not in ("GET", "HEAD"):
                h["X-CSRF-Token"] = self.csrf
        req = urllib.request.Request(self.app.url(path), data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw and "json" in r.headers.get("Content-Type", "") else raw), r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw), e.headers
            except ValueError:
                return e.code, raw, e.headers


def add_users(data_dir):
    for (name, pw), admin in ((ADMIN, True), (MEMBER, False)):
        args = ["user", "add", name, "--password-stdin", "--data-dir", data_dir, "--init"]
        if admin:
            args.insert(3, "--admin")
        r = e2e.run_cli(args, stdin=pw + "\n")
        assert r.returncode == 0, r.stderr


def start_app(factory, media_root, users=True, config=None, name="ui", env=None, tls_listen=()):
    data = factory.tmp_path_factory.mktemp(name + "-data") / "data"
    if users:
        add_users(data)
    srv = factory.start(media_root, data_dir=data, listen=(f"{ADDR}:0",), tls_listen=tls_listen,
                        config=config, name=name, env=env)
    return App(srv)


def free_ports(n, host="127.0.0.1"):
    """`n` distinct TCP ports free on `host` now. Only for boxes that must name each other's
    HTTPS port in `sync.peers` before either starts; everything else binds port 0. Nothing
    but the suite runs in its namespace, so the port stays free until the server binds it."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="session")
def factory(tmp_path_factory):
    f = e2e.ServerFactory(tmp_path_factory)
    yield f
    f.stop_all()


@pytest.fixture(scope="session")
def app(factory, media_tree):
    return start_app(factory, media_tree)


@pytest.fixture(scope="session")
def browser():
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
    yield b
    b.close()
    pw.stop()


class Watch:
    """What a page did that a user would notice: dialogs, script errors, console errors."""

    def __init__(self, page):
        self.dialogs = []
        self.errors = []
        self.console = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and self.console.append(
            f"{m.text} ({m.location.get('url', '')})"))

    def assert_clean(self):
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        assert self.errors == [], f"script errors: {self.errors}"
        assert self.console == [], f"console errors: {self.console}"


@pytest.fixture()
def context(browser):
    ctx = browser.new_context(viewport=DESKTOP)
    ctx.set_default_timeout(30000)
    yield ctx
    ctx.close()


@pytest.fixture()
def page(context):
    p = context.new_page()
    p.watch = Watch(p)
    return p


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test leaves a screenshot of its page (target/ui-screenshots/failed-*.png)."""
    outcome = yield
    rep = outcome.get_result()
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if rep.when == "call" and rep.failed and page is not None:
        try:
            shot(page, "failed-" + item.name.replace("/", "_"))
            rep.sections.append(("page text", page.inner_text("body")[:3000]))
        except Exception as e:  # the page may be gone; the failure itself is what matters
            rep.sections.append(("page text", f"(no screenshot: {e})"))


def login(page, app, who=ADMIN, then=None):
    page.goto(app.url("/#/login"))
    page.get_by_label("Name", exact=True).fill(who[0])
    page.get_by_label("Password", exact=True).fill(who[1])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log out").wait_for()
    if then:
        page.goto(app.url(then))


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
