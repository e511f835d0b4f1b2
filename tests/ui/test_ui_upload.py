"""Uploads in a browser: several files with progress, a resume after a reload, clear errors."""

import json
import os
import subprocess

import pytest

from conftest import ADDR, MEMBER, login, start_app


def throttle(page, upload_bytes_per_s, cdp=None):
    """Slows the browser's uploads (-1: full speed again), so a test can act mid-file."""
    if cdp is None:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": upload_bytes_per_s})
    return cdp


def test_several_files_upload_with_progress(page, app, tmp_path):
    files = []
    for i, size in enumerate((300_000, 5, 2_000_000)):
        p = tmp_path / f"part {i}.bin"
        p.write_bytes(os.urandom(size))
        files.append(p)
    login(page, app, MEMBER, then="/#/upload/inbox")
    assert page.get_by_label("To folder").input_value() == "inbox"
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files([str(f) for f in files])
    page.wait_for_function("() => document.querySelectorAll('ul.uploads li.done').length === 3", timeout=60000)
    total = page.locator("progress[aria-label='All uploads']")
    assert total.get_attribute("value") == total.get_attribute("max")
    for f in files:
        assert (app.srv.media_root / "inbox" / f.name).read_bytes() == f.read_bytes()
    page.get_by_role("link", name="Show in library").first.click()
    page.get_by_role("link", name="part 0.bin", exact=True).first.wait_for()
    page.watch.assert_clean()


def test_an_upload_resumes_after_a_page_reload(page, app, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(24 * 1024 * 1024))
    login(page, app, MEMBER, then="/#/upload/resume")
    cdp = throttle(page, 3 * 1024 * 1024)
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(big))
    session = app.session(MEMBER)
    # Wait until the server holds part of it, then reload the page mid-upload.
    url = None
    for _ in range(200):
        page.wait_for_timeout(100)
        stored = json.loads(page.evaluate("localStorage.getItem('streamhub-tus') || '{}'"))
        if stored:
            url = next(iter(stored.values()))["url"]
            st, _, h = session.call("HEAD", url, headers={"Tus-Resumable": "1.0.0"})
            if st == 200 and int(h["Upload-Offset"]) > 1024 * 1024:
                break
    assert url, "the upload never started"
    page.reload()
    throttle(page, -1, cdp)
    st, _, h = session.call("HEAD", url, headers={"Tus-Resumable": "1.0.0"})
    kept = int(h["Upload-Offset"])
    assert st == 200 and 0 < kept < big.stat().st_size
    # The page remembers it, and the same file picked again continues from the server's offset.
    page.get_by_role("heading", name="Unfinished uploads").wait_for()
    page.get_by_text("big.bin").first.wait_for()
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(big))
    page.locator("ul.uploads li.done").wait_for(timeout=60000)
    page.get_by_text("resumed and finished").wait_for()
    assert (app.srv.media_root / "resume" / "big.bin").read_bytes() == big.read_bytes()
    assert json.loads(page.evaluate("localStorage.getItem('streamhub-tus') || '{}'")) == {}


def test_a_taken_name_is_explained(page, app, tmp_path):
    f = tmp_path / "readme.txt"
    f.write_text("another readme\n")
    login(page, app, MEMBER, then="/#/upload/docs")
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(f))
    page.locator("ul.uploads li.error").get_by_text("A file with this name is there already").wait_for()
    assert (app.srv.media_root / "docs" / "readme.txt").read_text() == "hello\n"
    page.get_by_role("button", name="Cancel").click()
    page.locator("ul.uploads li.cancelled").wait_for()


def test_an_upload_survives_the_server_going_away_mid_file(page, factory, media_tree, tmp_path):
    """The connection drops (here: the box is killed and comes back on the same address):
    the page retries on its own and finishes from what the server kept."""
    app = start_app(factory, tmp_path / "media", name="ui-restart")
    f = tmp_path / "wobbly.bin"
    f.write_bytes(os.urandom(12 * 1024 * 1024))
    login(page, app, MEMBER, then="/#/upload/wobbly")
    cdp = throttle(page, 2 * 1024 * 1024)
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(f))
    page.wait_for_function(
        "() => Number(document.querySelector('ul.uploads progress').value) > 2 * 1024 * 1024")
    app.srv.proc.kill()
    app.srv.proc.wait(timeout=10)
    page.get_by_text("Connection lost; retrying").wait_for()
    factory.start(app.srv.media_root, data_dir=app.srv.data_dir, listen=(f"{ADDR}:{app.srv.port}",),
                  tls_listen=(), name="ui-restart-again")
    throttle(page, -1, cdp)
    page.locator("ul.uploads li.done").wait_for(timeout=90000)
    assert (app.srv.media_root / "wobbly" / f.name).read_bytes() == f.read_bytes()


@pytest.fixture()
def small_disk(factory, tmp_path):
    """A server whose media root is a 3 MiB tmpfs and whose upload limit is 2 MB."""
    root = tmp_path / "small"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(root)], check=True)
    try:
        yield start_app(factory, root, config="[uploads]\nmax_bytes = 2000000\n", name="ui-small")
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_too_large_disk_full_and_logged_out_are_explained(page, small_disk, tmp_path):
    app = small_disk
    big = tmp_path / "too-big.bin"
    big.write_bytes(os.urandom(2_500_000))
    login(page, app, MEMBER, then="/#/upload")
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(big))
    page.locator("ul.uploads li.error").get_by_text("larger than this server accepts").wait_for()

    # Fill the disk, then an upload that fits the limit but not the disk.
    (app.srv.media_root / "filler.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    fits = tmp_path / "fits.bin"
    fits.write_bytes(os.urandom(1_500_000))
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(fits))
    page.locator("ul.uploads li.error").get_by_text("The disk is full").wait_for()
    assert not (app.srv.media_root / "fits.bin").exists()

    # The session ends (logged out elsewhere): the upload says so instead of failing silently.
    page.context.clear_cookies()
    small = tmp_path / "small.txt"
    small.write_text("x")
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(small))
    page.locator("ul.uploads li.error").get_by_text("You are not logged in").wait_for()


def test_a_whole_folder_is_uploaded_with_its_tree(page, app, tmp_path):
    top = tmp_path / "Holiday 2026"
    (top / "day 1").mkdir(parents=True)
    (top / "day 1" / "beach.bin").write_bytes(os.urandom(50_000))
    (top / "notes.txt").write_text("sun\n")
    login(page, app, MEMBER, then="/#/upload/trips")
    page.locator("input[type=file][webkitdirectory]").set_input_files(str(top))
    page.wait_for_function("() => document.querySelectorAll('ul.uploads li.done').length === 2", timeout=60000)
    root = app.srv.media_root / "trips" / "Holiday 2026"
    assert (root / "day 1" / "beach.bin").read_bytes() == (top / "day 1" / "beach.bin").read_bytes()
    assert (root / "notes.txt").read_text() == "sun\n"
