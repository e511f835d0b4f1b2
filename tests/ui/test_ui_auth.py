"""First run in a browser: the setup token, the first admin, log out and in again."""

from conftest import ADMIN, ADDR, e2e, login, start_app


def test_pages_run_in_an_insecure_context_on_a_lan_address(page, app):
    page.goto(app.url("/"))
    assert app.base.startswith(f"http://{ADDR}:") and not ADDR.startswith("127.")
    assert page.evaluate("window.isSecureContext") is False
    assert page.evaluate("typeof navigator.clipboard") == "undefined"


def test_first_run_setup_then_logout_and_login(page, factory, media_tree):
    app = start_app(factory, media_tree, users=False, name="ui-setup")
    token = e2e.wait_setup_token(app.srv)
    page.goto(app.url("/"))
    page.get_by_role("heading", name="Welcome to streamhub").wait_for()
    page.get_by_label("Setup token").fill("wrong-token")
    page.get_by_label("Admin name").fill("boss")
    page.get_by_label("Password (at least 8 characters)").fill("boss-pass-1")
    page.get_by_label("Password again").fill("boss-pass-1")
    page.get_by_role("button", name="Create admin").click()
    page.get_by_role("alert").filter(has_text="setup token").wait_for()

    page.get_by_label("Setup token").fill(token)
    page.get_by_role("button", name="Create admin").click()
    page.get_by_role("button", name="Log out").wait_for()
    assert page.get_by_role("link", name="Settings").is_visible()
    assert "boss" in page.locator("header .who").inner_text()

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("heading", name="Log in").wait_for()
    page.get_by_label("Name").fill("boss")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").filter(has_text="wrong name or password").wait_for()
    page.get_by_label("Password").fill("boss-pass-1")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log out").wait_for()
    # Set up is over: the setup page says so instead of offering the form.
    page.goto(app.url("/#/setup"))
    page.get_by_role("heading", name="Set-up is done").wait_for()


def test_a_member_sees_no_admin_pages(page, app):
    login(page, app, ("mia", "member-pass-1"))
    assert not page.get_by_role("link", name="Settings").is_visible()
    page.goto(app.url("/#/settings"))
    # A member gets their own API tokens there, nothing of the admin's.
    page.get_by_role("heading", name="API tokens").wait_for()
    assert not page.get_by_role("heading", name="Users").is_visible()
    page.watch.assert_clean()


def test_an_ended_session_falls_back_to_the_login(page, app):
    login(page, app, ADMIN)
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "streamhub_session", "value": "ended", "url": app.base}])
    page.goto(app.url("/#/library"))
    page.reload()
    page.get_by_role("banner").get_by_role("link", name="Log in").wait_for()
