"""The player: a WebM (VP9/Opus) plays and seeks, subtitles from an .srt, resume, next."""

from conftest import ADMIN, login

VIDEO = "video"


def wait_metadata(page):
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 1; }")


def test_play_and_seek_to_the_middle(page, app):
    login(page, app, ADMIN, then="/#/play/films/clip.webm")
    wait_metadata(page)
    dur = page.evaluate("document.querySelector('video').duration")
    assert 7.5 < dur < 8.5
    page.evaluate("""() => new Promise((ok) => { const v = document.querySelector('video');
        v.addEventListener('seeked', ok, { once: true }); v.currentTime = v.duration / 2; })""")
    t = page.evaluate("document.querySelector('video').currentTime")
    assert abs(t - dur / 2) < 0.5
    page.wait_for_function("() => document.querySelector('video').readyState >= 2")
    assert page.evaluate("document.querySelector('video').error") is None
    page.watch.assert_clean()


def test_subtitles_from_an_srt_are_shown(page, app):
    login(page, app, ADMIN, then="/#/play/films/clip.webm")
    wait_metadata(page)
    page.wait_for_function("() => document.querySelector('video track') !== null")
    cues = page.evaluate("""() => new Promise((ok, fail) => {
        const v = document.querySelector('video'); const t = v.textTracks[0]; t.mode = 'showing';
        const el = document.querySelector('video track');
        const done = () => ok(Array.from(t.cues || []).map((c) => [c.startTime, c.endTime, c.text]));
        if (el.readyState === 2) done(); else { el.addEventListener('load', done); el.addEventListener('error', () => fail('track failed')); }
    })""")
    assert cues == [[0.5, 7.5, "Hello from the subtitles"]]


def test_keyboard_next_and_resume_position(page, app):
    login(page, app, ADMIN, then="/#/play/films/clip.webm")
    wait_metadata(page)
    page.evaluate("""() => new Promise((ok) => { const v = document.querySelector('video');
        v.addEventListener('seeked', ok, { once: true }); v.currentTime = 6; })""")
    page.evaluate("document.querySelector('video').pause()")
    # Pausing saves the position: wait until the server has it.
    s = app.session(ADMIN)
    for _ in range(100):
        st, pos, _ = s.call("GET", "/api/positions?path=films/clip.webm")
        if pos["position"] is not None and abs(pos["position"] - 6) < 0.5:
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError(f"the position was not saved: {pos}")
    page.keyboard.press("n")
    page.wait_for_url("**/#/play/films/second.webm")
    page.get_by_role("heading", name="second.webm").wait_for()
    page.keyboard.press("p")
    page.wait_for_url("**/#/play/films/clip.webm")
    page.get_by_text("Resumed at 0:06").wait_for()
    t = page.evaluate("document.querySelector('video').currentTime")
    assert 5 < t < 7.5


def test_a_file_the_browser_cannot_play_offers_vlc_with_the_reason(page, app):
    (app.srv.media_root / "films" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    login(page, app, ADMIN, then="/#/play/films/broken.mp4")
    alert = page.get_by_role("alert").filter(has_text="could not be played").or_(
        page.get_by_role("alert").filter(has_text="cannot play"))
    alert.wait_for()
    with page.expect_download() as dl:
        alert.get_by_role("button", name="Open in VLC").click()
    text = open(dl.value.path()).read()
    assert text.startswith("#EXTM3U\n") and f"{app.base}/media/films/broken.mp4" in text
