"""Deezer and iTunes sources, the HTTP edge and the preview cache, against a real local fake provider."""

from __future__ import annotations

import dataclasses
import socket
import time

import numpy as np
import pytest

from genrify.errors import NotFoundError, ProviderError
from genrify.sources.base import SongRef
from genrify.sources.cache import PreviewCache
from genrify.sources.deezer import DeezerSource
from genrify.sources.http import HttpClient, HttpConfig, ProviderRequestError
from genrify.sources.itunes import ITunesSource
from helpers.fakeprovider.catalogue import encode_mp3

#: Small limits so that every misbehaviour resolves in well under a second or two.
FAST = HttpConfig(connect_timeout=1.0, read_timeout=0.4, deadline=1.0, retries=2, backoff=0.01, max_backoff=0.05)


@pytest.fixture
def client():
    with HttpClient(FAST) as c:
        yield c


@pytest.fixture
def cache(tmp_path):
    return PreviewCache(tmp_path / "cache")


@pytest.fixture(params=["deezer", "itunes"])
def provider(request, fp, client, cache):
    if request.param == "deezer":
        return DeezerSource(fp.deezer_url, cache=cache, client=client)
    return ITunesSource(fp.itunes_url, cache=cache, client=client)


def cached_objects(cache: PreviewCache) -> list:
    return [p for p in (cache.root / "objects").rglob("*") if p.is_file()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- search and fetch -------------------------------------------------------------------


def test_search_finds_the_song_and_fetch_gives_the_servers_audio(provider, fp):
    refs = provider.search(artist="Metal Band 1", track="Metal Song 2")
    assert refs and refs[0].title == "Metal Song 2" and refs[0].artist == "Metal Band 1"
    assert refs[0].source == provider.name and refs[0].id == "1001"
    assert refs[0].duration == 180.0 and refs[0].album == "Metal Album"
    fmt = "mp3" if provider.name == "deezer" else "m4a"
    # Encoded before the fetch: the fake encodes a preview on its first request, and PyAV's AAC encoder
    # on a busy machine can take longer than FAST's 0.4 s read timeout, which is the client's to keep.
    expected = fp.audio_bytes(1001, fmt)
    path = provider.fetch_audio(refs[0])
    assert path.suffix == f".{fmt}"
    assert path.read_bytes() == expected
    from genrify.audio import load_audio

    y, sr = load_audio(path, sr=None)
    assert sr == fp.sr and abs(len(y) / sr - fp.clip_seconds) < 0.2


def test_search_is_case_and_punctuation_tolerant_and_empty_when_nothing_matches(provider):
    assert [r.id for r in provider.search(artist="jazz band 2", track="JAZZ SONG 4!")] == ["1009"]
    assert provider.search(artist="Nobody", track="Nothing") == []
    assert provider.search(artist="", track="") == []


def test_search_skips_songs_without_a_preview(provider):
    assert provider.search(artist="Silent Band", track="No Preview Here") == []


def test_deezer_falls_back_to_a_plain_search(fp, client, cache):
    dz = DeezerSource(fp.deezer_url, cache=cache, client=client)
    refs = dz.search(artist="Band 2 Metal", track="Song 4")  # no artist:"..." match, plain words do
    assert [r.id for r in refs] == ["1003"]


def test_itunes_search_ranks_exact_artist_first(fp, client, cache):
    it = ITunesSource(fp.itunes_url, cache=cache, client=client)
    refs = it.search(artist="Metal Band 1", track="Metal Song 1", limit=5)
    assert {r.id for r in refs[:2]} == {"1000", "9003"}  # loose matches ("Band 1") come after
    assert len(refs) > 2 and refs[0].genre == "Metal"


def test_lookup_of_an_unknown_track_is_not_found(provider):
    with pytest.raises(NotFoundError):
        provider.lookup("424242")
    with pytest.raises(NotFoundError):
        provider.lookup("../../etc/passwd")
    with pytest.raises(NotFoundError):
        provider.fetch_audio(SongRef(provider.name, "9002", "Silent Band", "No Preview Here"))


def test_deezer_genre_listing_pages_through_playlists(fp, client, cache):
    dz = DeezerSource(fp.deezer_url, cache=cache, client=client)
    ids = [r.id for r in dz.genre_tracks("metal")]
    expected = [str(i) for p in (fp.playlists[100], fp.playlists[101]) for i in p.track_ids if i != 9002]
    assert ids == expected  # page size 4: every page of both playlists, no preview-less track
    assert fp.count(r"/playlist/100/tracks\?index=4") == 1
    assert [r.id for r in dz.genre_tracks("metal", limit=3)] == expected[:3]
    assert list(dz.genre_tracks("polka")) == []


def test_itunes_genre_listing_keeps_only_that_primary_genre(fp, client, cache):
    it = ITunesSource(fp.itunes_url, cache=cache, client=client)
    refs = list(it.genre_tracks("jazz"))
    assert refs and all(r.genre == "Jazz" for r in refs)
    assert len(list(it.genre_tracks("classical", limit=2))) == 2


# -- the cache --------------------------------------------------------------------------


def test_cache_is_by_content_and_indexed_by_track(tmp_path):
    cache = PreviewCache(tmp_path)
    y = np.zeros(4000, dtype=np.float32)
    data = encode_mp3(y, 8000)
    p1 = cache.put("deezer", "1", data, artist="A", title="T")
    p2 = cache.put("deezer", "2", data, artist="A", title="T (Remaster)")
    assert p1 == p2 and len(cached_objects(cache)) == 1 and len(cache) == 2
    import hashlib

    assert p1.stem == hashlib.sha256(data).hexdigest() and p1.suffix == ".mp3"
    assert cache.path_for("deezer", "1") == p1 and cache.path_for("itunes", "1") is None
    e = cache.entry("deezer", "2")
    assert (e.artist, e.title, e.size) == ("A", "T (Remaster)", len(data)) and e.fetched_at > 0
    cache.forget("deezer", "2")
    assert cache.path_for("deezer", "2") is None and cache.path_for("deezer", "1") == p1
    # a new cache object on the same folder sees the same index
    assert PreviewCache(tmp_path).path_for("deezer", "1") == p1


def test_cache_refuses_what_is_not_audio_and_serves_only_whole_indexed_files(tmp_path):
    cache = PreviewCache(tmp_path)
    with pytest.raises(ProviderError):
        cache.put("deezer", "1", b"<!DOCTYPE html><html>nope</html>")
    assert len(cache) == 0 and cached_objects(cache) == []
    # a file dropped into the objects folder is not served: only indexed files are
    (tmp_path / "objects" / "ab").mkdir(parents=True)
    (tmp_path / "objects" / "ab" / ("ab" * 32 + ".mp3")).write_bytes(b"ID3" + b"\0" * 100)
    assert cache.path_for("deezer", "1") is None
    # a truncated cached file counts as missing
    path = cache.put("deezer", "7", encode_mp3(np.zeros(4000, dtype=np.float32), 8000))
    path.write_bytes(path.read_bytes()[:50])
    assert cache.path_for("deezer", "7") is None
    assert list(tmp_path.rglob("*.part")) == []


def test_fetch_uses_the_cache_and_never_the_network_on_a_hit(provider, fp, cache):
    ref = provider.search(artist="Classical Band 1", track="Classical Song 2")[0]
    first = provider.fetch_audio(ref)
    before = fp.count(r"^/(media|deezer|itunes)/")
    assert provider.fetch_audio(ref) == first
    assert fp.count(r"^/(media|deezer|itunes)/") == before


def test_expired_signed_url_is_re_resolved_by_track_id(provider, fp, cache):
    fp.token_single_use = True
    ref = provider.search(artist="Jazz Band 1", track="Jazz Song 2")[0]
    path = provider.fetch_audio(ref)  # uses (and so expires) the URL from the search answer
    lookup = r"/deezer/track/1007" if provider.name == "deezer" else r"/itunes/lookup\?id=1007"
    assert fp.count(lookup) == 0
    path.unlink()  # the cached file is gone: the track id is all that is stored
    assert cache.path_for(provider.name, ref.id) is None
    again = provider.fetch_audio(ref)  # the remembered URL now answers 403 → look the track up again
    fmt = "mp3" if provider.name == "deezer" else "m4a"
    assert again == path and again.read_bytes() == fp.audio_bytes(1007, fmt)
    assert fp.count(lookup) == 1


def test_a_fresh_source_needs_only_the_track_id(fp, client, cache):
    dz = DeezerSource(fp.deezer_url, cache=cache, client=client)
    ref = SongRef("deezer", "1014", "Classical Band 1", "Classical Song 3")  # e.g. read back from an index
    path = dz.fetch_audio(ref)
    assert path.read_bytes() == fp.audio_bytes(1014, "mp3")
    assert fp.count(r"/deezer/track/1014") == 1


def test_old_remembered_urls_are_not_trusted(fp, client, cache):
    dz = DeezerSource(fp.deezer_url, cache=cache, client=client, url_ttl=0.0)
    ref = dz.search(artist="Metal Band 2", track="Metal Song 5")[0]
    dz.fetch_audio(ref)
    assert fp.count(r"/deezer/track/1004") == 1


# -- misbehaving providers -------------------------------------------------------------


def _search(provider):
    return provider.search(artist="Metal Band 1", track="Metal Song 3")


def _api_route(provider) -> str:
    return r"^/deezer/search\?" if provider.name == "deezer" else r"^/itunes/search\?"


def test_http_500_is_retried_with_bounded_attempts(provider, fp):
    fp.fail(_api_route(provider), "500")
    t0 = time.monotonic()
    with pytest.raises(ProviderError, match="HTTP 500") as info:
        _search(provider)
    assert time.monotonic() - t0 < 2
    assert info.value.reason == "status" and info.value.status == 500
    assert fp.count(_api_route(provider)) == FAST.retries + 1
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["500", "429", "drop"])
def test_a_passing_fault_is_survived_by_retrying(provider, fp, kind):
    fp.fail(_api_route(provider), kind, times=1)
    assert _search(provider)[0].title == "Metal Song 3"
    assert fp.count(_api_route(provider)) == 2


