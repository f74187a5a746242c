"""The library page (``genrify serve --library DIR``): the songs of ``genrify tag``'s results index.

The API tests serve a real results index (SQLite, written through :class:`~genrify.tagging.index.ResultsIndex`)
of real clips and 150 more recorded songs from a real uvicorn on 127.0.0.1; the browser test builds its index by
running ``genrify tag`` over clips copied from gtzan-mini and drives the page in Debian's Chromium at desktop and
phone sizes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from helpers.server import XSS_TITLE, ServerThread, real_classifier

from genrify.tagging.index import ResultsIndex
from genrify.web.app import create_app
from genrify.web.settings import Settings

HOSTILE = "<img src=x onerror=alert(1)>"
GENRES = ("Rock", "Pop", "Jazz")
CLIPS = ("jazz", "metal", "classical", "reggae")


def _analysis(genre: str | None, verdict: str, p: float, styles=()) -> dict:
    """An analysis as ``Analysis.to_dict`` stores it: three windows over three labels."""
    labels = list(GENRES)
    return {"genre": genre, "styles": [{"name": s, "probability": 0.7} for s in styles], "genres": {},
            "verdict": verdict, "message": f"{verdict} message", "duration": 9.0,
            "top": [[genre or "Rock", p]], "probabilities": dict.fromkeys(labels, 1 / 3),
            "windows": {"starts": [0.0, 3.0, 6.0], "labels": labels,
                        "probabilities": [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]}}


def _add(index: ResultsIndex, path: Path, n: int, analysis: dict, tags: dict) -> int:
    return index.add_song(path=str(path), digest=f"{n:064x}", size=1, mtime_ns=1, model="m", analysis=analysis,
                          tags={"artist": None, "album": None, "title": None, "genres": []} | tags)


def _fill(index: ResultsIndex, lib: Path, outside: Path, gtzan_mini: Path) -> dict:
    """Real clips (one with a script-like name), 150 songs whose files are gone, one song outside the library."""
    ids = {}
    for n, genre in enumerate(CLIPS):
        name = f"{HOSTILE}.wav" if genre == "reggae" else f"{genre}.wav"
        shutil.copy(gtzan_mini / genre / f"{genre}.00000.wav", lib / name)
        ids[genre] = _add(index, lib / name, n, _analysis(genre.title(), "genre", 0.5 + n / 10),
                          {"artist": HOSTILE if genre == "reggae" else f"Clip {genre}", "title": genre})
    for n in range(150):
        verdict = ("genre", "unsure", "not_music")[n % 3]
        genre = GENRES[(n // 3) % 3] if verdict == "genre" else None
        styles = ("Bebop",) if genre == "Jazz" else ()
        _add(index, lib / "gone" / f"song {n:03}.mp3", 100 + n, _analysis(genre, verdict, (n % 97) / 100, styles),
             {"artist": f"Artist {n % 7}", "album": f"Album {n % 5}", "title": f"Song {n:03}"})
    shutil.copy(gtzan_mini / "metal" / "metal.00001.wav", outside / "secret.wav")
    ids["outside"] = _add(index, outside / "secret.wav", 999, _analysis("Metal", "genre", 0.9), {"title": "secret"})
    ids["gone"] = _add(index, lib / "gone.wav", 998, _analysis("Rock", "genre", 0.9), {"title": "gone"})
    return ids


@pytest.fixture(scope="module")
def classifier(request):
    return real_classifier(request)


@pytest.fixture(scope="module")
def web(tmp_path_factory, gtzan_mini, classifier):
    base = tmp_path_factory.mktemp("library-page")
    lib, outside = base / "Music", base / "outside"
    lib.mkdir()
    outside.mkdir()
    with ResultsIndex(base / "index.sqlite") as index:
        ids = _fill(index, lib, outside, gtzan_mini)
    settings = Settings(library=str(lib), library_db=str(base / "lib.sqlite"), scan="off")
    with ServerThread(create_app(settings, classifier=classifier, library_index=str(base / "index.sqlite"))) as srv:
        with httpx.Client(base_url=srv.base, timeout=60) as client:
            srv.client, srv.ids, srv.lib, srv.base_dir = client, ids, lib, base
            yield srv


def _get(web, **params) -> dict:
    r = web.client.get("/api/library", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_lists_the_library_songs_only_and_names_them_without_their_folder(web):
    body = _get(web, limit=200)
    assert body["index"] == {"name": "index.sqlite", "songs": 155} and body["total"] == 155  # not the outside one
    assert body["library"] == "Music" and set(body["genres"]) == {"Rock", "Pop", "Jazz", "Classical", "Metal",
                                                                   "Reggae"} and body["styles"] == ["Bebop"]
    names = {r["name"] for r in body["rows"]}
    assert "gone/song 000.mp3" in names and f"{HOSTILE}.wav" in names and "secret.wav" not in names
    songs = [r["song"] for r in _get(web, sort="song", limit=200)["rows"]]  # as the table shows: artist – title
    assert f"{HOSTILE} – reggae" in songs and "gone" in songs and songs == sorted(songs, key=str.casefold)
    raw = web.client.get("/api/library", params={"q": "onerror"}).text
    assert "<img" not in raw and "\\u003cimg" in raw  # JSON the browser never reads as HTML
    assert str(web.base_dir) not in web.client.get("/api/library", params={"limit": 200}).text


def test_sorts_by_each_column_missing_values_last(web):
    rows = _get(web, sort="certainty", order="desc", limit=200)["rows"]
    sure = [r["certainty"] for r in rows]
    assert sure == sorted(sure, reverse=True) and sure[0] == 0.96
    rows = _get(web, sort="genre", order="asc", limit=200)["rows"]
    genres = [r["genre"] for r in rows]
    present = [g for g in genres if g]
    assert present == sorted(present, key=str.casefold) and genres[len(present):] == [None] * (155 - len(present))
    assert _get(web, sort="genre", order="desc", limit=200)["rows"][-1]["genre"] is None  # last either way
    titles = [r["title"] for r in _get(web, sort="title", order="desc", limit=5)["rows"]]
    assert titles == ["Song 149", "Song 148", "Song 147", "Song 146", "Song 145"]
    assert _get(web, sort="style", limit=1)["rows"][0]["styles"] == ["Bebop"]


def test_filters_by_words_genre_or_style_and_verdict(web):
    body = _get(web, q="CLIP metal")  # every word, case apart, somewhere in the song's names, tags and genres
    assert [r["name"] for r in body["rows"]] == ["metal.wav"]
    assert _get(web, q="bebop song")["total"] == 16 and _get(web, q="ALBUM")["total"] == 150
    assert _get(web, genre="jazz")["total"] == 17  # case apart: 16 recorded and the jazz clip
    assert _get(web, genre="Bebop")["total"] == 16
    unsure = _get(web, verdict="unsure", limit=200)
    assert unsure["total"] == 50 and {r["verdict"] for r in unsure["rows"]} == {"unsure"}
    assert _get(web, q="no such song")["total"] == 0


def test_pages_are_capped_and_cover_every_song_once(web):
    seen = []
    for offset in range(0, 200, 60):
        body = _get(web, sort="certainty", offset=offset, limit=60)
        assert len(body["rows"]) <= 60 and body["offset"] == offset
        seen += [r["id"] for r in body["rows"]]
    assert len(seen) == len(set(seen)) == 155
    assert _get(web)["limit"] == 50 and len(_get(web)["rows"]) == 50


@pytest.mark.parametrize(("query", "named"), [
    ({"limit": 201}, "limit"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"sort": "path"}, "sort"),
    ({"order": "up"}, "order"), ({"verdict": "maybe"}, "verdict"), ({"q": "x" * 201}, "q"),
    ({"offset": "ten"}, "offset"),
])
def test_bad_parameters_are_422_naming_the_parameter(web, query, named):
    r = web.client.get("/api/library", params=query)
    assert r.status_code == 422 and r.json()["error"].startswith(f"{named}:"), r.text


def test_plays_only_files_the_index_names(web):
    song = web.ids["jazz"]
    audio = web.client.get(f"/api/library/{song}/audio")
    assert audio.status_code == 200 and audio.content == (web.lib / "jazz.wav").read_bytes()
    assert audio.headers["content-type"].startswith("audio/")
    part = web.client.get(f"/api/library/{song}/audio", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    for missing in (123456, web.ids["outside"], web.ids["gone"]):  # not indexed; outside the library; no file
        r = web.client.get(f"/api/library/{missing}/audio")
        assert r.status_code == 404 and "error" in r.json()
    assert web.client.get("/api/library/..%2F..%2Fetc%2Fpasswd/audio").status_code in (404, 422)
    r = web.client.get("/api/library/x/audio")
    assert r.status_code == 422 and r.json()["error"].startswith("song_id:")


def test_song_details_and_genre_over_time_from_the_stored_windows(web):
    song = web.client.get(f"/api/library/{web.ids['metal']}").json()
    assert song["genre"] == "Metal" and song["analysis"]["windows"]["starts"] == [0.0, 3.0, 6.0]
    assert "path" not in song and str(web.base_dir) not in str(song)
    png = web.client.get(song["timeline_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert web.client.get(f"/api/library/{web.ids['outside']}/timeline").status_code == 404
    page = web.client.get("/library")
    assert page.status_code == 200 and "library.js" in page.text
    assert 'href="/library"' in web.client.get("/").text
    script = web.client.get("/static/library.js").text
    assert "innerHTML" not in script and "https://" not in script  # text only, nothing from elsewhere


def test_serve_index_option_needs_one_worker(run_genrify, tmp_path):
    proc = run_genrify("serve", "--index", tmp_path / "index.sqlite", "--workers", "2", timeout=120)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [
        "genrify: error: --index serves from one worker: leave out --workers"], proc.stderr


@pytest.mark.parametrize("kind", ["no file", "journal only"])
def test_without_an_index_the_api_says_how_to_make_one(tmp_path, classifier, kind):
    from genrify.tagging.journal import TagJournal

    index = tmp_path / "data" / "tag-journal.sqlite"
    if kind == "journal only":  # `genrify predict --write-tags` made the file, `genrify tag` never ran
        TagJournal(path=index).close()
    app = create_app(Settings(library=str(tmp_path), library_db=str(tmp_path / "lib.sqlite"), scan="off"),
                     classifier=classifier, library_index=str(index))
    with ServerThread(app) as srv:
        body = httpx.get(srv.base + "/api/library", timeout=60).json()
        assert body["index"] is None and "genrify tag" in body["message"] and body["rows"] == []
        assert httpx.get(srv.base + "/api/library/1/audio", timeout=60).status_code == 404
    assert index.exists() == (kind == "journal only")  # looking never creates an index


# ---------------------------------------------------------------------------------------------- in Chromium


def _column(page, cell: str) -> list[str]:
    return page.locator(f"#songs tbody td.{cell}").all_inner_texts()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("size", [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_page_sorts_filters_plays_and_charts_in_chromium(size, tagged_server, chromium):
    width, height = size
    page = chromium.new_page(viewport={"width": width, "height": height})
    errors, dialogs = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(tagged_server.base + "/library")
    rows = page.locator("#songs tbody tr")
    rows.first.wait_for(timeout=30_000)
    assert rows.count() == 5 and "5 songs under Music" in page.locator("#summary").inner_text()
    assert page.locator("img[src=x]").count() == 0 and not dialogs  # the hostile name is text
    hostile = f"Mallory & <b>Co</b> – {XSS_TITLE}"
    names = lambda: _column(page, "col-name button")  # noqa: E731
    assert hostile in names() and page.get_by_text(f"{HOSTILE}.flac", exact=True).count() == 1
    assert page.locator("#songs tbody b, #songs tbody script").count() == 0
    assert names() == sorted(names(), key=str.casefold)
    page.click("th[data-sort=certainty] button")  # most certain first
    page.wait_for_function("() => document.querySelector('th[data-sort=certainty]').ariaSort === 'descending'")
    page.wait_for_function("() => document.body.dataset.loaded === '2'")
    sure = [float(t.rstrip("%")) for t in _column(page, "col-certainty")]
    assert sure == sorted(sure, reverse=True)

    genre = tagged_server.genres["metal"]
    page.select_option("#genre", genre)
    page.wait_for_function("() => document.body.dataset.loaded === '3'")
    assert set(_column(page, "col-genre")) == {genre}
    page.fill("#q", "metal.000")  # not "metal": words match genre names too
    page.wait_for_function("() => document.body.dataset.loaded === '4'")
    assert names() == ["metal.00000.wav"]

    page.click("#songs tbody td.col-name button")
    page.wait_for_selector("#song:not([hidden])")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0", timeout=30_000)
    page.wait_for_function("() => document.getElementById('timeline').naturalWidth > 0", timeout=30_000)
    assert genre in page.locator("#song-verdict").inner_text()
    box = page.locator("#timeline").bounding_box()
    assert box and box["width"] > width / 2 and box["x"] + box["width"] <= width
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def tagged_server(tmp_path_factory, gtzan_mini, classifier, run_genrify):
    """``genrify tag`` (a dry run) over five clips copied from gtzan-mini, one named and tagged like a script."""
    import soundfile as sf
    from mutagen.flac import FLAC

    base = tmp_path_factory.mktemp("tagged")
    lib = base / "Music"
    lib.mkdir()
    for genre in CLIPS:
        shutil.copy(gtzan_mini / genre / f"{genre}.00000.wav", lib)
    y, sr = sf.read(gtzan_mini / "hiphop" / "hiphop.00000.wav")
    sf.write(lib / f"{HOSTILE}.flac", y, sr, format="FLAC")
    tags = FLAC(lib / f"{HOSTILE}.flac")
    tags["artist"], tags["title"] = "Mallory & <b>Co</b>", XSS_TITLE
    tags.save()
    before = {p.name: p.read_bytes() for p in lib.iterdir()}
    run_genrify("tag", lib, "--index", base / "index.sqlite", timeout=600, check=True)
    assert {p.name: p.read_bytes() for p in lib.iterdir()} == before  # a dry run writes nothing
    with ResultsIndex(base / "index.sqlite") as index:
        songs = index.rows()
    assert len(songs) == 5 and all(s["analysis"]["windows"]["starts"] for s in songs)  # the dry run recorded them
    settings = Settings(library=str(lib), library_db=str(base / "lib.sqlite"), scan="off")
    with ServerThread(create_app(settings, classifier=classifier, library_index=str(base / "index.sqlite"))) as srv:
        srv.genres = {Path(s["path"]).stem.split(".")[0]: s["genre"] for s in songs}
        yield srv


@pytest.fixture(scope="module")
def chromium():
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
            "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


# ------------------------------------------------------------------------------------ bounded searches


def test_a_search_is_bounded_to_a_few_different_words(web):
    letters = " ".join("abcdefghijklmnopqrstuvwxyz" * 4)[:199]  # 100 one-letter words, 26 different
    r = web.client.get("/api/library", params={"q": letters})
    assert r.status_code == 422 and r.json()["error"].startswith("q: at most 8 different words"), r.text
    # Repeats and words inside another word add no condition, so they do not count.
    assert _get(web, q="song song son so s SONG")["total"] == 150
    assert _get(web, q="a b c d e f g h")["total"] >= 0


# ---------------------------------------------------------------------------- the file's genre, as it is now


def _taggable(tmp_path, gtzan_mini):
    """A library of two real WAVs analysed as Jazz, one of them carrying a genre of its own (Rock)."""
    from mutagen.wave import WAVE

    lib = tmp_path / "Music"
    lib.mkdir()
    analysis = _analysis("Jazz", "genre", 0.9) | {"genres": {"Jazz": 0.9, "Rock": 0.05, "Pop": 0.05}}
    ids = {}
    with ResultsIndex(tmp_path / "index.sqlite") as index:
        for n, name in enumerate(("plain", "own")):
            shutil.copyfile(gtzan_mini / "jazz" / f"jazz.0000{n}.wav", lib / f"{name}.wav")  # writable, unlike the data
            ids[name] = _add(index, lib / f"{name}.wav", n, analysis, {"title": name})
    own = WAVE(lib / "own.wav")
    own.add_tags()
    from mutagen.id3 import TCON

    own.tags.add(TCON(encoding=3, text=["Rock"]))
    own.save()
    return lib, ids


def test_rows_show_the_genre_the_file_carries_now_and_whether_it_was_written_or_undone(tmp_path, gtzan_mini,
                                                                                       classifier):
    from genrify.sources.tags import undo_genres, write_genre
    from genrify.tagging.journal import TagJournal

    lib, ids = _taggable(tmp_path, gtzan_mini)
    settings = Settings(library=str(lib), library_db=str(tmp_path / "lib.sqlite"), scan="off")
    with ServerThread(create_app(settings, classifier=classifier, library_index=str(tmp_path / "index.sqlite"))) as srv:
        def rows() -> dict:
            body = httpx.get(srv.base + "/api/library", timeout=60).json()
            return {r["id"]: (r["file_genres"], r["would_write"], r["tag"]) for r in body["rows"]}

        assert rows() == {ids["plain"]: ([], ["Jazz"], "not written"), ids["own"]: (["Rock"], ["Jazz"], "kept")}
        # What `genrify tag --write` and `genrify tag --undo` do to the file, journaled in the index's own file.
        with TagJournal(path=tmp_path / "index.sqlite", run="write-run") as journal:
            write_genre(lib / "plain.wav", ["Jazz"], journal=journal)
        assert rows()[ids["plain"]] == (["Jazz"], ["Jazz"], "written")
        with TagJournal(path=tmp_path / "index.sqlite", run="undo-run") as journal:
            undo_genres(journal=journal, run="write-run")
        assert rows()[ids["plain"]] == ([], ["Jazz"], "undone")
        song = httpx.get(f"{srv.base}/api/library/{ids['plain']}", timeout=60).json()
        assert song["file_genres"] == [] and song["tag"] == "undone" and song["genre"] == "Jazz"
        (lib / "own.wav").unlink()
        assert rows()[ids["own"]] == (None, [], "no file")


@pytest.mark.slow
@pytest.mark.browser
def test_page_shows_the_files_genre_after_a_write_and_its_undo_in_chromium(tmp_path, gtzan_mini, classifier,
                                                                           chromium):
    from genrify.sources.tags import undo_genres, write_genre
    from genrify.tagging.journal import TagJournal

    lib, ids = _taggable(tmp_path, gtzan_mini)
    with TagJournal(path=tmp_path / "index.sqlite", run="write-run") as journal:
        write_genre(lib / "plain.wav", ["Jazz"], journal=journal)
        undo_genres(journal=journal, run="write-run")
    settings = Settings(library=str(lib), library_db=str(tmp_path / "lib.sqlite"), scan="off")
    with ServerThread(create_app(settings, classifier=classifier, library_index=str(tmp_path / "index.sqlite"))) as srv:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(srv.base + "/library")
        page.locator("#songs tbody tr").first.wait_for(timeout=30_000)
        cells = {page.locator(f"#songs tbody tr[data-id='{i}'] td.col-name button").inner_text():
                 page.locator(f"#songs tbody tr[data-id='{i}'] td.col-file").inner_text() for i in ids.values()}
        assert cells["plain"].split("\n") == ["none", "written, then undone"]  # not the analysis' Jazz
        assert cells["own"].split("\n") == ["Rock", "its own genre kept"]
        page.click(f"#songs tbody tr[data-id='{ids['plain']}'] td.col-name button")
        page.wait_for_selector("#song:not([hidden])")
        assert page.locator("#song-tag").inner_text() == (
            "In the file now: none. genrify tag would write, with its default settings: Jazz (written, then undone).")
        page.close()
        assert not errors, errors
