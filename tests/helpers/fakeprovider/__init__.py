"""A local fake of Deezer's and iTunes' APIs: a real HTTP server on 127.0.0.1 for the provider tests.

It answers with the providers' JSON shapes for a small catalogue and serves the
previews, generated at start-up from the synthetic corpus (MP3 for Deezer via
libsndfile, M4A/AAC for iTunes via PyAV). Preview URLs are signed
(``?hdnea=<token>``); ``token_single_use`` / ``token_ttl`` make them expire as
Deezer's CDN links do. Misbehaviour is switched per route with :meth:`FakeProvider.fail`.

This module holds the server and its controls; ``catalogue`` what it serves (tracks,
playlists, preview audio), ``routes`` the HTTP handler (API paths, previews, faults).

Routes::

    /deezer/search?q=...            /deezer/track/{id}
    /deezer/search/playlist?q=...   /deezer/playlist/{id}/tracks?index=&limit=
    /itunes/search?term=...         /itunes/lookup?id=
    /media/mp3/{id}.mp3?hdnea=...   /media/m4a/{id}.m4a?hdnea=...
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from http.server import ThreadingHTTPServer

from helpers.fakeprovider.catalogue import GENRE_NAMES, FakeTrack, default_catalogue, encode_m4a, encode_mp3, make_clip
from helpers.fakeprovider.routes import FAULTS, Fault, Handler, Server


class FakeProvider:
    """The server; use as a context manager (``with FakeProvider() as fp: fp.deezer_url``)."""

    def __init__(self, tracks=None, playlists=None, *, clip_seconds: float = 2.0, sr: int = 22050,
                 page_size: int = 4):
        if tracks is None:
            tracks, playlists = default_catalogue()
        self.tracks = {t.id: t for t in tracks}
        self.playlists = {p.id: p for p in (playlists or [])}
        self.clip_seconds, self.sr, self.page_size = clip_seconds, sr, page_size
        self.token_single_use = False
        self.token_ttl: float | None = None
        self.faults: list[Fault] = []
        self.requests: list[str] = []          # "path?query" of every request, in order
        self._tokens: dict[str, list] = {}     # token -> [track_id, issued_at, uses]
        self._audio: dict[tuple[int, str], bytes] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> FakeProvider:
        handler = type("Handler", (Handler,), {"fake": self})
        self._server = Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def deezer_url(self) -> str:
        return self.url + "/deezer"

    @property
    def itunes_url(self) -> str:
        return self.url + "/itunes"

    # -- control ---------------------------------------------------------------------

    def fail(self, pattern: str, kind: str, *, times: int | None = None, delay: float = 5.0,
             size: int = 3 * 1024 * 1024, body: bytes = b"") -> Fault:
        """Make requests whose path (with query) matches ``pattern`` misbehave as ``kind``.

        Kinds: ``body`` (answer ``body`` as ``audio/mpeg``), ``delay`` (answer normally after ``delay`` s), ``quota`` (Deezer's
        quota error body, code 4), ``500``, ``429``
        (``Retry-After: 0``), ``forbidden`` (403), ``malformed`` (cut-off JSON),
        ``slow`` (no answer for ``delay`` s), ``trickle`` (audio headers, then a
        few bytes at a time for ``delay`` s), ``huge`` / ``huge_chunked`` (a
        ``size``-byte body with / without ``Content-Length``), ``html`` (an HTML
        page), ``html_as_audio`` (an HTML page labelled ``audio/mpeg``),
        ``redirect_loop`` (302 to itself), ``drop`` (hang up without answering).
        ``times`` limits how many requests misbehave (``None``: all).
        """
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}")
        fault = Fault(re.compile(pattern), kind, times, delay, size, body)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset(self) -> None:
        """Back to good behaviour: no faults, URLs that do not expire, an empty request log."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()
        self.token_single_use = False
        self.token_ttl = None

    def count(self, pattern: str) -> int:
        """How many requests so far had a path (with query) matching ``pattern``."""
        rx = re.compile(pattern)
        with self._lock:
            return sum(1 for r in self.requests if rx.search(r))

    def audio_bytes(self, track_id: int, fmt: str) -> bytes:
        """The encoded preview of a track (``fmt`` is ``"mp3"`` or ``"m4a"``), made once and kept."""
        key = (int(track_id), fmt)
        with self._lock:
            data = self._audio.get(key)
        if data is None:
            t = self.tracks[int(track_id)]
            y = make_clip(t.genre, seed=t.seed, sr=self.sr, duration=self.clip_seconds)
            data = encode_mp3(y, self.sr) if fmt == "mp3" else encode_m4a(y, self.sr)
            with self._lock:
                self._audio[key] = data
        return data

    # -- catalogue → provider JSON ---------------------------------------------------

    def preview_url(self, track: FakeTrack, fmt: str) -> str:
        if not track.has_preview:
            return ""
        token = secrets.token_hex(8)
        with self._lock:
            self._tokens[token] = [track.id, time.monotonic(), 0]
        return f"{self.url}/media/{fmt}/{track.id}.{fmt}?hdnea=exp~{token}"

    def token_ok(self, token: str, track_id: int) -> bool:
        with self._lock:
            item = self._tokens.get(token)
            if item is None or item[0] != track_id:
                return False
            if self.token_ttl is not None and time.monotonic() - item[1] > self.token_ttl:
                return False
            if self.token_single_use and item[2] >= 1:
                return False
            item[2] += 1
            return True

    def deezer_track(self, t: FakeTrack) -> dict:
        return {
            "id": t.id, "readable": True, "title": t.title, "title_short": t.title,
            "link": f"https://www.deezer.com/track/{t.id}", "duration": t.duration, "rank": 500000,
            "preview": self.preview_url(t, "mp3"),
            "artist": {"id": abs(hash(t.artist)) % 10**6, "name": t.artist, "type": "artist"},
            "album": {"id": abs(hash(t.album)) % 10**6, "title": t.album, "type": "album"},
            "type": "track",
        }

    def itunes_track(self, t: FakeTrack) -> dict:
        item = {
            "wrapperType": "track", "kind": "song", "trackId": t.id, "artistName": t.artist,
            "collectionName": t.album, "trackName": t.title, "trackTimeMillis": t.duration * 1000,
            "primaryGenreName": GENRE_NAMES.get(t.genre, t.genre), "country": "USA", "currency": "USD",
        }
        if t.has_preview:
            item["previewUrl"] = self.preview_url(t, "m4a")
        return item
