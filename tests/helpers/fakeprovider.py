"""A local fake of Deezer's and iTunes' APIs: a real HTTP server on 127.0.0.1 for the provider tests.

It answers with the providers' JSON shapes for a small catalogue and serves the
previews, generated at start-up from the synthetic corpus (MP3 for Deezer via
libsndfile, M4A/AAC for iTunes via PyAV). Preview URLs are signed
(``?hdnea=<token>``); ``token_single_use`` / ``token_ttl`` make them expire as
Deezer's CDN links do. Misbehaviour is switched per route with :meth:`FakeProvider.fail`.

Routes::

    /deezer/search?q=...            /deezer/track/{id}
    /deezer/search/playlist?q=...   /deezer/playlist/{id}/tracks?index=&limit=
    /itunes/search?term=...         /itunes/lookup?id=
    /media/mp3/{id}.mp3?hdnea=...   /media/m4a/{id}.m4a?hdnea=...
"""

from __future__ import annotations

import io
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

FAULTS = ("body", "delay", "quota", "500", "429", "malformed", "slow", "trickle", "huge", "huge_chunked", "html",
          "html_as_audio", "redirect_loop", "drop", "forbidden")


@dataclass
class FakeTrack:
    id: int
    artist: str
    title: str
    genre: str          # the synthetic style that makes its audio
    album: str = "Fake Album"
    duration: int = 180
    has_preview: bool = True
    seed: int = 0


@dataclass
class Fault:
    pattern: re.Pattern
    kind: str
    times: int | None = None       # None: every matching request
    delay: float = 5.0             # for "delay", "slow" and "trickle"
    size: int = 3 * 1024 * 1024    # for "huge"
    body: bytes = b""              # for "body"
    hits: int = 0


@dataclass
class Playlist:
    id: int
    title: str
    track_ids: list[int] = field(default_factory=list)


GENRE_NAMES = {"metal": "Metal", "jazz": "Jazz", "classical": "Classical", "hiphop": "Hip-Hop/Rap", "edm": "Dance"}


def default_catalogue(per_genre: int = 6) -> tuple[list[FakeTrack], list[Playlist]]:
    """Tracks for metal, jazz and classical, plus the awkward cases the tests need.

    * track 9001 sits in a metal *and* a jazz playlist (a cross-genre duplicate);
    * track 9002 has no preview; track 9003 repeats the title of a metal track
      under another id (same song, other release);
    * track 9004 has path separators, control characters and quotes in its names.
    """
    tracks, playlists = [], []
    next_id = 1000
    for g, genre in enumerate(("metal", "jazz", "classical")):
        ids = []
        for i in range(per_genre):
            t = FakeTrack(next_id, f"{GENRE_NAMES[genre]} Band {i // 3 + 1}", f"{GENRE_NAMES[genre]} Song {i + 1}",
                          genre, album=f"{GENRE_NAMES[genre]} Album", seed=next_id)
            tracks.append(t)
            ids.append(t.id)
            next_id += 1
        half = len(ids) // 2
        playlists.append(Playlist(100 + 2 * g, f"{GENRE_NAMES[genre]} Classics", ids[:half]))
        playlists.append(Playlist(101 + 2 * g, f"Best of {GENRE_NAMES[genre]}", ids[half:]))
    shared = FakeTrack(9001, "Crossover Quartet", "Both Ways", "jazz", seed=9001)
    nopreview = FakeTrack(9002, "Silent Band", "No Preview Here", "metal", has_preview=False, seed=9002)
    rerelease = FakeTrack(9003, "Metal Band 1", "Metal Song 1", "metal", album="Greatest Hits", seed=9003)
    weird = FakeTrack(9004, "AC/DC\\Tribute", 'Back\x07 in "Black"\n', "metal", seed=9004)
    tracks += [shared, nopreview, rerelease, weird]
    by_id = {p.id: p for p in playlists}
    by_id[100].track_ids[1:1] = [9001, 9002, 9004]   # metal
    by_id[101].track_ids.append(9003)
    by_id[102].track_ids.insert(0, 9001)             # jazz
    return tracks, playlists


def _sine_clip(seed: int, sr: int, duration: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * duration)) / sr
    freqs = rng.uniform(110, 880, size=3)
    y = sum(np.sin(2 * np.pi * f * t) for f in freqs) / 6
    return y.astype(np.float32)


def make_clip(style: str, *, seed: int, sr: int, duration: float) -> np.ndarray:
    """Audio for a fake track: the synthetic corpus when available, else a sine mixture."""
    try:
        from genrify.sources.synthetic import generate_clip
    except ImportError:
        return _sine_clip(seed, sr, duration)
    return np.asarray(generate_clip(style, seed=seed, sr=sr, duration=duration), dtype=np.float32)


def encode_mp3(y: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="MP3")
    return buf.getvalue()