def test_malformed_json_is_a_provider_error(provider, fp):
    fp.fail(_api_route(provider), "malformed")
    with pytest.raises(ProviderRequestError, match="malformed JSON") as info:
        _search(provider)
    assert info.value.reason == "bad_json"
    assert fp.count(_api_route(provider)) == 1  # a bad answer is not retried


def test_a_slow_server_times_out_within_the_read_timeout(provider, fp):
    fp.fail(_api_route(provider), "slow", delay=3.0)
    t0 = time.monotonic()
    with pytest.raises(ProviderRequestError, match="timeout") as info:
        _search(provider)
    assert time.monotonic() - t0 < FAST.read_timeout + 1.5  # margin for a loaded machine
    assert info.value.reason == "timeout"


@pytest.mark.parametrize("kind", ["huge", "huge_chunked"])
def test_a_huge_json_answer_is_cut_off(provider, fp, kind):
    fp.fail(_api_route(provider), kind, size=3 * 1024 * 1024)
    with pytest.raises(ProviderRequestError, match="more than 2097152 bytes") as info:
        _search(provider)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize(
    "kind, reason",
    [("html", "not_audio"), ("html_as_audio", "not_audio"), ("redirect_loop", "redirects"),
     ("huge_chunked", "too_large"), ("huge", "too_large"), ("trickle", "timeout"), ("500", "status"),
     ("forbidden", "status")],
)
def test_a_bad_preview_is_an_error_for_that_song_and_nothing_is_cached(provider, fp, cache, kind, reason):
    small = dataclasses.replace(FAST, max_audio_bytes=1024 * 1024)
    with HttpClient(small) as c:
        source = type(provider)(provider.base_url, cache=cache, client=c)
        ref = source.search(artist="Jazz Band 2", track="Jazz Song 5")[0]
        fp.fail(r"^/media/", kind, size=2 * 1024 * 1024, delay=3.0)
        t0 = time.monotonic()
        with pytest.raises(ProviderRequestError) as info:
            source.fetch_audio(ref)
        assert info.value.reason == reason, str(info.value)
        assert time.monotonic() - t0 < 4
        assert "hdnea" not in str(info.value)  # signed tokens never reach messages
        assert len(cache) == 0 and cached_objects(cache) == [] and list(cache.root.rglob("*.part")) == []
        # the server stays up and the same song works once it behaves
        fp.clear_faults()
        assert source.fetch_audio(ref).is_file() and len(cache) == 1


