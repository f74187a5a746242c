"""Every route that serves audio answers through one helper (:mod:`genrify.web.audio_response`): the whole
file, the byte ranges a player asks for (206), 416 for a range that cannot be served, ``Accept-Ranges: bytes``.

Each route is asked over real HTTP, on a real uvicorn on 127.0.0.1: ``/api/audio/{source}/{id}`` (a library
of synthetic clips with a link leaving it), ``/api/library/{id}/audio`` (a real results index of ``genrify tag``)
and the audit page's ``/api/audit/audio/{finding}/{track}`` (a dataset built and audited by genrify).
"""

from __future__ import annotations

import shutil

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from genrify.web.app import create_app  # noqa: E402
from genrify.web.audio_response import range_satisfiable  # noqa: E402
from genrify.web.settings import Settings  # noqa: E402
from helpers.server import ServerThread, make_library, raw_get, real_classifier  # noqa: E402


def assert_serves_ranges(client: httpx.Client, url: str, data: bytes, *, media_type: str) -> None:
    """``url`` serves ``data`` whole, in any satisfiable range (206, the right bytes), and answers 416 otherwise."""
    size = len(data)
    full = client.get(url)
    assert full.status_code == 200 and full.content == data, (url, full.status_code)
    assert full.headers["accept-ranges"] == "bytes" and full.headers["content-type"] == media_type
    part = client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.headers["accept-ranges"] == "bytes"
    assert part.headers["content-range"] == f"bytes 100-1099/{size}"
    assert part.content == data[100:1100]
    tail = client.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    rest = client.get(url, headers={"Range": f"bytes={size - 10}-"})
    assert rest.status_code == 206 and rest.content == data[-10:]
    past_end = client.get(url, headers={"Range": f"bytes=0-{size + 5000}"})  # served up to the last byte
    assert past_end.status_code == 206 and past_end.content == data
    for bad in (f"bytes={size}-", f"bytes={size + 1000}-{size + 2000}", "bytes=500-100", "bytes=abc", "items=0-1",
                "bytes=-0", "bytes=" + ",".join(["0-1"] * 17), "bytes=" + "9" * 5000 + "-"):
        r = client.get(url, headers={"Range": bad})
        assert r.status_code == 416, (url, bad[:40])
        assert r.headers["content-range"] == f"bytes */{size}" and r.headers["accept-ranges"] == "bytes"


def test_range_satisfiable_reads_the_header_as_rfc_9110_says():
    size = 1000
    for ok in ("bytes=0-0", "bytes=0-999", "bytes=999-", "bytes=-1", "bytes=-5000", "bytes=0-99,200-299",
               "bytes=990-5000"):
        assert range_satisfiable(ok, size=size), ok
    for bad in ("bytes=1000-", "bytes=20-10", "bytes=-0", "bytes=", "bytes=-", "bytes=a-b", "items=0-1", "0-1",
                "bytes=0-1,", "bytes=" + "1" * 19 + "-"):
        assert not range_satisfiable(bad, size=size), bad
    assert not range_satisfiable("bytes=0-0", size=0)  # nothing in an empty file can be asked for


# ---------------------------------------------------------------------------- /api/audio and the library page


@pytest.fixture(scope="module")
def web(tmp_path_factory, request):
    """A library of synthetic MP3s, and a results index of ``genrify tag`` naming one of them."""
    from genrify.tagging.index import ResultsIndex

    base = tmp_path_factory.mktemp("audio-response")
    library = base / "library"
    rows = make_library(library, base / "outside")
    tagged = library / rows[0]["path"]
    with ResultsIndex(base / "index.sqlite") as index:
        song_id = index.add_song(
            path=str(tagged), digest="0" * 64, size=tagged.stat().st_size, mtime_ns=tagged.stat().st_mtime_ns,
            model="m", analysis={"genre": "Jazz", "verdict": "genre", "top": [["Jazz", 0.9]], "styles": []},
            tags={"artist": rows[0]["artist"], "album": None, "title": rows[0]["title"], "genres": []})
    settings = Settings(library=str(library), library_db=str(base / "library.sqlite"), scan="blocking", cache_size=0)
    app = create_app(settings, classifier=real_classifier(request), library_index=str(base / "index.sqlite"))
    with ServerThread(app) as server, httpx.Client(base_url=server.base, timeout=60) as client:
        server.client, server.rows, server.library, server.base_dir = client, rows, library, base
        server.tagged, server.song_id = tagged, song_id
        yield server


