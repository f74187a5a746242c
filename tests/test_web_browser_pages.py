"""The site's pages together in a real browser (Debian's Chromium, headless, driven by Playwright):
the nav between the search page, /library and /audit, and the audit page's decisions.

Skipped only when ``/usr/bin/chromium`` is absent (``apt-get install chromium``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_web_browser import VIEWPORTS, _context, browser, server  # noqa: F401  (fixtures)

from genrify.web.app import create_app  # noqa: E402
from genrify.web.settings import Settings  # noqa: E402
from helpers.server import ServerThread, real_classifier  # noqa: E402

pytestmark = pytest.mark.browser


# ---------------------------------------------------------------------------- the audit page and the site's nav
# (genrify serve --audit: links between the three pages, decisions that read differently, relabel, the
# label-pair picture, and /audit on a server started without a dataset)

PAGES = {"/": "Predict", "/library": "Library", "/audit": "Audit"}


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_every_page_links_to_the_other_two_and_audit_says_how_to_start(browser, server, viewport):
    """``server`` has no ``--audit``: /audit is a page that says how to start an audit, not bare JSON."""
    context = _context(browser, viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for path, name in PAGES.items():
        page.goto(server.base + path)
        nav = page.locator("nav.site-nav")
        assert nav.is_visible()
        assert nav.locator("[aria-current=page]").inner_text() == name
        for other in PAGES:
            link = nav.locator(f'a[href="{other}"]')
            box = link.bounding_box()
            assert link.is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (path, other)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]
    page.goto(server.base + "/")
    page.locator('nav.site-nav a[href="/audit"]').click()
    page.wait_for_url(server.base + "/audit")
    start = page.locator("#start")
    start.wait_for(state="visible", timeout=10_000)
    assert "genrify serve --audit my.gdb" in start.inner_text()
    assert '"error"' not in page.locator("body").inner_text()
    import httpx

    api = httpx.get(server.base + "/api/audit", timeout=10)
    assert api.status_code == 404 and "genrify serve --audit" in api.json()["error"]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def audited_with_a_mislabel(real_embedded, tmp_path_factory):
    """gtzan-mini with one metal clip filed as classical (a relabel in its exclusion list, so the index and
    the audio stay real), audited once; the stored audit makes each test's copy start instantly."""
    from genrify.audit import audit_dataset
    from genrify.dataset import Dataset
    from genrify.dataset.exclusions import write_exclusions

    ds = tmp_path_factory.mktemp("audit-page") / "seed.gdb"
    import shutil

    shutil.copytree(real_embedded, ds)
    dataset = Dataset(ds)
    try:
        metal = next(t for t in dataset.tracks() if t.genre == "metal")
    finally:
        dataset.close()
    write_exclusions(ds, {}, relabelled={metal.path: "classical"})
    result = audit_dataset(ds)
    assert any(f["kind"] == "mislabelled" and f["tracks"][0]["path"] == metal.path for f in result["findings"]), \
        [f["title"] for f in result["findings"]]
    return {"ds": ds, "metal": metal.path}


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_audit_page_decisions_read_differently_and_relabel_is_kept_apart(browser, request, tmp_path, viewport,
                                                                           audited_with_a_mislabel):
    import shutil

    import httpx

    from genrify.dataset import Dataset
    from genrify.dataset.exclusions import read_exclusions, read_relabels

    seed = audited_with_a_mislabel
    ds = tmp_path / "page.gdb"
    shutil.copytree(seed["ds"], ds)
    audio = Path(seed["metal"]).read_bytes()
    settings = Settings(library=str(tmp_path / "lib"), library_db=str(tmp_path / "lib.sqlite"), scan="off")
    (tmp_path / "lib").mkdir()
    app = create_app(settings, classifier=real_classifier(request), audit=str(ds))
    assert app.state.audit_page.stale is None  # the stored audit of the copied dataset is current
    with ServerThread(app) as srv:
        api = httpx.get(srv.base + "/api/audit", timeout=60).json()
        assert api["reused"] is True
        plain = next(f for f in api["findings"] if not f["relabel"])
        refused = httpx.post(srv.base + f"/api/audit/{plain['key']}", json={"decision": "relabel"}, timeout=10)
        assert refused.status_code == 400 and "no other genre" in refused.json()["error"]
        context = _context(browser, viewport)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(srv.base + "/audit")
        first = page.locator(".audit-finding", has=page.locator("button.relabel")).first
        first.wait_for(timeout=30_000)
        # Pinned by its key: once decided the card has no relabel button for the locator above to find.
        card = page.locator(f'.audit-finding[data-key="{first.get_attribute("data-key")}"]')
        assert "metal" in card.locator("button.relabel").inner_text()
        # The label-pair picture is shown, and loaded.
        page.wait_for_function("() => { const i = document.querySelector('#pairs img');"
                               " return i && i.complete && i.naturalWidth > 0; }", timeout=15_000)
        assert httpx.get(srv.base + "/api/audit/label-pairs.png").content[:8] == b"\x89PNG\r\n\x1a\n"
        # Accept, relabel and dismiss do not look alike.
        style = "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.color, s.borderColor].join(); }"
        looks = {d: card.locator(f"button.{d}").evaluate(style) for d in ("accept", "relabel", "dismiss")}
        assert len(set(looks.values())) == 3, looks
        # A decided card says what was decided, in words, and offers an undo.
        card.locator("button.relabel").click()
        verdict = card.locator(".verdict")
        verdict.wait_for(timeout=10_000)
        assert verdict.inner_text().startswith("Relabelled as metal ✓")
        assert card.locator("button.accept").count() == 0
        assert read_relabels(ds) == {seed["metal"]: "metal"} and seed["metal"] not in read_exclusions(ds)
        card.locator("button.undo").click()
        card.locator("button.accept").click()
        card.locator(".verdict").wait_for(timeout=10_000)
        assert card.locator(".verdict").inner_text().startswith("Accepted ✓")
        assert seed["metal"] in read_exclusions(ds) and read_relabels(ds) == {}
        assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]
        context.close()
        assert not errors, errors
    # Train and evaluate follow the decisions; the audio was never written.
    dataset = Dataset(ds)
    try:
        assert seed["metal"] not in {t.path for t in dataset.tracks()}
    finally:
        dataset.close()
    assert Path(seed["metal"]).read_bytes() == audio
