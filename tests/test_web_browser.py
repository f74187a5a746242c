"""The page in a real browser: Debian's Chromium, headless, driven by Playwright.

Skipped only when ``/usr/bin/chromium`` is absent (``apt-get install chromium``).
``GENRIFY_SCREENSHOTS=1`` also refreshes ``docs/screenshots/`` (desktop and phone width).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

from genrify.web.analysis import TIMELINE_FONT_PT  # noqa: E402
from genrify.web.app import create_app  # noqa: E402
from genrify.web.lookup import NOT_FOUND_MESSAGE  # noqa: E402
from genrify.web.settings import Settings  # noqa: E402
from helpers.server import XSS_TITLE, ServerThread, make_library, real_classifier  # noqa: E402

pytestmark = pytest.mark.browser

LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--mute-audio",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    clf = real_classifier(request)
    base = tmp_path_factory.mktemp("browser")
    rows = make_library(base / "library", base / "outside")
    settings = Settings(library=str(base / "library"), library_db=str(base / "library.sqlite"), scan="blocking")
    with ServerThread(create_app(settings, classifier=clf)) as srv:
        srv.rows, srv.library = rows, base / "library"
        yield srv


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server.base + "/")
    yield pg
    context.close()
    assert not errors, errors


def _predict(page, artist, track):
    page.fill("#artist", artist)
    page.fill("#track", track)
    page.click("#predict")


def _wait_for_result(page):
    try:
        page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    except sync_api.TimeoutError:
        pytest.fail(f"no result; the page says: {page.locator('#status').inner_text()!r}")


def test_search_predict_listen_pause(page, server):
    """The player's own controls play and pause; the page has no second "Pause song" button."""
    row = next(r for r in server.rows if r["genre"] == "jazz")
    _predict(page, row["artist"], row["title"])
    _wait_for_result(page)
    items = page.locator("#top li").all_inner_texts()
    assert len(items) == 2
    for i, text in enumerate(items, start=1):
        assert text.startswith(f"{i}. ") and ", certainty: " in text and text.endswith("%")
    assert page.locator("#best-heading").inner_text() == "The best prediction of the model:"
    assert page.locator("#song-name").inner_text() == f"{row['artist']} – {row['title']}"
    # The model's input (a log-mel spectrogram for the default model) loaded and has a size.
    assert page.eval_on_selector("#mfcc", "img => img.complete && img.naturalWidth > 100")
    assert page.locator("#features-caption").inner_text().startswith(
        ("Log-mel spectrogram", "MFCC image"))  # the session's tiny CNN where the default is not installed
    assert page.eval_on_selector("#timeline", "img => img.complete && img.naturalWidth > 100")
    # The audio element has a source the browser can play, and plays it when asked.
    src = page.eval_on_selector("#player", "a => a.currentSrc")
    assert "/api/audio/library/" in src
    page.eval_on_selector("#player", "a => a.play()")  # what the player's own button does
    page.wait_for_function("() => { const a = document.getElementById('player'); "
                           "return a.readyState >= 2 && !a.paused && a.currentTime > 0; }", timeout=15_000)
    assert page.eval_on_selector("#player", "a => a.duration") > 1
    assert page.locator("#pause").count() == 0 and page.locator("button", has_text="Pause").count() == 0
    page.eval_on_selector("#player", "a => a.pause()")
    assert page.eval_on_selector("#player", "a => a.paused")
    t = page.eval_on_selector("#player", "a => a.currentTime")
    page.wait_for_timeout(300)
    assert page.eval_on_selector("#player", "a => a.currentTime") == t


def test_unknown_song_shows_the_not_found_message(page, server):
    _predict(page, "Nobody At All", "A Song That Does Not Exist")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('searched')",
                           timeout=15_000)
    status = page.locator("#status").inner_text()
    assert status.startswith(f"{NOT_FOUND_MESSAGE}; searched your library ({len(server.rows) + 1} songs).")
    assert page.locator("#result").is_hidden()


def test_not_found_offers_the_closest_songs_and_one_click_plays_it(page, server):
    row = next(r for r in server.rows if r["genre"] == "hiphop")
    _predict(page, "Somebody Else", row["title"])
    page.wait_for_selector("#suggestions:not([hidden])", timeout=15_000)
    button = page.locator("#suggestions button", has_text=row["title"]).first
    assert button.inner_text() == f"{row['artist']} – {row['title']}"
    button.click()
    _wait_for_result(page)
    assert page.locator("#song-name").inner_text() == f"{row['artist']} – {row['title']}"
    assert page.locator("#suggestions").is_hidden()


