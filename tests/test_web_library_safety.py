"""The library page against a hostile library or results index: files swapped for links out of the library,
index paths that climb out of it, rows too large or not JSON. A real uvicorn on 127.0.0.1, real WAV files,
real symbolic links and a real SQLite index (written through :class:`~genrify.tagging.index.ResultsIndex`,
then damaged with SQL as another program could).
"""

from __future__ import annotations

import shutil

import httpx
import pytest
from helpers.server import ServerThread, real_classifier
from test_web_library_page import GENRES, _add, _analysis, _get

from genrify.tagging.index import ResultsIndex
from genrify.web.app import create_app
from genrify.web.settings import Settings


@pytest.fixture(scope="module")
def classifier(request):
    return real_classifier(request)


@pytest.fixture
def small(tmp_path, gtzan_mini, classifier):
    """A library of two real clips and a secret next to it, served from a results index of our own."""
    lib, outside = tmp_path / "Music", tmp_path / "outside"
    lib.mkdir()
    outside.mkdir()
    for name in ("jazz", "metal"):
        shutil.copy(gtzan_mini / name / f"{name}.00000.wav", lib / f"{name}.wav")
    (outside / "shadow").write_bytes(b"root:$6$secret:19000:0:99999:7:::\n")
    with ResultsIndex(tmp_path / "index.sqlite") as index:
        ids = {name: _add(index, lib / f"{name}.wav", n, _analysis(name.title(), "genre", 0.9), {"title": name})
               for n, name in enumerate(("jazz", "metal"))}
        # A lexical check passes this one: it names the library, then climbs out of it.
        ids["climb"] = _add(index, lib / ".." / "outside" / "shadow", 7, _analysis("Rock", "genre", 0.9),
                            {"title": "climb"})
    settings = Settings(library=str(lib), library_db=str(tmp_path / "lib.sqlite"), scan="off")
    with ServerThread(create_app(settings, classifier=classifier, library_index=str(tmp_path / "index.sqlite"))) as srv:
        with httpx.Client(base_url=srv.base, timeout=60) as client:
            srv.client, srv.ids, srv.lib, srv.outside = client, ids, lib, outside
            yield srv


def test_a_song_swapped_for_a_link_out_of_the_library_is_not_served(small):
    song = small.ids["jazz"]
    assert small.client.get(f"/api/library/{song}/audio").status_code == 200
    (small.lib / "jazz.wav").unlink()
    (small.lib / "jazz.wav").symlink_to(small.outside / "shadow")
    for headers in ({}, {"Range": "bytes=0-9"}):
        r = small.client.get(f"/api/library/{song}/audio", headers=headers)
        assert r.status_code == 404 and b"secret" not in r.content and r.json()["error"], r.text
    assert small.client.head(f"/api/library/{song}/audio").status_code == 404
    # A link that stays inside the library is still a song of the library.
    (small.lib / "jazz.wav").unlink()
    (small.lib / "jazz.wav").symlink_to(small.lib / "metal.wav")
    assert small.client.get(f"/api/library/{song}/audio").content == (small.lib / "metal.wav").read_bytes()


def test_an_index_path_that_climbs_out_of_the_library_is_neither_listed_nor_served(small):
    names = [r["name"] for r in _get(small, limit=200)["rows"]]
    assert sorted(names) == ["jazz.wav", "metal.wav"]
    r = small.client.get(f"/api/library/{small.ids['climb']}/audio")
    assert r.status_code == 404 and b"secret" not in r.content


def test_without_a_library_folder_a_song_is_served_from_its_own_folder_only(tmp_path, gtzan_mini, classifier):
    from genrify.web.library_page import LibraryPage

    folder = tmp_path / "songs"
    folder.mkdir()
    shutil.copy(gtzan_mini / "jazz" / "jazz.00000.wav", folder / "jazz.wav")
    (tmp_path / "shadow").write_bytes(b"secret")
    with ResultsIndex(tmp_path / "index.sqlite") as index:
        song = _add(index, folder / "jazz.wav", 1, _analysis("Jazz", "genre", 0.9), {"title": "jazz"})
    app = create_app(Settings(library=str(tmp_path / "lib"), library_db=str(tmp_path / "lib.sqlite"), scan="off"),
                     classifier=classifier, library_index=str(tmp_path / "index.sqlite"))
    app.state.library_page = LibraryPage(tmp_path / "index.sqlite")  # as `serve --index` without a library
    with ServerThread(app) as srv:
        assert httpx.get(f"{srv.base}/api/library/{song}/audio", timeout=60).status_code == 200
        (folder / "jazz.wav").unlink()
        (folder / "jazz.wav").symlink_to(tmp_path / "shadow")
        r = httpx.get(f"{srv.base}/api/library/{song}/audio", timeout=60)
        assert r.status_code == 404 and b"secret" not in r.content


# ------------------------------------------------------------------------------- a damaged or hostile index


