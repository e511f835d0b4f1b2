"""Admin settings in a browser: add a user, change a role, reset a password, tokens."""

from conftest import ADMIN, login


def test_add_user_change_role_and_reset_password(page, app, browser):
    login(page, app, ADMIN, then="/#/settings/users")
    form = page.locator("form.inline-form")
    form.get_by_label("Name").fill("zoe")
    form.get_by_label("Password").fill("zoe-pass-1")
    form.get_by_role("button", name="Add").click()
    page.get_by_role("cell", name="zoe", exact=True).wait_for()
    page.get_by_label("Role of zoe").select_option("admin")
    page.get_by_text("zoe is admin now").wait_for()
    st, users, _ = app.session(ADMIN).call("GET", "/api/users")
    assert {u["name"]: u["role"] for u in users["users"]}["zoe"] == "admin"

    # zoe logs in elsewhere; a reset ends that session.
    other = browser.new_context()
    try:
        zp = other.new_page()
        login(zp, app, ("zoe", "zoe-pass-1"))
        page.get_by_role("row").filter(has_text="zoe").get_by_role("button", name="Reset password").click()
        page.get_by_role("dialog").get_by_label("Password (at least 8 characters)").fill("zoe-pass-2")
        page.get_by_role("dialog").get_by_role("button", name="Set password").click()
        page.get_by_text("Password of zoe changed").wait_for()
        zp.reload()
        zp.get_by_role("banner").get_by_role("link", name="Log in").wait_for()
        login(zp, app, ("zoe", "zoe-pass-2"))
    finally:
        other.close()

    # The last admin cannot be demoted: the page says why and the role stays.
    page.get_by_label("Role of zoe").select_option("member")
    page.get_by_text("zoe is member now").wait_for()
    page.get_by_label("Role of admin").select_option("member")
    page.locator(".toast.error").filter(has_text="last admin").wait_for()
    page.wait_for_function("() => document.getElementById('role-admin').value === 'admin'")


def test_api_token_shown_once_and_revoked(page, app):
    login(page, app, ADMIN, then="/#/settings/tokens")
    page.get_by_label("Label").fill("backup script")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("input.share-url").input_value()
    assert token.startswith("sht_")
    row = page.get_by_role("row").filter(has_text="backup script")
    row.wait_for()
    row.get_by_role("button", name="Revoke").click()
    row.wait_for(state="detached")
    page.watch.assert_clean()


def test_storage_and_configuration_pages(page, app):
    login(page, app, ADMIN, then="/#/settings/storage")
    page.get_by_text("healthy").first.wait_for()
    page.get_by_text(str(app.srv.media_root)).wait_for()
    page.get_by_role("button", name="Scan the library now").click()
    page.get_by_text("Scan started").wait_for()
    page.goto(app.url("/#/settings/config"))
    page.get_by_role("heading", name="[server]").wait_for()
    page.get_by_role("heading", name="[auth]").wait_for()
    assert "anonymous_read" in page.locator("main").inner_text()
    page.watch.assert_clean()


def test_deleting_a_user(page, app):
    st, _, _ = app.session(ADMIN).call("POST", "/api/users", {"name": "temp", "password": "temp-pass-1", "role": "member"})
    assert st == 201
    login(page, app, ADMIN, then="/#/settings/users")
    page.get_by_role("row").filter(has_text="temp").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("cell", name="temp", exact=True).wait_for(state="detached")
    st, users, _ = app.session(ADMIN).call("GET", "/api/users")
    assert "temp" not in {u["name"] for u in users["users"]}