def test_upload_gives_a_result(page, server):
    row = next(r for r in server.rows if r["genre"] == "metal")
    page.fill("#artist", "An Old Artist")
    page.fill("#track", "An Old Title")
    page.set_input_files("#file", str(server.library / row["path"]))
    _wait_for_result(page)
    # The answer is about the file: the search fields no longer pretend to describe it.
    assert page.input_value("#artist") == "" and page.input_value("#track") == ""
    assert len(page.locator("#top li").all_inner_texts()) == 2
    assert page.locator("#song-name").inner_text() == Path(row["path"]).name
    assert page.eval_on_selector("#mfcc", "img => img.complete && img.naturalWidth > 100")
    assert page.eval_on_selector("#player", "a => a.currentSrc.startsWith('blob:')")


def test_drop_a_file(page, server):
    row = next(r for r in server.rows if r["genre"] == "classical")
    data = list((server.library / row["path"]).read_bytes())
    page.evaluate(
        """([bytes, name]) => {
            const file = new File([new Uint8Array(bytes)], name, {type: 'audio/mpeg'});
            const dt = new DataTransfer();
            dt.items.add(file);
            document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
        }""",
        [data, "dropped.mp3"],
    )
    _wait_for_result(page)
    assert page.locator("#song-name").inner_text() == "dropped.mp3"
    assert len(page.locator("#top li").all_inner_texts()) == 2


def test_script_title_shows_as_text(page):
    page.evaluate("() => { window.__xss = false; }")
    _predict(page, "Mallory & <b>Co</b>", XSS_TITLE)
    _wait_for_result(page)
    assert page.locator("#song-name").inner_text() == f"Mallory & <b>Co</b> – {XSS_TITLE}"
    assert page.locator("#song-name script, #song-name b").count() == 0
    assert page.evaluate("() => window.__xss") is False
    # The example buttons also show library text as text.
    assert page.locator("#examples script").count() == 0


def test_silence_shows_the_verdict_instead_of_genres(page, tmp_path):
    import numpy as np
    import soundfile as sf

    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(22050 * 4, dtype=np.float32), 22050)
    page.set_input_files("#file", str(silent))
    _wait_for_result(page)
    verdict = page.locator("#verdict")
    assert verdict.is_visible() and "silence" in verdict.inner_text().lower()
    assert page.locator("#top").is_hidden()
    assert page.locator("#best-heading").is_hidden()
    assert page.locator("#timeline-figure").is_hidden()  # no genre timeline for what is not music


def test_phone_width_is_readable(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(server.base + "/")
    row = next(r for r in server.rows if r["genre"] == "edm")
    _predict(page, row["artist"], row["title"])
    _wait_for_result(page)
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert page.locator("#predict").is_visible()
    context.close()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_the_answer_is_scrolled_into_view_and_announced(browser, server, viewport):
    context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500,
                                  has_touch=viewport["width"] < 500)
    page = context.new_page()
    page.goto(server.base + "/")
    row = next(r for r in server.rows if r["genre"] == "jazz")
    _predict(page, row["artist"], row["title"])
    _wait_for_result(page)
    # In view: the result's heading is on screen (on a phone it starts below the fold without scrolling).
    page.wait_for_function("""() => { const r = document.getElementById('song-name').getBoundingClientRect();
                                      return r.top >= 0 && r.bottom <= window.innerHeight; }""", timeout=5_000)
    if viewport["width"] < 500:  # the answer starts below the fold there: the page had to scroll
        assert page.evaluate("() => window.scrollY") > 0
    announce = page.locator("#announce")
    assert announce.get_attribute("aria-live") in ("polite", "assertive")
    said = announce.inner_text()
    first = page.locator("#top li").first.inner_text() if page.locator("#top").is_visible() else ""
    assert said.startswith(f"{row['artist']} – {row['title']}: ")
    genre = first.split(", certainty")[0].split(". ", 1)[-1]
    assert (genre in said) if first else page.locator("#verdict").is_visible()
    # The timeline has a title, and its text stays readable when the chart is scaled to the screen.
    assert page.locator("#timeline-figure h3").inner_text() == "Genre over time"
    scale = page.eval_on_selector("#timeline", "img => img.getBoundingClientRect().width / img.naturalWidth")
    assert TIMELINE_FONT_PT * 100 / 72 * scale >= 9, scale  # axis text at least 9 CSS pixels high
    context.close()