def test_damaged_rows_are_skipped_and_reported_and_a_huge_analysis_is_never_loaded(tmp_path, gtzan_mini, classifier):
    import json
    import sqlite3

    lib = tmp_path / "Music"
    lib.mkdir()
    shutil.copy(gtzan_mini / "jazz" / "jazz.00000.wav", lib / "jazz.wav")
    with ResultsIndex(tmp_path / "index.sqlite") as index:
        good = _add(index, lib / "jazz.wav", 1, _analysis("Jazz", "genre", 0.9), {"title": "jazz"})
        bad = {kind: _add(index, lib / f"{kind}.wav", n, _analysis("Rock", "genre", 0.9), {"title": kind})
               for n, kind in enumerate(("huge", "tags", "analysis", "shape"), start=2)}
    windows = 300_000  # 28 MB of JSON: the hostile row of the issue
    huge = _analysis("Rock", "genre", 0.9) | {"windows": {"starts": [float(i) for i in range(windows)],
                                                          "labels": list(GENRES),
                                                          "probabilities": [[0.5, 0.25, 0.25]] * windows}}
    text = json.dumps(huge)
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("UPDATE songs SET analysis = ? WHERE id = ?", (text, bad["huge"]))
        db.execute("UPDATE songs SET tags = 'not json {' WHERE id = ?", (bad["tags"],))
        db.execute("UPDATE songs SET analysis = '{\"genre\": ' WHERE id = ?", (bad["analysis"],))
        db.execute("UPDATE songs SET tags = '[1, 2]' WHERE id = ?", (bad["shape"],))
    settings = Settings(library=str(lib), library_db=str(tmp_path / "lib.sqlite"), scan="off")
    with ServerThread(create_app(settings, classifier=classifier, library_index=str(tmp_path / "index.sqlite"))) as srv:
        body = httpx.get(srv.base + "/api/library", timeout=60).json()
        assert [r["id"] for r in body["rows"]] == [good] and body["total"] == 1
        skipped = {r["id"]: r["problem"] for r in body["skipped"]["rows"]}
        assert body["skipped"]["count"] == 4 and set(skipped) == set(bad.values())
        assert "characters" in skipped[bad["huge"]] and "not JSON" in skipped[bad["tags"]]
        assert "not JSON" in skipped[bad["analysis"]] and "shape" in skipped[bad["shape"]]
        for url in (f"/api/library/{bad['huge']}", f"/api/library/{bad['huge']}/timeline",
                    f"/api/library/{bad['tags']}"):
            r = httpx.get(srv.base + url, timeout=60)
            assert r.status_code == 404 and "skipped" in r.json()["error"], r.text
        assert httpx.get(srv.base + f"/api/library/{good}/timeline", timeout=60).status_code == 200


def test_tags_and_styles_holding_a_lone_surrogate_are_listed_searched_and_shown(tmp_path, gtzan_mini, classifier):
    """JSON's ``\\udcff`` escape is valid JSON for a text SQLite cannot store: the song is still listed,
    found, filtered and shown, its text sent back as the same escape."""
    import json
    import sqlite3

    lib = tmp_path / "Music"
    lib.mkdir()
    shutil.copy(gtzan_mini / "jazz" / "jazz.00000.wav", lib / "jazz.wav")
    with ResultsIndex(tmp_path / "index.sqlite") as index:
        song = _add(index, lib / "jazz.wav", 1, _analysis("Jazz", "genre", 0.9), {"title": "x"})
    analysis = _analysis("Jazz", "genre", 0.9, styles=("Bebop\udcff",))
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("UPDATE songs SET tags = ?, analysis = ? WHERE id = ?",
                   ('{"artist": "Caf\\udce9", "title": "Lone \\ud800 half"}', json.dumps(analysis), song))
    settings = Settings(library=str(lib), library_db=str(tmp_path / "lib.sqlite"), scan="off")
    with ServerThread(create_app(settings, classifier=classifier, library_index=str(tmp_path / "index.sqlite"))) as srv:
        for params in ({}, {"q": "lone half"}, {"genre": "jazz"}, {"sort": "artist"}, {"sort": "style"}):
            r = httpx.get(srv.base + "/api/library", params=params, timeout=60)
            assert r.status_code == 200 and [row["id"] for row in r.json()["rows"]] == [song], (params, r.text)
        assert r.json()["rows"][0]["artist"] == "Caf\udce9"
        for part in ("", "/timeline"):
            assert httpx.get(srv.base + f"/api/library/{song}{part}", timeout=60).status_code == 200
        assert httpx.get(srv.base + "/library", timeout=60).status_code == 200