def test_deezer_error_payloads(fp, client, cache):
    dz = DeezerSource(fp.deezer_url, cache=cache, client=client)
    with pytest.raises(NotFoundError):
        dz.lookup("31337")
    fp.fail(r"^/deezer/search\?", "quota", times=1)  # Deezer's quota error is a 200 with an error body
    assert dz.search(artist="Metal Band 1", track="Metal Song 3")
    assert fp.count(r"^/deezer/search\?") == 2
    fp.fail(r"^/deezer/search\?", "quota")
    with pytest.raises(ProviderError, match="Quota limit exceeded"):
        dz.search(artist="Metal Band 1", track="Metal Song 3")


def test_an_unreachable_provider_says_so_in_one_line(client, cache):
    port = free_port()
    for cls in (DeezerSource, ITunesSource):
        source = cls(f"http://127.0.0.1:{port}", cache=cache, client=client)
        with pytest.raises(ProviderRequestError) as info:
            source.search(artist="a", track="b")
        assert str(info.value) == f"cannot reach 127.0.0.1:{port}: connection refused"
        assert info.value.reason == "unreachable"


def test_a_dns_failure_reads_as_offline(cache):
    with HttpClient(HttpConfig(connect_timeout=1.0, read_timeout=1.0, retries=0)) as c:
        source = DeezerSource("http://no-such-host.invalid", cache=cache, client=c)
        t0 = time.monotonic()
        with pytest.raises(ProviderError, match=r"^cannot reach no-such-host\.invalid: offline or DNS failure$"):
            source.search(artist="a", track="b")
        assert time.monotonic() - t0 < 30  # name resolution is bounded by the system resolver, not httpx


