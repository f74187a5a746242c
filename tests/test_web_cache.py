"""The analysis cache of ``genrify serve``: the LRU itself, its key, single flight, and a real server using it.

The end-to-end tests run the app under a real uvicorn on 127.0.0.1 with the real
bundled classifier, and upload real audio files (synthetic clips written here).
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from genrify.errors import ConfigError
from genrify.fileio import file_digest
from genrify.web.cache import AnalysisCache, CacheKey, analysis_key, cached_answer, model_identity, stored_answer
from genrify.web.settings import Settings


def key(n: int, **options) -> CacheKey:
    return CacheKey(content=f"{n:032x}", model="sha256:m", mode="full", **{"top_k": 2, "images": False,
                                                                         "legacy_mfcc": False, **options})


def answer(n: int) -> dict:
    return {"top": [["Rock", 0.5 + n / 100]], "windows": {"probabilities": [[0.1, 0.9]]}}


# ---------------------------------------------------------------------------- the LRU


def test_lru_keeps_the_most_recently_used_and_is_bounded():
    cache = AnalysisCache(max_entries=2)
    calls = []

    def compute(n):
        calls.append(n)
        return answer(n)

    for n in (1, 2):
        assert cache.get_or_compute(key(n), lambda n=n: compute(n)) == (answer(n), False)
    assert cache.get_or_compute(key(1), lambda: compute(99)) == (answer(1), True)  # 1 is now the most recent
    cache.get_or_compute(key(3), lambda: compute(3))  # evicts 2, the least recently used
    assert len(cache) == 2 and key(1) in cache and key(3) in cache and key(2) not in cache
    assert cache.get_or_compute(key(2), lambda: compute(2)) == (answer(2), False)  # analysed again
    assert key(1) not in cache  # ... and that evicted 1
    assert calls == [1, 2, 3, 2]
    assert cache.stats() == {"entries": 2, "max_entries": 2, "hits": 1, "joined": 0, "waiting": 0, "misses": 4}


def test_answers_are_copies():
    cache = AnalysisCache(max_entries=4)
    first, _ = cache.get_or_compute(key(1), lambda: answer(1))
    first["top"][0][1] = -1.0  # the caller edits its answer (as analyse_audio adds elapsed_ms)
    first["cached"] = False
    second, hit = cache.get_or_compute(key(1), lambda: answer(2))
    assert hit and second == answer(1)
    second["windows"]["probabilities"][0][0] = 7.0
    assert cache.get_or_compute(key(1), lambda: answer(3)) == (answer(1), True)


def test_size_zero_is_off_and_a_key_of_none_is_never_stored():
    off = AnalysisCache(max_entries=0)
    calls = []
    for _ in range(3):
        assert off.get_or_compute(key(1), lambda: calls.append(1) or answer(1)) == (answer(1), False)
    assert len(calls) == 3 and len(off) == 0 and not off.enabled
    assert off.stats()["hits"] == 0 and off.stats()["misses"] == 3
    on = AnalysisCache(max_entries=4)
    on.get_or_compute(None, lambda: answer(1))
    assert len(on) == 0 and on.stats()["misses"] == 1
    with pytest.raises(ValueError):
        AnalysisCache(max_entries=-1)


def test_the_options_that_change_the_answer_are_in_the_key():
    cache = AnalysisCache(max_entries=8)
    for options in ({}, {"top_k": 3}, {"images": True}, {"legacy_mfcc": True}):
        _, hit = cache.get_or_compute(key(1, **options), lambda: answer(1))
        assert not hit
    assert len(cache) == 4


def test_an_error_is_not_cached():
    cache = AnalysisCache(max_entries=4)

    def fail():
        raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute(key(1), fail)
    assert len(cache) == 0
    assert cache.get_or_compute(key(1), lambda: answer(1)) == (answer(1), False)


# ---------------------------------------------------------------------------- the key


def test_the_key_is_the_file_bytes_and_the_model_file_and_its_mode(tmp_path):
    from genrify.predict import load_classifier
    from genrify.tagging.stage import content_hash

    song = tmp_path / "a.wav"
    song.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    same = tmp_path / "b.wav"
    shutil.copyfile(song, same)
    other = tmp_path / "c.wav"
    other.write_bytes(song.read_bytes() + b"\0")
    assert file_digest(song) == file_digest(same) == content_hash(song)[0] != file_digest(other)
    assert len(file_digest(song)) == 32

    default, gtzan = load_classifier(None), load_classifier("gtzan")  # two real model files
    gtzan_fast = load_classifier("gtzan", fast=True)
    assert default.model_file.sha256 and gtzan.model_file.sha256 != default.model_file.sha256
    keys = {name: analysis_key(clf, song, top_k=2, images=False)
            for name, clf in (("default", default), ("gtzan", gtzan), ("gtzan-fast", gtzan_fast))}
    assert keys["default"].model == f"sha256:{default.model_file.sha256}"
    assert keys["default"].model != keys["gtzan"].model and keys["default"].content == keys["gtzan"].content
    assert keys["gtzan"].model == keys["gtzan-fast"].model and keys["gtzan"].mode != keys["gtzan-fast"].mode
    assert len(set(keys.values())) == 3
    # The same model file loaded again is the same model; the same bytes under another name the same song.
    assert analysis_key(load_classifier(None), same, top_k=2, images=False) == keys["default"]
    # A model built in memory has no file checksum: it is named by this object, shared with no other.
    tagger = load_classifier("musicnn")
    assert model_identity(tagger)[0].startswith("memory:musicnn:")
    assert model_identity(tagger) != model_identity(load_classifier("musicnn"))


def test_a_file_that_cannot_be_hashed_is_analysed_uncached(tmp_path):
    import os

    cache = AnalysisCache(max_entries=4)
    fifo = tmp_path / "pipe.mp3"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        file_digest(fifo)  # refused at once, never blocks
    calls = []
    got = cached_answer(cache, object(), fifo, top_k=2, images=False, legacy_mfcc=False,
                        compute=lambda: calls.append(1) or answer(1))
    assert got == (answer(1), False) and calls == [1] and len(cache) == 0
    got = cached_answer(None, object(), b"bytes", top_k=2, images=False, legacy_mfcc=False, compute=lambda: answer(2))
    assert got == (answer(2), False)


def test_the_look_up_hands_its_key_to_the_analysis(tmp_path):
    # A miss before queueing returns the key it hashed; the analysis then stores under that key
    # without hashing the file again (here: the file is gone by then, so hashing would fail).
    from genrify.predict import load_classifier

    clf = load_classifier("musicnn")
    cache = AnalysisCache(max_entries=4)
    song = tmp_path / "song.mp3"
    song.write_bytes(b"some bytes")
    hit, looked_up = stored_answer(cache, clf, song, top_k=2, images=False, legacy_mfcc=False)
    assert hit is None and looked_up == analysis_key(clf, song, top_k=2, images=False)
    song.unlink()
    got = cached_answer(cache, clf, song, top_k=2, images=False, legacy_mfcc=False, key=looked_up,
                        compute=lambda: answer(3))
    assert got == (answer(3), False) and looked_up in cache
    song.write_bytes(b"some bytes")
    assert stored_answer(cache, clf, song, top_k=2, images=False, legacy_mfcc=False) == (answer(3), looked_up)
    assert stored_answer(None, clf, song, top_k=2, images=False, legacy_mfcc=False) == (None, None)


# ---------------------------------------------------------------------------- single flight


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _run_together(cache, n, compute, *, started, release) -> list:
    """``n`` threads ask ``cache`` for one key: the first starts ``compute``; once it has
    ``started``, the others ask and wait for it; then ``release`` lets it finish. What each
    thread got (an answer or the exception) comes back in the order they asked."""
    results: list = [None] * n

    def worker(i):
        try:
            results[i] = cache.get_or_compute(key(1), compute)
        except Exception as exc:  # the test looks at what each thread got
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    threads[0].start()
    assert started.wait(10)
    for t in threads[1:]:
        t.start()
    _wait_for(lambda: cache.stats()["waiting"] == n - 1)
    release.set()
    for t in threads:
        t.join(10)
    return results


def test_requests_for_the_same_key_wait_for_one_analysis():
    cache = AnalysisCache(max_entries=4)
    started, release, calls = threading.Event(), threading.Event(), []

    def compute():
        calls.append(1)
        started.set()
        assert release.wait(10)
        return answer(1)

    results = _run_together(cache, 5, compute, started=started, release=release)
    assert len(calls) == 1
    assert results[0] == (answer(1), False) and all(r == (answer(1), True) for r in results[1:])
    assert len({id(r[0]) for r in results}) == 5  # each its own copy
    assert cache.stats() | {"entries": 0} == {"entries": 0, "max_entries": 4, "hits": 4, "joined": 4, "waiting": 0,
                                               "misses": 1}


def test_when_the_analysis_fails_the_waiters_analyse_themselves():
    cache = AnalysisCache(max_entries=4)
    started, release, calls = threading.Event(), threading.Event(), []

    def compute():
        calls.append(1)
        if len(calls) == 1:
            started.set()
            assert release.wait(10)
            raise RuntimeError("the first analysis failed")
        return answer(1)

    results = _run_together(cache, 4, compute, started=started, release=release)
    assert isinstance(results[0], RuntimeError)  # the error went to its own request only
    assert all(r[0] == answer(1) for r in results[1:])
    assert len(calls) == 2  # one waiter analysed again; the others waited for it
    assert sorted(r[1] for r in results[1:]) == [False, True, True]


# ---------------------------------------------------------------------------- settings and command line


def test_settings_and_command_line():
    assert Settings().cache_size == 256
    assert Settings.from_env({"GENRIFY_ANALYSIS_CACHE": "0"}).cache_size == 0
    settings = Settings(cache_size=12)
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(ConfigError, match="cache size"):
        Settings(cache_size=-1)
    from genrify.cli import build_parser
    from genrify.cli.serve import _settings

    assert _settings(build_parser().parse_args(["serve"])).cache_size == 256
    assert _settings(build_parser().parse_args(["serve", "--cache-size", "0"])).cache_size == 0


# ---------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    import soundfile as sf
    from helpers.server import ServerThread, real_classifier
    from mutagen.flac import FLAC

    from genrify.sources.synthetic import generate_clip
    from genrify.web.app import create_app

    base = tmp_path_factory.mktemp("cache")
    library = base / "library"
    library.mkdir()
    sf.write(library / "Cache Artist - Cache Song.flac", generate_clip("jazz", seed=3, sr=22050, duration=4.0), 22050)
    songs = base / "songs"
    songs.mkdir()
    for name, style, seed in (("a.flac", "metal", 1), ("b.flac", "classical", 2)):
        sf.write(songs / name, generate_clip(style, seed=seed, sr=22050, duration=4.0), 22050, format="FLAC")
    shutil.copyfile(songs / "a.flac", songs / "a-tagged.flac")
    tags = FLAC(songs / "a-tagged.flac")
    tags["title"] = "the same audio, other bytes"
    tags.save()
    settings = Settings(library=str(library), library_db=str(base / "library.sqlite"), scan="blocking",
                        max_analyses=2, max_waiting=0, cache_size=8)
    with ServerThread(create_app(settings, classifier=real_classifier(request))) as running:
        running.client = httpx.Client(base_url=running.base, timeout=120)
        running.songs = songs
        yield running
        running.client.close()


def _upload(server, name, **params):
    path = server.songs / name
    r = server.client.post("/api/predict", params={"images": "false", **params},
                           files={"file": (name, path.read_bytes(), "audio/flac")})
    assert r.status_code == 200, r.text
    return r.json()


def _without_timing(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("cached", "elapsed_ms")}


def test_a_repeated_upload_is_answered_from_the_cache(server):
    before = server.client.get("/healthz").json()["cache"]
    first = _upload(server, "a.flac")
    again = _upload(server, "a.flac")
    assert first["cached"] is False and again["cached"] is True
    assert _without_timing(again) == _without_timing(first)
    assert set(again) == set(first)
    assert again["elapsed_ms"] < first["elapsed_ms"]
    other = _upload(server, "b.flac")
    assert other["cached"] is False and other["probabilities"] != first["probabilities"]
    # The key is the file's bytes: the same audio with a tag added is analysed again (and answers the same).
    tagged = _upload(server, "a-tagged.flac")
    assert tagged["cached"] is False and tagged["probabilities"] == first["probabilities"]
    # Options that change the answer are part of the key.
    assert _upload(server, "a.flac", top_k=3)["cached"] is False
    after = server.client.get("/healthz").json()["cache"]
    assert after["hits"] - before["hits"] == 1 and after["misses"] - before["misses"] == 4
    assert after["entries"] == before["entries"] + 4 and after["max_entries"] == 8


def test_a_repeated_library_look_up_is_answered_from_the_cache(server):
    params = {"artist": "Cache Artist", "track": "Cache Song", "images": "false"}
    first = server.client.get("/api/predict", params=params).json()
    again = server.client.get("/api/predict", params=params).json()
    assert first["song"]["title"] == "Cache Song"
    assert (first["cached"], again["cached"]) == (False, True)
    assert _without_timing(again) == _without_timing(first)
    # The original widget's endpoint (its own JSON shape, no "cached") is answered from the cache too.
    hits = server.client.get("/healthz").json()["cache"]["hits"]
    params.pop("images")
    original = [server.client.get("/d/music-prediction", params=params).json() for _ in range(2)]
    assert original[0]["response"] is True and original[0] == original[1]
    assert server.client.get("/healthz").json()["cache"]["hits"] == hits + 1


def test_a_cached_answer_does_not_wait_for_an_analysis_slot(server):
    first = _upload(server, "b.flac", top_k=4)
    lane = server.app.state.genrify.analyses.limiter
    held = 0
    try:
        while lane.try_acquire():  # the analysis lane is full: every slot busy, no room to wait
            held += 1
        assert held == 2
        r = server.client.post("/api/predict", params={"images": "false", "top_k": 5},
                               files={"file": ("b.flac", (server.songs / "b.flac").read_bytes(), "audio/flac")})
        assert r.status_code == 503 and "Retry-After" in r.headers  # not cached: it needs a slot
        again = _upload(server, "b.flac", top_k=4)
        assert again["cached"] is True and _without_timing(again) == _without_timing(first)
    finally:
        for _ in range(held):
            lane.release()
