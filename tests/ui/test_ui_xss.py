"""User-controlled text is never HTML: file names, note titles, bodies and tags carrying
script payloads are shown as text on every page, with no dialog, no script run and no
console error."""

import time
from urllib.parse import quote

from conftest import ADMIN, login

PAYLOADS = [
    '<img src=x onerror="window.__xss=1;alert(1)">',
    '"><script>window.__xss=2;alert(2)</script>',
    "<svg onload=alert(3)>",
    "javascript:alert(4)",
]


def test_script_payloads_stay_text_everywhere(page, app):
    root = app.srv.media_root / "xss"
    root.mkdir(exist_ok=True)
    names = []
    for i, p in enumerate(PAYLOADS):
        name = p.replace("/", "∕") + f" {i}.webm"
        (root / name).write_bytes(b"not really a video")
        names.append(name)
    s = app.session(ADMIN)
    # Let the scanner look at them first: a file it could not probe offers no thumbnail
    # (before that the page would ask for one and get a 404, which is not what this tests).
    s.call("POST", "/api/library/rescan")
    deadline = time.monotonic() + 30
    while True:
        items = [s.call("GET", "/api/library/item?path=" + quote(f"xss/{n}"))[1] for n in names]
        if all(isinstance(i, dict) and (i.get("probed") or i.get("probe_error")) for i in items):
            break
        assert time.monotonic() < deadline, items
        time.sleep(0.3)
    md = ("# Title <script>window.__xss=5</script>\n\n<img src=x onerror=alert(6)>\n\n"
          "[click](javascript:alert(7)) [two](JaVaScRiPt:alert(8)) <a href=\"javascript:alert(9)\">a</a>\n")
    st, note, _ = s.call("POST", "/api/notes", {
        "title": PAYLOADS[1], "body": md, "tags": ["<b>x</b>", "\"onmouseover=alert(10)"], "visibility": "public"})
    assert st == 201, note
    st, share, _ = s.call("POST", "/api/shares", {"path": f"xss/{names[0]}"})
    assert st == 201

    login(page, app, ADMIN)
    visits = ["/#/library/xss", "/#/library/xss?q=webm", "/#/play/xss/" + quote(names[0], safe=""),
              "/#/notes", "/#/notes?q=title", f"/#/note/{note['id']}", "/#/settings/shares", "/#/"]
    for v in visits:
        page.goto(app.url(v))
        page.wait_for_load_state("networkidle")
    page.goto(app.url("/#/library/xss"))
    page.get_by_role("button", name="List").click()
    for name in names:
        page.get_by_text(name, exact=True).first.wait_for()
    page.goto(app.url(f"/#/note/{note['id']}"))
    page.get_by_role("heading", name=PAYLOADS[1]).wait_for()
    md_html = page.locator(".markdown").inner_html()
    # Raw HTML is shown as text (escaped), never as elements.
    assert page.locator(".markdown script, .markdown img, .markdown [onerror]").count() == 0, md_html
    hrefs = page.eval_on_selector_all(".markdown a", "els => els.map((a) => a.getAttribute('href'))")
    assert all(not (h or "").lower().strip().startswith("javascript") for h in hrefs), hrefs
    page.get_by_role("button", name="Edit").click()
    page.get_by_role("tab", name="Preview").click()
    page.locator(".preview .markdown").wait_for()
    assert page.evaluate("window.__xss") is None
    page.watch.assert_clean()
