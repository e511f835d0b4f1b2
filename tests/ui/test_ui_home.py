"""Home: one search box over media and notes; paging in a big folder; revoking a link."""

from conftest import ADMIN, MEMBER, login


def test_home_search_finds_media_and_notes(page, app):
    s = app.session(MEMBER)
    st, _, _ = s.call("POST", "/api/notes", {"title": "Clip notes", "body": "about the clip", "visibility": "public"})
    assert st == 201
    login(page, app, MEMBER)
    # The storage card: health, backend and free space.
    card = page.locator(".card", has=page.get_by_role("heading", name="Storage"))
    card.get_by_text("healthy").wait_for()
    assert "local" in card.inner_text() and " free of " in card.inner_text()
    page.get_by_label("Search media and notes").fill("clip")
    media = page.get_by_role("region", name="Media found")
    notes = page.get_by_role("region", name="Notes found")
    media.get_by_role("link", name="films/clip.webm").wait_for()
    notes.get_by_role("link", name="Clip notes").wait_for()
    notes.get_by_role("link", name="Clip notes").click()
    page.get_by_role("heading", name="Clip notes").wait_for()
    page.get_by_role("tab", name="Events").click()
    page.get_by_role("cell", name="created").wait_for()
    page.watch.assert_clean()


def test_a_big_folder_is_paged(page, app):
    big = app.srv.media_root / "many"
    big.mkdir(exist_ok=True)
    for i in range(130):
        (big / f"file {i:03}.txt").write_text(str(i))
    login(page, app, ADMIN, then="/#/library/many")
    page.get_by_role("button", name="List").click()
    page.get_by_text("Page 1 of 3 (130 items)").wait_for()
    assert page.locator("table.list tbody tr").count() == 60
    page.get_by_role("button", name="Next").click()
    page.get_by_text("Page 2 of 3").wait_for()
    page.get_by_role("link", name="file 060.txt").wait_for()
    page.get_by_role("button", name="Next").click()
    page.get_by_text("Page 3 of 3").wait_for()
    assert page.locator("table.list tbody tr").count() == 10
    assert page.get_by_role("button", name="Next").is_disabled()


def test_revoking_a_share_link_from_settings(page, app, browser):
    s = app.session(ADMIN)
    st, link, _ = s.call("POST", "/api/shares", {"path": "docs/readme.txt"})
    assert st == 201
    login(page, app, ADMIN, then="/#/settings/shares")
    live = page.get_by_role("row").filter(has_text="docs/readme.txt").get_by_role("button", name="Revoke")
    live.first.wait_for()
    while live.count():
        n = live.count()
        live.first.click()
        page.wait_for_function(f"() => document.querySelectorAll('tbody tr').length && "
                               f"[...document.querySelectorAll('tbody tr')].filter((r) => r.textContent.includes('docs/readme.txt') && r.textContent.includes('Revoke')).length < {n}")
    page.get_by_role("row").filter(has_text="docs/readme.txt").filter(has_text="revoked").first.wait_for()
    fresh = browser.new_context()
    try:
        assert fresh.request.get(link["url"]).status == 410
    finally:
        fresh.close()
