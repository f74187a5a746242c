"""The web app's routes, served by a real uvicorn on 127.0.0.1 and spoken to over real HTTP.

The server runs the real ``GenreClassifier`` on a small library of synthetic
clips written into a temporary folder, plus a few hostile entries (a track
titled ``<script>…``, a link pointing out of the library). The audio routes are in
``test_web_audio_response.py``, remote providers in ``test_web_providers.py``, the
``genrify serve`` command in ``test_web_serve.py``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import subprocess
import sys
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from genrify.web.app import create_app  # noqa: E402
from genrify.web.lookup import NOT_FOUND_MESSAGE  # noqa: E402
from genrify.web.settings import Settings  # noqa: E402
from helpers.server import XSS_TITLE, ServerThread, make_library, raw_request, real_classifier  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UPLOAD_LIMIT = 1024 * 1024


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def web(tmp_path_factory, request):
    clf = real_classifier(request)
    base = tmp_path_factory.mktemp("web")
    library = base / "library"
    rows = make_library(library, base / "outside")
    settings = Settings(
        library=str(library), library_db=str(base / "library.sqlite"), scan="blocking",
        max_upload_bytes=UPLOAD_LIMIT, max_analyses=1, max_waiting=0, upload_timeout_s=2.0,
        cache_size=0,  # every request here analyses (and needs a slot); the cache: tests/test_web_cache.py
    )
    app = create_app(settings, classifier=clf)
    with ServerThread(app) as server:
        client = httpx.Client(base_url=server.base, timeout=60)
        server.client, server.rows, server.library, server.base_dir = client, rows, library, base
        yield server
        client.close()


def _song(web, genre="jazz"):
    row = next(r for r in web.rows if r["genre"] == genre)
    return row["artist"], row["title"], web.library / row["path"]


# ---------------------------------------------------------------------------- the original endpoint


def test_original_endpoint_has_the_exact_json_shape(web):
    artist, title, path = _song(web)
    r = web.client.get("/d/music-prediction", params={"artist": artist, "track": title})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"response", "first", "second", "mfcc", "mp3"}
    assert body["response"] is True
    for key in ("first", "second"):
        genre, p = body[key]
        assert isinstance(genre, str) and genre
        assert isinstance(p, float) and 0.0 <= p <= 1.0
    assert body["first"][1] >= body["second"][1]
    assert body["first"][0] != body["second"][0]
    assert base64.b64decode(body["mfcc"]).startswith(PNG_SIGNATURE)
    audio = web.client.get(body["mp3"])
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/mpeg"
    assert audio.content == path.read_bytes()


def test_not_found(web):
    r = web.client.get("/d/music-prediction", params={"artist": "Nobody", "track": "No Such Song Anywhere"})
    assert r.status_code == 200 and r.json() == {"response": False}
    r = web.client.get("/api/predict", params={"artist": "Nobody", "track": "No Such Song Anywhere"})
    assert r.status_code == 404
    n = len(web.rows) + 1  # the synthetic songs and the odd one
    assert r.json()["error"] == f"{NOT_FOUND_MESSAGE}; searched your library ({n} songs)"
    assert r.json()["searched"] == [f"your library ({n} songs)"]


def test_not_found_offers_the_closest_matches(web):
    artist, title, _ = _song(web, "jazz")
    r = web.client.get("/api/predict", params={"artist": "Someone Else Entirely", "track": title})
    assert r.status_code == 404
    assert {"artist": artist, "title": title} in r.json()["suggestions"]
    assert len(r.json()["suggestions"]) <= 3


def test_search_matches_words_and_substrings(web):
    artist, title, _ = _song(web, "classical")  # "Synthetic Classical Ensemble 1", "Study No. 1"
    found = web.client.get("/api/search", params={"track": "classical study"}).json()["results"]
    assert [(r["artist"], r["title"]) for r in found] == [(artist, title)]


def test_api_predict_returns_everything(web):
    artist, title, _ = _song(web, "metal")
    r = web.client.get("/api/predict", params={"artist": artist.lower(), "track": title, "top_k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["song"]["artist"] == artist and body["song"]["title"] == title
    assert body["verdict"] in ("genre", "unsure", "not_music") and body["message"]
    assert len(body["top"]) == 3
    probs = body["probabilities"]
    windows = body["windows"]
    assert set(probs) == set(windows["labels"])
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-2)
    assert body["top"][0][0] == max(probs, key=probs.get)
    assert len(windows["starts"]) == len(windows["probabilities"]) >= 1
    assert all(len(row) == len(windows["labels"]) for row in windows["probabilities"])
    assert base64.b64decode(body["images"]["features"]).startswith(PNG_SIGNATURE)
    assert base64.b64decode(body["images"]["timeline"]).startswith(PNG_SIGNATURE)
    assert body["audio_url"].endswith(f"/api/audio/library/{body['song']['id']}")
    lean = web.client.get("/api/predict", params={"artist": artist, "track": title, "images": "false"}).json()
    assert "images" not in lean and lean["probabilities"] == probs


def test_search_and_examples(web):
    artist, title, _ = _song(web)
    hits = web.client.get("/api/search", params={"artist": artist.upper(), "track": title.replace(".", "")}).json()
    assert hits["results"][0]["title"] == title
    assert hits["results"][0]["audio_url"].startswith(web.base)
    examples = web.client.get("/api/examples").json()["examples"]
    assert examples and all({"artist", "title"} <= set(e) for e in examples)
    health = web.client.get("/healthz").json()
    assert health["status"] == "ok" and health["sources"] == ["library"] and health["library"]["tracks"] >= 6


# ---------------------------------------------------------------------------- uploads


def test_upload_gives_the_same_answer_as_search(web):
    artist, title, path = _song(web, "classical")
    by_search = web.client.get("/api/predict", params={"artist": artist, "track": title, "images": "false"}).json()
    data = path.read_bytes()
    multipart = web.client.post("/api/predict", files={"file": (path.name, data, "audio/mpeg")})
    assert multipart.status_code == 200, multipart.text
    body = multipart.json()
    assert body["upload"] == {"filename": path.name, "bytes": len(data)}
    assert base64.b64decode(body["images"]["features"]).startswith(PNG_SIGNATURE)
    for key, p in by_search["probabilities"].items():
        assert body["probabilities"][key] == pytest.approx(p, abs=1e-3)
    raw = web.client.post("/api/predict?images=false", content=data, headers={"content-type": "audio/mpeg"})
    assert raw.status_code == 200 and raw.json()["top"] == body["top"]


def test_too_large_upload_is_refused_while_streaming(web):
    sent = [0]

    def body():
        chunk = b"\0" * 65536
        for _ in range(3 * UPLOAD_LIMIT // len(chunk)):
            sent[0] += len(chunk)
            yield chunk

    # No Content-Length (chunked): the server must count while reading.
    r = web.client.post("/api/predict", content=body(), headers={"content-type": "application/octet-stream"})
    assert r.status_code == 413
    assert "limit" in r.json()["error"] and "MB" in r.json()["error"]
    # A declared length over the limit is refused before a single body byte is sent.
    t0 = time.perf_counter()
    status, response = raw_request(web.port, (
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/mpeg\r\n"
        f"Content-Length: {50 * 1024 * 1024 * 1024}\r\nConnection: close\r\n\r\n").encode())
    assert status == 413 and b'"error"' in response
    assert time.perf_counter() - t0 < 5


def test_slow_upload_times_out(web):
    t0 = time.perf_counter()
    status, response = raw_request(web.port, (
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/mpeg\r\n"
        "Content-Length: 1000\r\nConnection: close\r\n\r\nID3").encode(), timeout=20)
    assert status == 408 and b"upload took longer" in response
    assert time.perf_counter() - t0 < 15


@pytest.mark.parametrize(
    "name, data, ctype, statuses",
    [
        ("notes.txt", b"this is a text file, not a song\n" * 20, "text/plain", {415}),
        ("song.mp3", b"just text pretending to be an mp3\n" * 20, "audio/mpeg", {415}),
        ("empty.mp3", b"", "audio/mpeg", {415, 422}),
        ("image.png", PNG_SIGNATURE + b"\0" * 200, "image/png", {415}),
        ("noise.wav", os.urandom(4096), "audio/wav", {415, 422}),
    ],
)
def test_non_audio_uploads_get_a_clear_json_error(web, name, data, ctype, statuses):
    r = web.client.post("/api/predict", files={"file": (name, data, ctype)})
    assert r.status_code in statuses, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]


def test_bad_input_corpus_through_the_upload(web, tmp_path):
    from helpers.badinput import make_bad_corpus

    for case in make_bad_corpus(tmp_path / "bad"):
        if case.skip or not case.path.is_file() or not os.access(case.path, os.R_OK):
            continue  # missing files, folders and unreadable files cannot be uploaded
        size = case.path.stat().st_size
        if size > 4 * UPLOAD_LIMIT:
            continue  # streaming a huge file just to see the 413 again is slow
        with open(case.path, "rb") as fh:
            r = web.client.post("/api/predict?images=false", files={"file": (case.path.name, fh, "audio/mpeg")})
        assert r.status_code in (200, 408, 413, 415, 422), (case.name, r.status_code, r.text)
        if r.status_code != 200:
            assert r.json()["error"], case.name
        elif case.expect == "error":
            pytest.fail(f"{case.name}: expected an error, got {r.text[:200]}")
    assert web.client.get("/healthz").status_code == 200


# ---------------------------------------------------------------------------- limits and hardening


def test_busy_server_answers_503_with_retry_after(web):
    artist, title, _ = _song(web)
    limiter = web.app.state.genrify.limiter
    assert limiter.try_acquire()  # every analysis slot taken (max_analyses=1, max_waiting=0)
    try:
        r = web.client.get("/api/predict", params={"artist": artist, "track": title})
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert "busy" in r.json()["error"]
        r = web.client.get("/d/music-prediction", params={"artist": artist, "track": title})
        assert r.status_code == 503 and "retry-after" in r.headers
    finally:
        limiter.release()
    assert web.client.get("/api/predict", params={"artist": artist, "track": title}).status_code == 200


def test_concurrent_requests_are_bounded_not_queued(web):
    artist, title, _ = _song(web)

    def call(_):
        with httpx.Client(base_url=web.base, timeout=60) as c:
            return c.get("/api/predict", params={"artist": artist, "track": title, "images": "false"}).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(call, range(6)))
    assert set(statuses) <= {200, 503} and 200 in statuses
    assert web.client.get("/healthz").json()["analyses"]["running"] == 0


def test_an_analysis_past_the_time_limit_is_a_504_and_the_slot_comes_back(tmp_path, request):
    """The limit is set far below any real analysis: the client gets a JSON 504 at once,
    the abandoned analysis finishes in the background and frees its slot."""
    clf = real_classifier(request)
    rows = make_library(tmp_path / "library", tmp_path / "outside")
    settings = Settings(library=str(tmp_path / "library"), library_db=str(tmp_path / "library.sqlite"),
                        scan="blocking", max_analyses=1, max_waiting=0, analysis_timeout_s=0.001,
                        cache_size=0)  # the abandoned analysis's answer would be cached: every request analyses here
    row = next(r for r in rows if r["genre"] == "jazz")
    params = {"artist": row["artist"], "track": row["title"]}
    with ServerThread(create_app(settings, classifier=clf)) as server, \
            httpx.Client(base_url=server.base, timeout=60) as client:
        r = client.get("/api/predict", params=params)
        assert r.status_code == 504 and r.json() == {"error": "the analysis took longer than 0.001 s"}
        assert client.get("/d/music-prediction", params=params).status_code in (503, 504)
        deadline = time.monotonic() + 60
        while client.get("/healthz").json()["analyses"]["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/healthz").json()["analyses"]["running"] == 0
        assert client.get("/api/predict", params=params).status_code == 504  # a slot was free again


def test_text_from_tags_is_never_html(web):
    r = web.client.get("/api/search", params={"artist": "mallory & <b>co</b>", "track": XSS_TITLE})
    assert r.status_code == 200
    assert b"<script>" not in r.content and b"<b>" not in r.content  # written as \u003c...
    hit = r.json()["results"][0]
    assert hit["title"] == XSS_TITLE and hit["artist"] == "Mallory & <b>Co</b>"
    assert r.headers["x-content-type-options"] == "nosniff"
    p = web.client.get("/api/predict", params={"artist": "", "track": XSS_TITLE, "images": "false"})
    assert p.status_code == 200 and b"<script>" not in p.content
    assert p.json()["song"]["title"] == XSS_TITLE
    e = web.client.post("/api/predict", files={"file": (XSS_TITLE + ".txt", b"plain text here", "text/plain")})
    assert b"<script>" not in e.content


def test_cors_is_closed_and_headers_are_strict(web):
    r = web.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    pre = web.client.options("/api/predict", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    page = web.client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert web.client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_page_and_docs_work_offline(web):
    page = web.client.get("/").text
    for needle in ("Predict!", 'id="artist"', 'id="track"', 'type="file"', "<audio", " controls"):
        assert needle in page
    assert "Pause song" not in page  # the player's own control pauses
    assert "http://" not in page and "https://" not in page  # nothing from a CDN
    for asset in ("/static/app.js", "/static/style.css", "/static/docs.js"):
        r = web.client.get(asset)
        assert r.status_code == 200 and "https://" not in r.text
    assert "innerHTML" not in web.client.get("/static/app.js").text
    docs = web.client.get("/docs")
    assert docs.status_code == 200 and "https://" not in docs.text and "/static/docs.js" in docs.text
    spec = web.client.get("/openapi.json").json()
    assert {"/d/music-prediction", "/api/predict", "/api/search", "/api/audio/{source}/{track_id}", "/healthz"} <= set(
        spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert not [p for p in spec["paths"] if p.startswith("/api/audit")]  # no --audit: no audit API offered


def test_bad_parameters_are_json_errors(web):
    r = web.client.get("/api/predict", params={"artist": "x", "track": ""})
    assert r.status_code == 422 and "track" in r.json()["error"]
    r = web.client.get("/api/predict", params={"track": "x", "top_k": 0})
    assert r.status_code == 422 and r.json()["error"]
    r = web.client.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}


@pytest.mark.parametrize("route", ["/api/predict", "/api/search", "/d/music-prediction"])
@pytest.mark.parametrize("value", [None, "", "   "], ids=["missing", "empty", "blank"])
def test_a_missing_or_empty_required_parameter_is_a_422_naming_it(web, route, value, caplog):
    params = {"artist": "Anyone"} if value is None else {"artist": "Anyone", "track": value}
    r = web.client.get(route, params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error.startswith("track: ") and ("missing" in error or "empty" in error), error
    assert "Traceback" not in caplog.text


def test_settings_and_app_creation_do_no_work():
    settings = Settings.from_env({"GENRIFY_MAX_UPLOAD_MB": "5", "GENRIFY_PROVIDERS": "library, deezer",
                                  "GENRIFY_MODEL": "/nonexistent.genrify"})
    assert settings.max_upload_bytes == 5 * 1024 * 1024 and settings.providers == ("library", "deezer")
    assert settings.host == "127.0.0.1" and settings.cors_origins == ()
    assert Settings.from_env(settings.to_env()) == settings
    app = create_app(settings)  # no model is loaded until the server starts
    assert not hasattr(app.state, "genrify")
    code = ("import sys, genrify.web.app, genrify.web.routes, genrify.cli.serve; "
            "print('torch' in sys.modules, 'genrify.predict' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