def test_docs_page_renders_code_and_response_examples(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(server.base + "/docs")
    page.wait_for_selector("pre.example")
    text = page.locator("main").inner_text()
    assert "`" not in text
    assert page.locator("#description code").count() > 0
    examples = page.locator("pre.example").all_inner_texts()
    assert any('"verdict": "genre"' in e for e in examples) and any('"suggestions"' in e for e in examples)
    context.close()


@pytest.mark.skipif(not os.environ.get("GENRIFY_SCREENSHOTS"), reason="set GENRIFY_SCREENSHOTS=1 to refresh docs/screenshots")
def test_screenshots(browser, tmp_path, request):
    """Refresh docs/screenshots/ from a server on the demo library a fresh set-up builds (first "Try:" song)."""
    from test_web_demo import fetch_demo_packages

    from genrify.sources.demo import DEMO_SONGS, build_demo_library

    clf = real_classifier(request)
    build_demo_library(debian_dir=fetch_demo_packages(), out=tmp_path / "data" / "demo-library")
    song = next(s for s in DEMO_SONGS if s.example)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENRIFY_DATA_DIR", str(tmp_path / "data"))
        mp.setenv("GENRIFY_CACHE_DIR", str(tmp_path / "cache"))
        with ServerThread(create_app(Settings(scan="blocking"), classifier=clf)) as srv:
            for name, viewport in (("widget-desktop.png", {"width": 1280, "height": 900}),
                                   ("widget-phone.png", {"width": 390, "height": 844})):
                context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500)
                page = context.new_page()
                page.goto(srv.base + "/")
                page.wait_for_selector("#examples:not([hidden])")
                _predict(page, song.artist, song.title)
                _wait_for_result(page)
                page.evaluate("() => window.scrollTo(0, 0)")
                page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
                context.close()