def encode_m4a(y: np.ndarray, sr: int) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


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
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
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


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", text.casefold()).strip()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client hanging up is not news
        pass


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProvider
    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, OSError):
            pass  # the client gave up (timeouts, size limits): expected in these tests

    # -- responses -------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str, *, length: bool = True, headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def _sleep(self, seconds: float) -> bool:
        return not self.fake._stop.wait(seconds)

    def _fault(self, target: str) -> bool:
        fake = self.fake
        with fake._lock:
            fault = None
            for f in fake.faults:
                if f.pattern.search(target) and (f.times is None or f.hits < f.times):
                    f.hits += 1
                    fault = f
                    break
        if fault is None:
            return False
        kind = fault.kind
        if kind == "delay":  # answer normally, only late
            return not self._sleep(fault.delay)
        if kind == "body":
            self._send(200, fault.body, "audio/mpeg")
        elif kind == "quota":
            self._json({"error": {"type": "Exception", "message": "Quota limit exceeded", "code": 4}})
        elif kind == "500":
            self._send(500, b"<html>Internal Server Error</html>", "text/html")
        elif kind == "429":
            self._send(429, b'{"error": "rate limited"}', "application/json", headers=[("Retry-After", "0")])
        elif kind == "forbidden":
            self._send(403, b"Forbidden", "text/plain")
        elif kind == "malformed":
            self._send(200, b'{"data": [{"id": 1, "title": "unterminated', "application/json")
        elif kind == "slow":
            if self._sleep(fault.delay):
                self._json({"data": []})
        elif kind == "trickle":
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            self.wfile.write(b"ID3")
            end = time.monotonic() + fault.delay
            while time.monotonic() < end and self._sleep(0.05):
                self.wfile.write(b"\x00" * 64)
                self.wfile.flush()
        elif kind in ("huge", "huge_chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if "/media/" not in target else "audio/mpeg")
            if kind == "huge":
                self.send_header("Content-Length", str(fault.size))
            self.end_headers()
            head = b'{"data": [' if "/media/" not in target else b"ID3"
            self.wfile.write(head)
            sent, block = len(head), b" " * 65536
            while sent < fault.size:
                self.wfile.write(block)
                sent += len(block)
        elif kind == "html":
            self._send(200, b"<!DOCTYPE html><html><body>Log in to listen</body></html>", "text/html; charset=utf-8")
        elif kind == "html_as_audio":
            self._send(200, b"<!DOCTYPE html><html><body>Log in to listen</body></html>", "audio/mpeg")
        elif kind == "redirect_loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
        return True

    # -- routing ---------------------------------------------------------------------

    def do_GET(self) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        with fake._lock:
            fake.requests.append(self.path)
        if self._fault(self.path):
            return
        q = {k: v[0] for k, v in query.items()}
        m = None
        if path == "/deezer/search":
            return self._json(self._deezer_search(q))
        if path == "/deezer/search/playlist":
            words = _norm(q.get("q", ""))
            found = [p for p in fake.playlists.values() if words and words in _norm(p.title)]
            return self._json({"data": [{"id": p.id, "title": p.title, "nb_tracks": len(p.track_ids),
                                         "type": "playlist"} for p in found], "total": len(found)})
        if m := re.fullmatch(r"/deezer/track/(\d+)", path):
            t = fake.tracks.get(int(m.group(1)))
            if t is None:
                return self._json({"error": {"type": "DataException", "message": "no data", "code": 800}})
            return self._json(fake.deezer_track(t))
        if m := re.fullmatch(r"/deezer/playlist/(\d+)/tracks", path):
            p = fake.playlists.get(int(m.group(1)))
            if p is None:
                return self._json({"error": {"type": "DataException", "message": "no data", "code": 800}})
            index = int(q.get("index", 0))
            limit = min(int(q.get("limit", 25)), fake.page_size)
            ids = p.track_ids[index:index + limit]
            body = {"data": [fake.deezer_track(fake.tracks[i]) for i in ids], "total": len(p.track_ids)}
            if index + limit < len(p.track_ids):
                body["next"] = f"https://api.deezer.com/playlist/{p.id}/tracks?index={index + limit}"
            return self._json(body)
        if path == "/itunes/search":
            return self._json(self._itunes_search(q))
        if path == "/itunes/lookup":
            t = fake.tracks.get(int(q["id"])) if q.get("id", "").isdigit() else None
            results = [fake.itunes_track(t)] if t else []
            return self._json({"resultCount": len(results), "results": results})
        if m := re.fullmatch(r"/media/(mp3|m4a)/(\d+)\.(mp3|m4a)", path):
            fmt, tid = m.group(1), int(m.group(2))
            token = q.get("hdnea", "").removeprefix("exp~")
            if tid not in fake.tracks or not fake.token_ok(token, tid):
                return self._send(403, b"<html>403 Forbidden: URL signature expired</html>", "text/html")
            ctype = "audio/mpeg" if fmt == "mp3" else "audio/mp4"
            return self._send(200, fake.audio_bytes(tid, fmt), ctype)
        self._send(404, b'{"error": "not found"}', "application/json")

    def _deezer_search(self, q: dict) -> dict:
        fake = self.fake
        text = q.get("q", "")
        limit = int(q.get("limit", 25))
        fields = dict(re.findall(r'(artist|track):"([^"]*)"', text))
        if fields:
            def match(t):
                return (_norm(fields.get("artist", "")) in _norm(t.artist)
                        and _norm(fields.get("track", "")) in _norm(t.title))
        else:
            words = _norm(text).split()

            def match(t):
                hay = _norm(f"{t.artist} {t.title}")
                return bool(words) and all(w in hay.split() for w in words)
        found = [t for t in fake.tracks.values() if match(t)][:limit]
        return {"data": [fake.deezer_track(t) for t in found], "total": len(found)}

    def _itunes_search(self, q: dict) -> dict:
        fake = self.fake
        limit = int(q.get("limit", 50))
        offset = int(q.get("offset", 0))
        words = _norm(q.get("term", "")).split()
        if q.get("attribute") == "genreIndex":
            def match(t):
                return _norm(q.get("term", "")) in _norm(GENRE_NAMES.get(t.genre, t.genre))
        else:
            def match(t):
                hay = _norm(f"{t.artist} {t.title} {t.album}").split()
                return bool(words) and all(w in hay for w in words)
        found = [t for t in fake.tracks.values() if match(t)][offset:offset + limit]
        return {"resultCount": len(found), "results": [fake.itunes_track(t) for t in found]}