# -- the bad-input corpus served as previews ---------------------------------------------

#: Cases about the local file system (directories, links, permissions), meaningless over HTTP.
_FILESYSTEM_CASES = {"directory_named_mp3", "missing_file", "symlink_loop", "no_read_permission"}
#: One sample is valid audio at its own rate (previews are checked at their native rate).
_OK_AT_NATIVE_RATE = {"one_sample_48k"}


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    badinput = pytest.importorskip("helpers.badinput")
    cases = badinput.make_bad_corpus(tmp_path_factory.mktemp("bad"))
    return [c for c in cases if c.name not in _FILESYSTEM_CASES]


def test_bad_previews_are_refused_or_decoded_and_only_good_ones_cached(fp, client, tmp_path, bad_corpus):
    for i, case in enumerate(bad_corpus):
        cache = PreviewCache(tmp_path / f"cache{i}")
        source = DeezerSource(fp.deezer_url, cache=cache, client=client)
        body = case.path.read_bytes()
        fp.reset()
        fp.fail(r"^/media/", "body", body=body)
        ref = SongRef("deezer", "1010", "Jazz Band 2", "Jazz Song 5")
        t0 = time.monotonic()
        if case.expect == "error" and case.name not in _OK_AT_NATIVE_RATE:
            with pytest.raises(ProviderRequestError) as info:
                source.fetch_audio(ref)
            assert info.value.reason == "not_audio", (case.name, str(info.value))
            assert "\n" not in str(info.value)
            assert len(cache) == 0 and cached_objects(cache) == [], case.name
        else:
            path = source.fetch_audio(ref)
            assert path.read_bytes() == body, case.name
        assert time.monotonic() - t0 < 5, case.name
