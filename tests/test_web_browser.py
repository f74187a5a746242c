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

from genrify.web.app import create_app  # noqa: E402
from genrify.web.service import NOT_FOUND_MESSAGE  # noqa: E402
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
    row = next(r for r in server.rows if r["genre"] == "jazz")
    _predict(page, row["artist"], row["title"])
    _wait_for_result(page)
    items = page.locator("#top li").all_inner_texts()
    assert len(items) == 2
    for i, text in enumerate(items, start=1):
        assert text.startswith(f"{i}. ") and ", certainty: " in text and text.endswith("%")
    assert page.locator("#best-heading").inner_text() == "The best prediction of the model:"
    assert page.locator("#song-name").inner_text() == f"{row['artist']} – {row['title']}"
    # The MFCC image loaded and has a size.
    assert page.eval_on_selector("#mfcc", "img => img.complete && img.naturalWidth > 100")
    assert page.eval_on_selector("#timeline", "img => img.complete && img.naturalWidth > 100")
    # The audio element has a source the browser can play, and plays it.
    src = page.eval_on_selector("#player", "a => a.currentSrc")
    assert "/api/audio/library/" in src
    page.wait_for_function("() => { const a = document.getElementById('player'); "
                           "return a.readyState >= 2 && !a.paused && a.currentTime > 0; }", timeout=15_000)
    assert page.eval_on_selector("#player", "a => a.duration") > 1
    page.click("#pause")
    assert page.eval_on_selector("#player", "a => a.paused")
    t = page.eval_on_selector("#player", "a => a.currentTime")
    page.wait_for_timeout(300)
    assert page.eval_on_selector("#player", "a => a.currentTime") == t


def test_unknown_song_shows_the_not_found_message(page):
    _predict(page, "Nobody At All", "A Song That Does Not Exist")
    page.wait_for_function(f"() => document.getElementById('status').textContent === {NOT_FOUND_MESSAGE!r}",
                           timeout=15_000)
    assert page.locator("#result").is_hidden()


def test_upload_gives_a_result(page, server):
    row = next(r for r in server.rows if r["genre"] == "metal")
    page.set_input_files("#file", str(server.library / row["path"]))
    _wait_for_result(page)
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


def test_phone_width_is_readable(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(server.base + "/")
    row = next(r for r in server.rows if r["genre"] == "edm")
    _predict(page, row["artist"], row["title"])
    _wait_for_result(page)
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert page.locator("#predict").is_visible() and page.locator("#pause").is_visible()
    context.close()


@pytest.mark.skipif(not os.environ.get("GENRIFY_SCREENSHOTS"), reason="set GENRIFY_SCREENSHOTS=1 to refresh docs/screenshots")
def test_screenshots(browser, tmp_path, request):
    """Refresh docs/screenshots/ from a server on a clean demo library (30 s clips)."""
    from genrify.sources.synthetic import write_demo_corpus

    clf = real_classifier(request)
    write_demo_corpus(tmp_path / "demo", per_genre=2, seed=0, duration=30.0, fmt="mp3")
    settings = Settings(library=str(tmp_path / "demo"), library_db=str(tmp_path / "demo.sqlite"), scan="blocking")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with ServerThread(create_app(settings, classifier=clf)) as srv:
        for name, viewport in (("widget-desktop.png", {"width": 1000, "height": 800}),
                               ("widget-phone.png", {"width": 390, "height": 844})):
            context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500)
            page = context.new_page()
            page.goto(srv.base + "/")
            page.wait_for_selector("#examples:not([hidden])")
            _predict(page, "Synthetic Jazz Ensemble 1", "Swing Study No. 1")
            _wait_for_result(page)
            page.wait_for_function("() => !document.getElementById('player').paused")
            page.click("#pause")
            page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
            context.close()
