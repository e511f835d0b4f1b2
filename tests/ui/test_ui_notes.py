"""The notepad in a browser: write, find, edit, a stale edit, a conflict resolved."""

from conftest import ADMIN, MEMBER, e2e, login, start_app


def new_note(page, title, body, tags="", public=False):
    page.get_by_role("link", name="New note").click()
    page.get_by_label("Title").fill(title)
    page.get_by_label("Tags (comma-separated)").fill(tags)
    if public:
        page.get_by_label("Everyone who can open this box").check()
    page.get_by_label("Text (Markdown:").fill(body)
    page.get_by_role("button", name="Create note").click()
    page.get_by_role("heading", name=title).wait_for()


def test_write_preview_find_and_edit(page, app):
    login(page, app, MEMBER, then="/#/notes")
    page.get_by_role("link", name="New note").click()
    page.get_by_label("Title").fill("Garden plans")
    page.get_by_label("Text (Markdown:").fill("Plant **tomatoes** in May")
    page.get_by_role("tab", name="Preview").click()
    page.locator(".preview strong", has_text="tomatoes").wait_for()
    page.get_by_role("tab", name="Write").click()
    page.get_by_label("Tags (comma-separated)").fill("garden, Spring")
    page.get_by_role("button", name="Create note").click()
    page.get_by_role("heading", name="Garden plans").wait_for()
    page.locator(".markdown strong", has_text="tomatoes").wait_for()
    page.get_by_role("link", name="#spring").wait_for()

    page.goto(app.url("/#/notes"))
    page.get_by_label("Search notes").fill("tomato*")
    page.get_by_role("button", name="Search").click()
    page.locator("ul.notes mark", has_text="tomatoes").wait_for()
    # The title reads as written (no count or flag glued to it).
    item = page.locator("ul.notes li", has_text="Garden plans")
    assert item.get_by_role("link").first.inner_text() == "Garden plans"
    assert "Garden plans0" not in item.inner_text()
    page.get_by_role("button", name="#garden").click()
    page.get_by_role("link", name="Garden plans").click()
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Text (Markdown:").fill("Plant **tomatoes** and beans in May")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("and beans").wait_for()
    page.get_by_role("tab", name="History").click()
    page.get_by_text("History (2 revisions)").wait_for()
    page.watch.assert_clean()


def test_a_stale_edit_shows_what_changed_and_keeps_both_texts(page, app):
    login(page, app, MEMBER, then="/#/notes")
    new_note(page, "Shopping", "milk\nbread\n", public=True)
    note_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Text (Markdown:").fill("milk\nbread\neggs (mine)\n")
    # Meanwhile someone else saves the note.
    other = app.session(ADMIN)
    st, note, _ = other.call("GET", f"/api/notes/{note_id}")
    st, _, _ = other.call("PUT", f"/api/notes/{note_id}", {"body": "oat milk\nbread\n"},
                          headers={"If-Match": f'"{note["rev"]}"'})
    assert st == 200
    page.get_by_role("button", name="Save").click()
    stale = page.locator(".stale")
    stale.get_by_text("Someone else saved this note while you were editing").wait_for()
    stale.locator(".diff .add", has_text="oat milk").wait_for()
    stale.locator(".diff .del", has_text="milk").first.wait_for()
    assert page.get_by_label("Text (Markdown:").input_value() == "milk\nbread\neggs (mine)\n"
    page.get_by_label("Text (Markdown:").fill("oat milk\nbread\neggs (mine)\n")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("eggs (mine)").wait_for()
    st, note, _ = other.call("GET", f"/api/notes/{note_id}")
    assert note["body"] == "oat milk\nbread\neggs (mine)\n"


def test_a_conflict_is_resolved_in_the_three_way_view(page, factory, media_tree, tmp_path):
    a = start_app(factory, media_tree, name="ui-box-a")
    b = start_app(factory, media_tree, name="ui-box-b")
    sa, sb = a.session(MEMBER), b.session(MEMBER)
    st, note, _ = sa.call("POST", "/api/notes", {"title": "Rota", "body": "mon: ann\ntue: bob\n", "visibility": "public"})
    assert st == 201

    def carry(src, dst, name):
        out = tmp_path / name
        assert e2e.run_cli(["notes", "export", out, "--data-dir", src.srv.data_dir]).returncode == 0
        r = e2e.run_cli(["notes", "import", out, "--data-dir", dst.srv.data_dir])
        assert r.returncode == 0, r.stderr

    carry(a, b, "a0")
    for s, body in ((sa, "mon: ANN\ntue: bob\n"), (sb, "mon: carl\ntue: bob\n")):
        st, _, _ = s.call("PUT", f"/api/notes/{note['id']}", {"body": body}, headers={"If-Match": f'"{note["rev"]}"'})
        assert st == 200
    carry(b, a, "b-to-a")

    login(page, a, MEMBER, then=f"/#/note/{note['id']}")
    box = page.locator(".conflict")
    box.get_by_text("This note has a conflicting version").wait_for()
    box.get_by_role("button", name="Merge automatically").click()
    # Both changed line one: the server cannot merge, the page asks a person.
    page.get_by_text("change the same lines").wait_for()
    box.get_by_role("heading", name="Result").wait_for()
    # The three versions side by side: where both started, this box's, the other's.
    three = box.locator(".three")
    assert three.locator("section", has=page.get_by_role("heading", name="Before both edits")).locator("pre").inner_text() == "mon: ann\ntue: bob\n"
    ours = three.locator("section", has=page.get_by_role("heading", name="This version (current)")).locator("pre").inner_text()
    theirs = three.locator("section", has=page.get_by_role("heading", name="The other version (mia)")).locator("pre").inner_text()
    # Which one is current is the sync's deterministic choice; both are there.
    assert {ours, theirs} == {"mon: ANN\ntue: bob\n", "mon: carl\ntue: bob\n"}
    page.get_by_label("Merged text").fill("mon: ann and carl\ntue: bob\n")
    box.get_by_role("button", name="Save the result").click()
    page.get_by_text("Conflict resolved").wait_for()
    page.locator(".conflict").wait_for(state="detached")
    st, after, _ = sa.call("GET", f"/api/notes/{note['id']}")
    assert after["conflicts"] == [] and after["body"] == "mon: ann and carl\ntue: bob\n"


def test_history_shows_a_diff_and_restores_an_old_revision(page, app):
    s = app.session(MEMBER)
    st, note, _ = s.call("POST", "/api/notes", {"title": "Recipe", "body": "flour\nsugar\n"})
    assert st == 201
    st, note2, _ = s.call("PUT", f"/api/notes/{note['id']}", {"body": "flour\nsalt\n"},
                          headers={"If-Match": f'"{note["rev"]}"'})
    assert st == 200
    login(page, app, MEMBER, then=f"/#/note/{note['id']}")
    page.get_by_role("heading", name="Recipe").wait_for()
    page.get_by_role("tab", name="History").click()
    revs = page.locator("ol.revisions li")
    revs.nth(1).get_by_role("button").click()  # the older one (newest first)
    diff = page.locator(".rev .diff")
    diff.locator(".del", has_text="sugar").wait_for()
    diff.locator(".add", has_text="salt").wait_for()
    page.get_by_role("button", name="Restore this revision").click()
    page.get_by_text("Restored as a new revision").wait_for()
    page.locator(".markdown", has_text="sugar").wait_for()
    st, after, _ = s.call("GET", f"/api/notes/{note['id']}")
    assert after["body"] == "flour\nsugar\n" and after["rev"] not in (note["rev"], note2["rev"])
