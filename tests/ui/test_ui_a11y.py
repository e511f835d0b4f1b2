"""Keyboard and screen-reader basics on every page: each control has a name, focus is
visible, the main actions are reachable with Tab."""

import pytest

from conftest import ADMIN, login
from test_ui_pages import PAGES

UNNAMED = """() => {
  const name = (el) => {
    const by = el.getAttribute('aria-labelledby');
    const parts = [el.getAttribute('aria-label'), el.getAttribute('title'),
      by && by.split(' ').map((id) => (document.getElementById(id) || {}).textContent).join(' '),
      el.labels && Array.from(el.labels).map((l) => l.textContent).join(' '),
      ['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName) ? '' : el.textContent,
      Array.from(el.querySelectorAll('img[alt]')).map((i) => i.alt).join(' ')];
    return parts.filter(Boolean).join(' ').trim();
  };
  const visible = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
  return Array.from(document.querySelectorAll('a[href], button, input, select, textarea, summary'))
    .filter((el) => visible(el) && el.type !== 'hidden' && el.tabIndex >= 0)
    .filter((el) => !name(el)).map((el) => el.outerHTML.slice(0, 120));
}"""


@pytest.mark.parametrize("name", list(PAGES))
def test_every_control_has_a_name(page, app, name):
    login(page, app, ADMIN, then=PAGES[name])
    page.wait_for_load_state("networkidle")
    assert page.evaluate(UNNAMED) == []
    # One main landmark and a top-level heading for screen readers to jump to.
    assert page.locator("main").count() == 1
    assert page.locator("main h1").count() >= 1


def test_keyboard_reaches_the_library_actions_with_visible_focus(page, app):
    login(page, app, ADMIN, then="/#/library/docs")
    # A fresh load, so Tab starts at the top of the page (not where the login form was).
    page.reload()
    page.get_by_role("link", name="readme.txt", exact=True).first.wait_for()
    seen = []
    for _ in range(40):
        page.keyboard.press("Tab")
        info = page.evaluate("""() => { const el = document.activeElement;
            if (el === document.body) return null;
            const cs = getComputedStyle(el);
            return [el.textContent.trim().slice(0, 40) || el.getAttribute('aria-label') || el.tagName,
                    cs.outlineStyle !== 'none' && cs.outlineWidth !== '0px'] }""")
        if info is None:  # the first Tab brings the focus into the page
            continue
        seen.append(info[0])
        assert info[1], f"no visible focus on {info[0]}"
    assert seen[0] == "Skip to content"
    for want in ("New folder", "Upload here", "Grid", "List", "⋯"):
        assert any(want in s for s in seen), (want, seen)
    # Enter on the item menu opens it; Escape-free: its items are plain buttons and links.
    page.locator(".tile summary").first.focus()
    page.keyboard.press("Enter")
    page.get_by_role("menuitem", name="Share link…").first.wait_for()