def _demo_page(browser, request, data: Path, viewport: dict):
    """The front page of ``genrify serve`` with no --library, its data folder at ``data``: (page, close)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GENRIFY_DATA_DIR", str(data))
    mp.setenv("GENRIFY_CACHE_DIR", str(data / "cache"))
    srv = ServerThread(create_app(Settings(scan="blocking", demo_per_genre=1), classifier=real_classifier(request)))
    srv.__enter__()
    context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500)
    page = context.new_page()
    page.goto(srv.base + "/")
    page.wait_for_selector("#examples:not([hidden])")

    def close():
        context.close()
        srv.__exit__(None, None, None)
        mp.undo()

    return page, close


def test_the_real_demo_library_is_credited_on_the_page(browser, request, tmp_path):
    from test_web_demo import fetch_demo_packages

    from genrify.sources.demo import DEMO_SONGS, build_demo_library

    build_demo_library(debian_dir=fetch_demo_packages(), out=tmp_path / "demo-library")
    page, close = _demo_page(browser, request, tmp_path, {"width": 390, "height": 844})
    try:
        credits = page.locator("#credits-list li").all_inner_texts()
        assert credits == [f"“{s.title}” by {s.artist} ({s.licence}; Debian package {s.package})" for s in DEMO_SONGS]
        assert page.locator("#credits").is_visible() and "synthetic" not in page.locator("#demo-note").inner_text()
        tries = page.locator("#examples button").all_inner_texts()
        assert tries == [f"{s.artist} – {s.title}" for s in DEMO_SONGS if s.example]
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        close()


def test_without_the_real_demo_the_page_says_the_songs_are_synthetic(browser, request, tmp_path):
    page, close = _demo_page(browser, request, tmp_path, {"width": 1280, "height": 900})
    try:
        note = page.locator("#demo-note")
        assert note.is_visible() and "synthetic" in note.inner_text() and "scripts/setup.sh" in note.inner_text()
        assert "synthetic" in note.get_attribute("class")
        assert page.locator("#credits").is_hidden()
        assert all(t.startswith("Synthetic") for t in page.locator("#examples button").all_inner_texts())
    finally:
        close()


# --------------------------------------------------------------------------- the search page: a new user's first minutes
# (not-found message in view and in the right words, no autoplay, the unsure sentence's figures)

VIEWPORTS = [{"width": 1280, "height": 900}, {"width": 390, "height": 844}]


def _context(browser, viewport):
    phone = viewport["width"] < 500
    return browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)


def _in_view(page, selector):
    return page.eval_on_selector(selector, """el => { const r = el.getBoundingClientRect();
                                                      return r.top >= 0 && r.bottom <= window.innerHeight; }""")


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_not_found_is_scrolled_into_view_and_suggests_a_file(browser, server, viewport):
    """Only the library was searched: no talk of previews; the message says a file can be dropped, and it
    is on screen (on a phone it used to sit below the fold)."""
    context = _context(browser, viewport)
    page = context.new_page()
    page.goto(server.base + "/")
    _predict(page, "Nobody At All", "A Song That Does Not Exist")
    page.wait_for_selector("#status.error", timeout=15_000)
    page.wait_for_function("""() => { const r = document.getElementById('status').getBoundingClientRect();
                                      return r.top >= 0 && r.bottom <= window.innerHeight; }""", timeout=5_000)
    assert _in_view(page, "#drop")  # where the message points to
    assert page.locator("#suggestions").is_hidden() or _in_view(page, "#suggestions")  # and "Did you mean"
    status = page.locator("#status").inner_text()
    assert "preview" not in status, status
    assert status.startswith(f"{NOT_FOUND_MESSAGE}; searched your library ({len(server.rows) + 1} songs).")
    assert "drop it" in status.lower(), status
    # The API says the same: no preview was missed where none was looked for.
    body = page.evaluate("""async () => (await fetch('/api/predict?artist=Nobody&track=Nothing%20Here')).json()""")
    assert "preview" not in body["error"] and body["error"].startswith(NOT_FOUND_MESSAGE)
    context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_the_song_does_not_play_by_itself(browser, server, viewport):
    """After Predict the player is ready but silent: it plays when the user asks (even where the browser
    would allow autoplay, as this one is launched to)."""
    context = _context(browser, viewport)
    page = context.new_page()
    page.goto(server.base + "/")
    row = next(r for r in server.rows if r["genre"] == "classical")
    _predict(page, row["artist"], row["title"])
    _wait_for_result(page)
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=15_000)
    page.wait_for_timeout(1_000)
    assert page.eval_on_selector("#player", "a => a.paused && a.currentTime === 0 && !a.autoplay")
    assert page.eval_on_selector("#player", "a => a.play().then(() => true)")  # the player's own button
    page.wait_for_function("() => { const a = document.getElementById('player'); return !a.paused && a.currentTime > 0; }",
                           timeout=15_000)
    context.close()


def test_the_unsure_sentence_agrees_with_the_figures_on_the_page(browser, seeded_mlp_model, tmp_path):
    """A song whose top probability is a hair under the model's threshold: the page never says
    "only 35% certainty (below 35%)", and a sentence's figure is the one its list shows."""
    import re

    import soundfile as sf

    from genrify.predict import GenreClassifier
    from genrify.sources.synthetic import generate_clip
    from test_predict import write_model_just_above

    song = tmp_path / "edge.wav"
    sf.write(song, generate_clip("edm", seed=2, sr=22050, duration=8.0), 22050)
    write_model_just_above(seeded_mlp_model, song=song, out=tmp_path / "edge.genrify")
    clf = GenreClassifier.from_file(tmp_path / "edge.genrify")
    (tmp_path / "empty").mkdir()
    settings = Settings(library=str(tmp_path / "empty"), library_db=str(tmp_path / "empty.sqlite"), scan="blocking")
    with ServerThread(create_app(settings, classifier=clf)) as srv:
        context = _context(browser, VIEWPORTS[1])
        page = context.new_page()
        page.goto(srv.base + "/")
        page.set_input_files("#file", str(song))
        _wait_for_result(page)
        first = page.locator("#top li").first.inner_text()
        shown = re.search(r"certainty: (\d+)%", first)[1]
        if page.locator("#verdict").is_visible():
            sentence = page.locator("#verdict").inner_text()
            figures = re.search(r"only (\d+)% certainty \(below (\d+)%\)", sentence)
            assert figures and figures[1] == shown and int(figures[1]) < int(figures[2]), (sentence, first)
        else:
            assert page.locator("#best-heading").inner_text() == "The best prediction of the model:"
        context.close()
