"""Peers in the web UI with real replicating boxes (issue 16's peers views over issue 13).

Three servers in the suite's namespace share a cluster key and list each other as static
peers on 127.0.0.1 (HTTPS ports picked before they start): A ("living-room") lists B
("office"), C (a name carrying HTML) and a port where nothing answers; B and C list A. The
browser reaches each box's plain HTTP listener at the namespace's private address, as on a
LAN. A round every hour (`sync.interval_secs`), so a new last sync comes from "Sync now" or
from a nudge, not from the clock.
"""

import json
import re
import time
from datetime import datetime

import pytest
from playwright.sync_api import expect

from conftest import ADMIN, DESKTOP, MEMBER, PHONE, Watch, e2e, free_ports, login, shot, start_app

XSS_NAME = '<img src=x onerror="window.__xss=1;alert(1)">'


class Boxes:
    pass


def peers_of(app):
    st, body, _ = app.session(ADMIN).call("GET", "/api/peers")
    assert st == 200, body
    return body


def peer(app, addr):
    """The configured peer at `addr` (once reached it is named by the name it proved)."""
    return next(p for p in peers_of(app)["peers"] if p["addresses"] == [addr])


def epoch(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    r = e2e.run_cli(["cluster", "new"])
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    pa, pb, pc, dead = free_ports(4)
    factory = e2e.ServerFactory(tmp_path_factory)
    common = {"STREAMHUB_SYNC_CLUSTER_KEY": key, "STREAMHUB_SYNC_INTERVAL_SECS": "3600"}

    def box(name, port, node_name, peers):
        media = tmp_path_factory.mktemp(name + "-media")
        return start_app(factory, media, name=name, tls_listen=(f"127.0.0.1:{port}",), env={
            **common, "STREAMHUB_DISCOVERY_NAME": node_name,
            "STREAMHUB_SYNC_PEERS": ",".join(f"127.0.0.1:{p}" for p in peers)})

    try:
        x = Boxes()
        x.a = box("peer-a", pa, "living-room", (pb, pc, dead))
        x.b = box("peer-b", pb, "office", (pa,))
        x.c = box("peer-c", pc, XSS_NAME, (pa,))
        x.a_addr, x.b_addr, x.c_addr, x.dead_addr = (f"127.0.0.1:{p}" for p in (pa, pb, pc, dead))

        def all_synced():
            on_a = {p["addresses"][0]: p for p in peers_of(x.a)["peers"]}
            return (on_a[x.b_addr]["last_sync"] and on_a[x.c_addr]["last_sync"]
                    and on_a[x.dead_addr]["last_error"]
                    and peer(x.b, x.a_addr)["last_sync"] and peer(x.c, x.a_addr)["last_sync"])
        e2e.wait_for(all_synced, timeout=40, what="A, B and C synced with each other", every=0.3)
        x.ids = {k: peers_of(getattr(x, k))["node"]["id"] for k in "abc"}
        yield x
    finally:
        factory.stop_all()


def row_of(page, addr):
    """The Settings → Peers row of the peer listed as `addr` (not one whose port starts so)."""
    return page.locator("table.peers tbody tr").filter(has=page.get_by_text(addr, exact=True))


def test_admin_sees_the_other_box_synced_with_no_error(page, boxes):
    login(page, boxes.a, ADMIN, then="/#/settings/peers")
    sec = page.get_by_role("region", name="Peers")
    # This box at the top: its name and id8.
    sec.get_by_text("living-room", exact=True).wait_for()
    assert boxes.ids["a"][:8] in sec.locator("p").first.inner_text()
    row = row_of(page, boxes.b_addr)
    row.get_by_role("img", name="online").wait_for()
    assert boxes.ids["b"][:8] in row.inner_text()
    assert "configured" in row.inner_text()
    # A static peer is "seen" when a round went through (no announcement of it exists).
    expect(row.locator('td[data-label="Found"] time')).to_have_text(
        re.compile(r"^(just now|\d+ s ago|\d+ min ago)$"))
    expect(row.locator('td[data-label="Last sync"] time')).to_have_text(re.compile(r"^(just now|\d+ s ago|\d+ min ago)$"))
    assert row.locator('td[data-label="Last sync"] time').get_attribute("datetime") == peer(boxes.a, boxes.b_addr)["last_sync"]
    assert "up to date" in row.inner_text()
    assert row.get_by_role("alert").count() == 0
    assert row.get_by_role("button", name="Sync now").is_enabled()
    shot(page, "settings-peers-desktop")
    # On a phone: one card per peer, nothing wider than the screen.
    page.set_viewport_size(PHONE)
    row.get_by_role("button", name="Sync now").wait_for()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"Settings → Peers is {overflow}px wider than a phone"
    assert row.get_by_role("img", name="online").is_visible()
    assert row.locator('td[data-label="Last sync"] time').is_visible()
    shot(page, "settings-peers-phone")
    page.set_viewport_size(DESKTOP)
    page.watch.assert_clean()


def test_sync_now_shows_a_toast_then_the_new_last_sync(page, boxes):
    before = peer(boxes.a, boxes.b_addr)["last_sync"]
    # Times have whole seconds: wait until a new round is sure to show a later one.
    e2e.wait_for(lambda: time.time() - epoch(before) >= 1.5, timeout=5, what="a second to pass")
    login(page, boxes.a, ADMIN, then="/#/settings/peers")
    row = row_of(page, boxes.b_addr)
    expect(row.locator('td[data-label="Last sync"] time')).to_have_attribute("datetime", before)
    page.evaluate("window.__same_page = true")
    row.get_by_role("button", name="Sync now").click()
    page.locator(".toast").filter(has_text="Sync with").wait_for()
    # The row is asked for again (no reload), and the new round's time shows.
    expect(row.locator('td[data-label="Last sync"] time')).not_to_have_attribute("datetime", before, timeout=5000)
    shown = row.locator('td[data-label="Last sync"] time').get_attribute("datetime")
    assert epoch(shown) > epoch(before)
    assert shown == peer(boxes.a, boxes.b_addr)["last_sync"]
    assert page.evaluate("window.__same_page") is True
    assert row.get_by_role("alert").count() == 0
    page.watch.assert_clean()


def test_a_member_sees_the_peers_card_without_ids(page, boxes):
    login(page, boxes.a, MEMBER)
    card = page.locator(".card", has=page.get_by_role("heading", name="Peers"))
    # A configured peer, once reached, is shown by the name it proved, not its address.
    b = card.get_by_role("listitem").filter(has=page.get_by_text("office", exact=True))
    b.get_by_role("img", name="online").wait_for()
    assert re.search(r"synced (just now|\d+ s ago|\d+ min ago)", b.inner_text()), b.inner_text()
    dead = card.get_by_role("listitem").filter(has=page.get_by_text(boxes.dead_addr, exact=True))
    dead.get_by_role("img", name="offline").wait_for()
    assert "never synced" in dead.inner_text()
    text = card.inner_text()
    for k in "abc":
        assert boxes.ids[k][:8] not in text, text
    assert boxes.b_addr not in text and boxes.c_addr not in text, text
    # No error text and no sync button for members: that is the admins' tab.
    assert card.get_by_role("button").count() == 0
    assert "unreachable" not in text
    shot(page, "home-peers-member-desktop")
    page.goto(boxes.a.url("/#/settings/peers"))
    page.get_by_role("heading", name="API tokens").wait_for()
    assert page.get_by_role("region", name="Peers").count() == 0
    assert page.locator("table.peers").count() == 0
    page.watch.assert_clean()


def wait_note_on(app, note_id):
    s = app.session(ADMIN)
    e2e.wait_for(lambda: s.call("GET", f"/api/notes/{note_id}")[0] == 200, timeout=10,
                 what="the note on the other box", every=0.2)


def test_a_public_note_from_the_other_box_shows_with_its_author(page, boxes):
    st, note, _ = boxes.b.session(ADMIN).call("POST", "/api/notes", {
        "title": "Groceries from the office", "body": "oat milk", "visibility": "public"})
    assert st == 201, note
    wait_note_on(boxes.a, note["id"])
    login(page, boxes.a, ADMIN, then="/#/notes")
    item = page.locator("ul.notes li").filter(has_text="Groceries from the office")
    item.wait_for()
    assert "admin@office" in item.inner_text()
    item.get_by_role("link", name="Groceries from the office").click()
    page.get_by_role("heading", name="Groceries from the office").wait_for()
    page.get_by_text("oat milk").wait_for()
    assert "admin@office" in page.locator("main").inner_text()
    page.watch.assert_clean()


def test_a_box_name_with_html_is_shown_as_text(page, boxes, browser):
    st, note, _ = boxes.c.session(ADMIN).call("POST", "/api/notes", {
        "title": "From the odd box", "body": "hello", "visibility": "public"})
    assert st == 201, note
    wait_note_on(boxes.a, note["id"])
    # On C itself: its own name at the top of Settings → Peers.
    ctx = browser.new_context()
    try:
        cp = ctx.new_page()
        cp.watch = Watch(cp)
        login(cp, boxes.c, ADMIN, then="/#/settings/peers")
        cp.get_by_role("region", name="Peers").get_by_text(XSS_NAME, exact=True).wait_for()
        row_of(cp, boxes.a_addr).get_by_role("img", name="online").wait_for()
        assert cp.evaluate("window.__xss") is None
        cp.watch.assert_clean()
    finally:
        ctx.close()
    # On A: the note's author is `admin@<C's name>`, in the list, on Home and in the note.
    login(page, boxes.a, ADMIN, then="/#/notes")
    item = page.locator("ul.notes li").filter(has_text="From the odd box")
    item.wait_for()
    assert f"admin@{XSS_NAME}" in item.inner_text()
    page.goto(boxes.a.url("/#/"))
    page.get_by_text(f"admin@{XSS_NAME}").first.wait_for()
    page.goto(boxes.a.url(f"/#/note/{note['id']}"))
    page.get_by_role("heading", name="From the odd box").wait_for()
    page.goto(boxes.a.url("/#/settings/peers"))
    row_of(page, boxes.c_addr).get_by_role("img", name="online").wait_for()
    page.wait_for_load_state("networkidle")
    assert page.locator("img[src='x'], img[onerror]").count() == 0
    assert page.evaluate("window.__xss") is None
    page.watch.assert_clean()


def test_a_peer_that_does_not_answer_shows_why(page, boxes):
    want = peer(boxes.a, boxes.dead_addr)["last_error"]
    assert want and want.startswith("unreachable"), want
    login(page, boxes.a, ADMIN, then="/#/settings/peers")
    row = row_of(page, boxes.dead_addr)
    alert = row.get_by_role("alert")
    alert.wait_for()
    assert "unreachable" in alert.inner_text()
    assert row.get_by_role("img", name="offline").is_visible()
    assert "never synced" in row.inner_text()
    # No node id yet, so nothing to sync with: the button says why it is off.
    button = row.get_by_role("button", name="Sync now")
    assert button.is_disabled()
    assert "not reached yet" in (button.get_attribute("title") or "").lower()
    assert "not reached yet" in row.inner_text()
    page.watch.assert_clean()


def test_sync_now_on_a_box_in_no_cluster_shows_its_message(page, boxes, app):
    # The suite's shared box has no cluster key: its real answer, played to the page on A
    # (a box in no cluster lists no peer with an id, so there is no button to press there).
    st, refusal, _ = app.session(ADMIN).call("POST", f"/api/peers/{'0' * 64}/sync")
    assert st == 409 and refusal["error"] == "not_in_cluster", refusal
    login(page, boxes.a, ADMIN, then="/#/settings/peers")
    page.route("**/api/peers/*/sync", lambda r: r.fulfill(
        status=409, content_type="application/json", body=json.dumps(refusal)))
    row_of(page, boxes.b_addr).get_by_role("button", name="Sync now").click()
    page.locator("section .error[role=alert]").filter(has_text=refusal["message"]).wait_for()
