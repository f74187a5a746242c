"""The fake providers' HTTP side: the request handler that routes Deezer's and iTunes' API paths
and the previews, and plays the faults switched on with :meth:`~helpers.fakeprovider.FakeProvider.fail`.

The handler reads the catalogue, the signed preview URLs and the faults from the
:class:`~helpers.fakeprovider.FakeProvider` it serves (its ``fake`` attribute).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from helpers.fakeprovider.catalogue import GENRE_NAMES

if TYPE_CHECKING:
    from helpers.fakeprovider import FakeProvider

#: The kinds of misbehaviour :meth:`~helpers.fakeprovider.FakeProvider.fail` switches on (described there).
FAULTS = ("body", "delay", "quota", "500", "429", "malformed", "slow", "trickle", "huge", "huge_chunked", "html",
          "html_as_audio", "redirect_loop", "drop", "forbidden")


@dataclass
class Fault:
    """One switched-on misbehaviour: requests whose path matches ``pattern`` get ``kind``, ``times`` times."""

    pattern: re.Pattern
    kind: str
    times: int | None = None       # None: every matching request
    delay: float = 5.0             # for "delay", "slow" and "trickle"
    size: int = 3 * 1024 * 1024    # for "huge"
    body: bytes = b""              # for "body"
    hits: int = 0


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", text.casefold()).strip()


class Server(ThreadingHTTPServer):
    """A threaded HTTP server whose request threads never hold up the test process's exit."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client hanging up is not news
        pass


class Handler(BaseHTTPRequestHandler):
    """Answers one request from the state of ``fake`` (set on a subclass by :meth:`FakeProvider.start`)."""

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
