"""The sources the web app searches: the library, then remote providers in the configured order.

The providers are a local fake of Deezer's and iTunes' APIs (:mod:`helpers.fakeprovider`) on 127.0.0.1,
behind a real uvicorn serving the real ``GenreClassifier``; previews are cached in a temporary folder.
"""

from __future__ import annotations

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from genrify.web.app import create_app  # noqa: E402
from genrify.web.lookup import NOT_FOUND_MESSAGE  # noqa: E402
from genrify.web.providers import build_sources  # noqa: E402
from genrify.web.settings import Settings  # noqa: E402
from helpers.server import ServerThread, make_library, real_classifier  # noqa: E402


def test_unknown_or_missing_providers_are_skipped():
    sources = build_sources(Settings(providers=("library", "nosuch", "deezer")), None)
    assert [s.name for s in sources] in (["deezer"], [])


@pytest.fixture(scope="module")
def web_providers(tmp_path_factory, request):
    from helpers.fakeprovider import FakeProvider

    clf = real_classifier(request)
    base = tmp_path_factory.mktemp("web-providers")
    library = base / "library"
    rows = make_library(library, base / "outside")
    with pytest.MonkeyPatch.context() as mp, FakeProvider() as fake:
        mp.setenv("GENRIFY_CACHE_DIR", str(base / "cache"))  # previews are cached here, not in ~/.cache
        settings = Settings(
            library=str(library), library_db=str(base / "library.sqlite"), scan="blocking",
            providers=("library", "deezer", "itunes"), deezer_url=fake.deezer_url, itunes_url=fake.itunes_url,
        )
        with ServerThread(create_app(settings, classifier=clf)) as server:
            server.client = httpx.Client(base_url=server.base, timeout=60)
            server.rows, server.fake = rows, fake
            yield server
            server.client.close()


def test_providers_are_tried_in_order(web_providers):
    srv, fake = web_providers, web_providers.fake
    fake.reset()
    assert srv.client.get("/healthz").json()["sources"] == ["library", "deezer", "itunes"]
    # In the library: the library answers, no provider is asked.
    row = srv.rows[0]
    r = srv.client.get("/api/predict", params={"artist": row["artist"], "track": row["title"], "images": "false"})
    assert r.status_code == 200 and r.json()["song"]["source"] == "library"
    assert fake.count("/deezer/search") == 0
    # Not in the library: Deezer's preview is fetched, cached, analysed and served by id (seekable).
    r = srv.client.get("/d/music-prediction", params={"artist": "Metal Band 1", "track": "Metal Song 2"})
    body = r.json()
    assert r.status_code == 200 and body["response"] is True and "/api/audio/deezer/" in body["mp3"]
    audio = srv.client.get(body["mp3"], headers={"Range": "bytes=0-9"})
    assert audio.status_code == 206 and audio.headers["content-type"] == "audio/mpeg" and len(audio.content) == 10
    # A preview never fetched is not served; nor is anything named by a path.
    assert srv.client.get("/api/audio/deezer/999999").status_code == 404
    assert srv.client.get("/api/audio/deezer/..%2f..%2fetc%2fpasswd").status_code == 404


def test_a_failing_provider_is_skipped(web_providers):
    srv, fake = web_providers, web_providers.fake
    fake.reset()
    fake.fail(r"^/deezer/", "500")
    r = srv.client.get("/api/predict", params={"artist": "Jazz Band 1", "track": "Jazz Song 2", "images": "false"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["song"]["source"] == "itunes" and body["song"]["title"] == "Jazz Song 2"
    assert srv.client.get(body["audio_url"]).headers["content-type"] == "audio/mp4"
    # Every provider down: "not found", with a hint to try again; the server stays up.
    fake.fail(r"^/itunes/", "malformed")
    r = srv.client.get("/api/predict", params={"artist": "Classical Band 1", "track": "Classical Song 1"})
    assert r.status_code == 404
    assert r.json()["error"].startswith(NOT_FOUND_MESSAGE) and r.json()["retry"] is True
    assert r.json()["searched"][1:] == ["Deezer", "iTunes"]  # providers are named only when enabled
    assert srv.client.get("/d/music-prediction", params={"artist": "x", "track": "Classical Song 1"}).json() == {
        "response": False}
    fake.reset()
    # A track without a preview is simply not found.
    r = srv.client.get("/api/predict", params={"artist": "Silent Band", "track": "No Preview Here"})
    assert r.status_code == 404
    assert srv.client.get("/healthz").status_code == 200