def test_the_library_audio_route_serves_ranges(web):
    artist, title, path = next((r["artist"], r["title"], web.library / r["path"]) for r in web.rows
                               if r["genre"] == "jazz")
    url = web.client.get("/api/search", params={"artist": artist, "track": title}).json()["results"][0]["audio_url"]
    assert_serves_ranges(web.client, url, path.read_bytes(), media_type="audio/mpeg")
    assert web.client.get(url).headers["cache-control"] == "private"
    head = web.client.head(url, headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.content == b"" and head.headers["content-range"].startswith("bytes 0-9/")
    head = web.client.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == path.stat().st_size


def test_the_tagged_songs_audio_route_serves_ranges(web):
    url = f"/api/library/{web.song_id}/audio"
    assert_serves_ranges(web.client, url, web.tagged.read_bytes(), media_type="audio/mpeg")
    assert web.client.head(url, headers={"Range": "bytes=0-9"}).status_code == 206


def test_a_file_gone_since_it_was_indexed_is_a_404_not_a_500(web):
    moved = web.tagged.with_name(web.tagged.name + ".moved")
    web.tagged.rename(moved)
    try:
        for url in (f"/api/library/{web.song_id}/audio", f"/api/audio/library/{_library_id(web, web.tagged)}"):
            r = web.client.get(url, headers={"Range": "bytes=0-9"})
            assert r.status_code == 404 and r.json()["error"], url
            assert str(web.base_dir) not in r.text
    finally:
        moved.rename(web.tagged)


def _library_id(web, path) -> str:
    artist, title = next((r["artist"], r["title"]) for r in web.rows if web.library / r["path"] == path)
    return web.client.get("/api/search", params={"artist": artist, "track": title}).json()["results"][0]["id"]


def test_audio_route_serves_only_indexed_tracks(web):
    from genrify.sources.library import track_id

    outside_file = web.base_dir / "outside" / "Secret Artist - Secret Song.wav"
    link = web.library / "Secret Artist - Secret Song.wav"
    assert link.is_symlink()
    # The linked song is not in the library at all.
    assert web.client.get("/api/search", params={"artist": "Secret Artist", "track": "Secret Song"}).json() == {
        "results": []}
    # Guessable ids of the link and of its target resolve to nothing.
    for tid in (track_id(str(outside_file.resolve())), track_id(str(link)), track_id(str(link.resolve()))):
        assert web.client.get(f"/api/audio/library/{tid}").status_code == 404
    secret = outside_file.read_bytes()[:64]
    attempts = [
        "/api/audio/library/../../../../etc/passwd",
        "/api/audio/library/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/api/audio/library/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/audio/library/%2e%2e/%2e%2e/etc/passwd",
        "/api/audio/library/%2fetc%2fpasswd",
        "/api/audio/library//etc/passwd",
        "/api/audio/library/" + str(outside_file).replace("/", "%2f"),
        "/api/audio/%2e%2e/" + "%2e%2e%2fetc%2fpasswd",
        "/api/audio/deezer/..%2f..%2fetc%2fpasswd",
        "/api/audio/itunes/123",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static/" + str(outside_file),
        "/static//etc/passwd",
    ]
    for target in attempts:
        status, response = raw_get(web.port, target)
        assert status in (400, 404, 405), (target, status)
        assert b"root:" not in response and secret not in response, target


# ---------------------------------------------------------------------------- the audit page


@pytest.mark.slow
def test_the_audit_audio_route_serves_ranges(tmp_path, request):
    """A dataset of synthetic clips with a copy filed under another genre: the audit names both copies."""
    import soundfile as sf

    from genrify.dataset.build import build_dataset
    from genrify.sources.synthetic import generate_clip

    for genre in ("jazz", "metal"):
        (tmp_path / "src" / genre).mkdir(parents=True)
        for seed in range(2):
            sf.write(tmp_path / "src" / genre / f"{genre}{seed}.wav", generate_clip(genre, seed=seed, duration=4.0),
                     22050)
    shutil.copy(tmp_path / "src" / "jazz" / "jazz0.wav", tmp_path / "src" / "metal" / "copy.wav")
    build_dataset(tmp_path / "src", tmp_path / "ds.gdb", workers=1)
    (tmp_path / "lib").mkdir()
    settings = Settings(library=str(tmp_path / "lib"), library_db=str(tmp_path / "lib.sqlite"), scan="off")
    app = create_app(settings, classifier=real_classifier(request), audit=str(tmp_path / "ds.gdb"))
    with ServerThread(app) as server, httpx.Client(base_url=server.base, timeout=300) as client:
        findings = client.get("/api/audit").json()["findings"]
        index = next(i for i, f in enumerate(findings) if f["tracks"] and f["tracks"][0]["name"] == "copy.wav")
        url = f"/api/audit/audio/{index}/0"
        assert_serves_ranges(client, url, (tmp_path / "src" / "metal" / "copy.wav").read_bytes(),
                             media_type="audio/wav")
        assert client.get(f"/api/audit/audio/{index}/9", headers={"Range": "bytes=0-9"}).status_code == 404
        assert "/api/audit" in client.get("/openapi.json").json()["paths"]  # with --audit, its API is offered
