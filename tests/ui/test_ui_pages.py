"""Every page at phone and desktop width (screenshots in target/ui-screenshots/), dark and
light, and the first-load budget: at most 100 KB over the wire, compressed."""

import pytest

from conftest import ADMIN, DESKTOP, PHONE, login, shot

PAGES = {
    "home": "/#/",
    "library": "/#/library/films",
    "player": "/#/play/films/clip.webm",
    "upload": "/#/upload",
    "notes": "/#/notes",
    "note-new": "/#/note/new",
    "trash": "/#/trash",
    "settings-users": "/#/settings/users",
    "settings-storage": "/#/settings/storage",
    "settings-config": "/#/settings/config",
    "settings-tokens": "/#/settings/tokens",
    "settings-shares": "/#/settings/shares",
}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_at_phone_and_desktop_width(browser, app, scheme):
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        ctx = browser.new_context(viewport=size, color_scheme=scheme, is_mobile=label == "phone",
                                  has_touch=label == "phone")
        try:
            page = ctx.new_page()
            page.goto(app.url("/#/login"))
            shot(page, f"login-{label}-{scheme}")
            login(page, app, ADMIN)
            for name, path in PAGES.items():
                page.goto(app.url(path))
                page.wait_for_load_state("networkidle")
                # Nothing is wider than the screen (no sideways scrolling on a phone).
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, f"{name} is {overflow}px wider than a {label} screen"
                shot(page, f"{name}-{label}-{scheme}")
        finally:
            ctx.close()


def first_load_bytes(browser, app, path, who=None):
    ctx = browser.new_context()
    try:
        if who:
            # Logged in, with an empty cache: the session cookie only.
            name, value = app.session(who).cookie.split("=", 1)
            ctx.add_cookies([{"name": name, "value": value, "url": app.base}])
        page = ctx.new_page()
        sizes = []
        page.on("requestfinished", lambda r: sizes.append((r.url, r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"])))
        page.goto(app.url(path), wait_until="networkidle")
        return sizes
    finally:
        ctx.close()


@pytest.mark.parametrize("path", ["/#/", "/#/library/films", "/#/notes", "/#/play/films/clip.webm"])
def test_first_load_is_under_100_kb(browser, app, path):
    sizes = first_load_bytes(browser, app, path, who=ADMIN)
    # The player's video streams by ranges as it plays: only the page itself counts.
    page_bytes = sum(n for url, n in sizes if "/media/" not in url and "/thumb" not in url)
    assert any("/ui/" in url for url, _ in sizes)
    assert page_bytes <= 100_000, sorted(sizes, key=lambda x: -x[1])
    shot_note = f"first load of {path}: {page_bytes} bytes"
    print(shot_note)