def test_a_stored_timeline_genrify_could_not_have_written_is_not_drawn():
    """Finite but absurd values (a window starting 10^308 s before the song, probabilities of 10^308) have no
    chart to draw: a 404, not a 500 from the chart's axis."""
    from genrify.errors import NotFoundError
    from genrify.web.library_page import _stored_timeline

    good = _analysis("Jazz", "genre", 0.9)
    assert len(_stored_timeline(good)[0]) == 3
    for windows in ({"starts": [-1.7e308, 0.0, 3.0]}, {"starts": [0.0, 1e308, 3.0]}, {"starts": [6.0, 3.0, 0.0]},
                    {"probabilities": [[1e308, 0, 0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]},
                    {"probabilities": [[-0.5, 0, 0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]}):
        with pytest.raises(NotFoundError):
            _stored_timeline(good | {"windows": good["windows"] | windows})
    with pytest.raises(NotFoundError):
        _stored_timeline(good | {"duration": 1e308})


def test_a_row_grown_past_the_bound_after_listing_is_refused_not_loaded(tmp_path):
    import sqlite3

    from genrify.errors import DatasetError
    from genrify.tagging.listing import read_song

    with ResultsIndex(tmp_path / "index.sqlite") as index:
        song = _add(index, tmp_path / "a.wav", 1, _analysis("Jazz", "genre", 0.9), {"title": "a"})
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("UPDATE songs SET analysis = ? WHERE id = ?", ("[" + "0," * 3_000_000 + "0]", song))  # 6 MB
    with pytest.raises(DatasetError, match="over the"):
        read_song(tmp_path / "index.sqlite", song)


def test_a_search_past_its_step_budget_is_stopped_and_a_page_of_an_indexed_order_is_not(tmp_path):
    from genrify.tagging.library import Catalogue, LibraryView, QueryTooCostlyError

    rows = [{"id": i, "path": f"/music/Artist {i % 50}/abcdefgh {i}.mp3", "genre": "Rock", "verdict": "genre",
             "certainty": (i % 100) / 100, "styles": [],
             "tags": {"artist": f"Artist {i % 50}", "title": f"abcdefgh {i}"}} for i in range(5000)]
    # A budget smaller than one check: any statement reaching 100,000 steps is stopped there.
    cat = Catalogue(rows, summary=LibraryView(tmp_path / "none.sqlite")._summary, max_steps=1)
    with pytest.raises(QueryTooCostlyError, match="^q: the search would take too long"):
        cat.select(q="a b c d e f g h")  # every song has every letter: eight checks of 5,000 songs
    page = cat.select(sort="certainty", order="desc", offset=100, limit=50)
    assert page["total"] == 5000 and {r["certainty"] for r in page["rows"]} == {0.97}  # 50 songs of each value


def test_the_one_file_check_resolves_links_and_keeps_to_its_roots(tmp_path):
    """:func:`~genrify.web.audio_response.servable_file`, which every route serving a file goes through (the
    library page, the audit page, ``/api/audio``): real files, links, a FIFO and a folder."""
    import os

    from genrify.errors import NotFoundError
    from genrify.web.audio_response import servable_file

    lib, outside = tmp_path / "lib", tmp_path / "outside"
    (lib / "sub").mkdir(parents=True)
    outside.mkdir()
    (lib / "song.wav").write_bytes(b"RIFF")
    (outside / "shadow").write_bytes(b"secret")
    (lib / "inside-link.wav").symlink_to(lib / "song.wav")
    (lib / "outside-link.wav").symlink_to(outside / "shadow")
    (lib / "sub" / "up.wav").symlink_to("../../outside/shadow")
    os.mkfifo(lib / "fifo.wav")
    (tmp_path / "lib-link").symlink_to(lib)
    real, st = servable_file(lib / "inside-link.wav", roots=[lib])
    assert real == lib / "song.wav" and st.st_size == 4
    assert servable_file(tmp_path / "lib-link" / "song.wav", roots=[tmp_path / "lib-link"])[0] == lib / "song.wav"
    for bad in (lib / "outside-link.wav", lib / "sub" / "up.wav", lib / ".." / "outside" / "shadow", lib / "fifo.wav",
                lib / "sub", lib / "missing.wav"):
        with pytest.raises(NotFoundError) as err:
            servable_file(bad, roots=[lib])
        assert str(tmp_path) not in str(err.value)  # the file's name only, never where it lives


def test_library_searches_run_below_the_event_loop():
    """A search keeps a core busy for up to a second: its lane's thread runs niced, so the event loop that
    answers every other request wins the CPU (benchmarks/bench_library_page.py measures the effect)."""
    import asyncio
    import os
    import threading

    from genrify.errors import GenrifyError
    from genrify.web.admission import Lane
    from genrify.web.library_page import SEARCH_NICE

    lane = Lane(name="t", noun="task", capacity=1, max_waiting=1, wait_timeout=1.0, timeout_s=10.0, retry_after=1,
                timeout_error=GenrifyError, nice=SEARCH_NICE)
    try:
        base = os.getpriority(os.PRIO_PROCESS, 0)
        ran = asyncio.run(lane.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    finally:
        lane.close()
    assert SEARCH_NICE > 0 and ran == min(19, base + SEARCH_NICE)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the server itself is untouched
