"""The network edge shared by the remote preview providers (Deezer, iTunes).

:class:`HttpClient` wraps ``httpx`` with the guards a client of strangers'
servers needs:

* connect and read timeouts, plus a wall-clock ``deadline`` per attempt so a
  server that trickles bytes cannot hold a request open forever;
* bounded retries with exponential back-off (``backoff``, ``2 × backoff``, …,
  capped at ``max_backoff``; ``Retry-After`` honoured up to that cap) on
  connection errors, HTTP 5xx and 429. Read timeouts are *not* retried: a server
  that is slow now is slow on the next attempt too, and the caller should get
  its answer within one timeout;
* a size limit enforced while streaming (JSON ≤ 2 MB, audio ≤ 20 MB by default),
  checked against ``Content-Length`` first and against the bytes received after;
* a redirect limit;
* a check that a "preview" really is audio: an HTML/JSON/text content type is
  refused before the body is read, and the body must start with an audio
  signature (:func:`genrify.audio.sniff_audio`: ID3 or an MPEG frame sync, MP4
  ``ftyp``, ``OggS``, ``fLaC``, RIFF/WAVE).

Every failure becomes :class:`ProviderRequestError` (a
:class:`~genrify.errors.ProviderError`) with a one-line message that names the
host and the path, never the query string (signed preview URLs carry tokens).

:class:`RemoteSource` is the part of a provider that does not depend on its API:
it remembers the preview URLs seen in search results for a short while, and
fetches a song's audio through the :class:`~genrify.sources.cache.PreviewCache`,
re-resolving the URL through the provider's track lookup whenever the
remembered URL is missing, old, or refused (signed URLs expire).
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from genrify.audio import load_audio, sniff_audio
from genrify.errors import GenrifyError, ProviderError
from genrify.sources.base import SongRef

#: Content types that are never audio, whatever the body looks like.
_NOT_AUDIO_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "image/")


class ProviderRequestError(ProviderError):
    """A request to a provider failed; ``reason`` says how.

    ``reason`` is one of ``"unreachable"``, ``"timeout"``, ``"status"``,
    ``"too_large"``, ``"bad_json"``, ``"not_audio"``, ``"redirects"``,
    ``"protocol"``; ``status`` holds the HTTP status for ``"status"``.
    """

    def __init__(self, message: str, *, reason: str, url: str = "", status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.url = url
        self.status = status


@dataclass(frozen=True)
class HttpConfig:
    """Timeouts (seconds), retry policy and size limits (bytes) of :class:`HttpClient`.

    ``retries`` counts the attempts after the first one, so the default makes at
    most 3 attempts, sleeping 0.5 s then 1 s in between.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 60.0
    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_json_bytes: int = 2 * 1024 * 1024
    max_audio_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    # The installed distribution's version, not the package root's ``__version__``:
    # importing ``genrify`` from here would make the sources depend on the package root.
    user_agent: str = f"genrify/{importlib.metadata.version('genrify')}"


@dataclass(frozen=True)
class AudioBytes:
    """A downloaded audio file: its bytes, the extension its signature implies, its content type."""

    data: bytes
    ext: str
    content_type: str


def _where(url: str) -> tuple[str, str]:
    parts = urlsplit(str(url))
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    return host, parts.path or "/"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _unreachable_reason(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, ConnectionRefusedError) or "refused" in str(e).lower():
            return "connection refused"
    return "offline or DNS failure"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """A small, guarded HTTP client: ``get_json`` for APIs, ``get_audio`` for previews.

    Thread-safe (one ``httpx.Client`` with its connection pool); close it, or use
    it as a context manager, when done.
    """

    def __init__(self, config: HttpConfig | None = None):
        import httpx

        self.config = config or HttpConfig()
        c = self.config
        self._httpx = httpx
        self._client = httpx.Client(
            timeout=httpx.Timeout(c.read_timeout, connect=c.connect_timeout, pool=c.connect_timeout),
            follow_redirects=True,
            max_redirects=c.max_redirects,
            headers={"User-Agent": c.user_agent},
        )

    # -- public -----------------------------------------------------------------

    def get_json(self, url: str, *, params: dict[str, Any] | None = None) -> Any:
        """GET ``url`` and parse its JSON body (at most ``max_json_bytes``)."""
        body, _ = self._get(url, params=params, limit=self.config.max_json_bytes, audio=False)
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            host, path = _where(url)
            raise ProviderRequestError(f"{host} sent malformed JSON for {path}", reason="bad_json", url=url) from None

    def get_audio(self, url: str, *, params: dict[str, Any] | None = None) -> AudioBytes:
        """GET an audio file (at most ``max_audio_bytes``), refusing anything that is not audio."""
        body, ctype = self._get(url, params=params, limit=self.config.max_audio_bytes, audio=True)
        ext = sniff_audio(body[:16])
        if ext is None:
            host, path = _where(url)
            what = ctype or "data that is not audio"
            raise ProviderRequestError(f"{host} sent {what} instead of audio for {path}", reason="not_audio", url=url)
        return AudioBytes(body, ext, ctype)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --------------------------------------------------------------

    def _get(self, url: str, *, params, limit: int, audio: bool) -> tuple[bytes, str]:
        c = self.config
        attempts = max(0, c.retries) + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                return self._attempt(url, params=params, limit=limit, audio=audio)
            except _Retryable as r:
                if last:
                    raise r.error from None
                delay = min(c.max_backoff, c.backoff * (2**attempt))
                if r.retry_after is not None:
                    delay = min(c.max_backoff, max(delay, r.retry_after))
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, url: str, *, params, limit: int, audio: bool) -> tuple[bytes, str]:
        httpx = self._httpx
        c = self.config
        host, path = _where(url)
        started = time.monotonic()
        try:
            with self._client.stream("GET", url, params=params) as resp:
                host, path = _where(str(resp.url))
                status = resp.status_code
                if status >= 500 or status == 429:
                    err = ProviderRequestError(
                        f"{host} answered HTTP {status} for {path}", reason="status", url=url, status=status
                    )
                    raise _Retryable(err, _retry_after(resp.headers.get("Retry-After")))
                if status >= 400:
                    raise ProviderRequestError(
                        f"{host} answered HTTP {status} for {path}", reason="status", url=url, status=status
                    )
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if audio and ctype.startswith(_NOT_AUDIO_TYPES):
                    raise ProviderRequestError(
                        f"{host} sent {ctype} instead of audio for {path}", reason="not_audio", url=url
                    )
                too_large = ProviderRequestError(
                    f"{host} sent more than {limit} bytes for {path}", reason="too_large", url=url
                )
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise too_large
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    if time.monotonic() - started > c.deadline:
                        raise ProviderRequestError(
                            f"{host} did not finish answering within {c.deadline:g} s (timeout) for {path}",
                            reason="timeout",
                            url=url,
                        )
                    chunks.append(chunk)
                return b"".join(chunks), ctype
        except httpx.TooManyRedirects:
            raise ProviderRequestError(
                f"{host}: too many redirects (more than {c.max_redirects}) for {path}", reason="redirects", url=url
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            err = ProviderRequestError(
                f"cannot reach {host}: {_unreachable_reason(exc)}", reason="unreachable", url=url
            )
            raise _Retryable(err) from None
        except httpx.TimeoutException:
            raise ProviderRequestError(
                f"{host} did not answer within {c.read_timeout:g} s (timeout) for {path}", reason="timeout", url=url
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            err = ProviderRequestError(
                f"{host} broke the connection for {path} ({type(exc).__name__})", reason="protocol", url=url
            )
            raise _Retryable(err) from None
        except httpx.HTTPError as exc:
            raise ProviderRequestError(f"request to {host} failed: {exc}", reason="protocol", url=url) from None


class _Retryable(Exception):
    def __init__(self, error: ProviderRequestError, retry_after: float | None = None):
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


# -- the provider-independent part of a remote source ----------------------------------


class RemoteSource:
    """Base of the remote preview providers: preview URLs remembered briefly, audio fetched through the cache.

    Subclasses set ``name`` and implement :meth:`lookup` (track id → fresh
    :class:`SongRef` and preview URL). A preview URL seen in a search or chart
    answer is reused for ``url_ttl`` seconds (saving one request); after that,
    or when the server refuses it (HTTP 4xx: signed URLs expire), the URL is
    re-resolved through :meth:`lookup`. The cache itself stores only track ids.
    """

    name = "remote"

    def __init__(
        self,
        base_url: str,
        *,
        cache=None,
        client: HttpClient | None = None,
        url_ttl: float = 600.0,
    ):
        self.base_url = base_url.rstrip("/")
        self._cache = cache
        self._owns_client = client is None
        self.client = client or HttpClient()
        self.url_ttl = url_ttl
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def cache(self):
        """The :class:`~genrify.sources.cache.PreviewCache` (the default one, created on first use)."""
        if self._cache is None:
            from genrify.sources.cache import PreviewCache

            self._cache = PreviewCache()
        return self._cache

    def lookup(self, track_id: str) -> tuple[SongRef, str]:
        """The song with this provider track id and a fresh preview URL.

        Raises :class:`~genrify.errors.NotFoundError` when the track does not
        exist or has no preview.
        """
        raise NotImplementedError

    def download(self, ref: SongRef) -> AudioBytes:
        """Download ``ref``'s preview (no cache), re-resolving its URL when needed.

        The bytes must start like audio and their first 5 s must decode;
        otherwise :class:`ProviderRequestError` (``reason="not_audio"``).
        """
        url = self._remembered(ref.id)
        audio = None
        if url:
            try:
                audio = self.client.get_audio(url)
            except ProviderRequestError as exc:
                if not (exc.reason == "status" and exc.status is not None and 400 <= exc.status < 500):
                    raise
                # A signed preview URL that expired: fall through to a fresh one.
        if audio is None:
            _, url = self.lookup(ref.id)
            audio = self.client.get_audio(url)
        self._check_decodes(audio, ref)
        return audio

    def _check_decodes(self, audio: AudioBytes, ref: SongRef) -> None:
        """Refuse a preview whose first seconds do not decode (a right signature is not enough)."""
        try:
            load_audio(audio.data, sr=None, max_duration=5.0, name=f"{self.name} preview of track {ref.id}")
        except GenrifyError as exc:
            raise ProviderRequestError(str(exc), reason="not_audio") from None

    def fetch_audio(self, ref: SongRef) -> Path:
        """The cached preview file of ``ref``, downloading it on a cache miss."""
        cache = self.cache
        path = cache.path_for(self.name, ref.id)
        if path is not None:
            return path
        audio = self.download(ref)
        return cache.put(self.name, ref.id, audio.data, ext=audio.ext, artist=ref.artist, title=ref.title)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers for subclasses ---------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _song_ref(self, track_id: Any, *, artist: Any, title: Any, album: Any = None, duration: Any = None,
                  genre: Any = None) -> SongRef:
        """A :class:`SongRef` of this provider from an API answer's fields, whatever their types.

        Missing names become ``""``; an empty album or genre, ``None``; a
        ``duration`` (seconds) that is not a number, ``None``.
        """
        return SongRef(
            source=self.name,
            id=str(track_id),
            artist=str(artist or ""),
            title=str(title or ""),
            album=album or None,
            duration=float(duration) if isinstance(duration, (int, float)) else None,
            genre=genre or None,
        )

    def _remember(self, track_id: str, url: str) -> None:
        with self._lock:
            self._urls[track_id] = (url, time.monotonic())
            self._urls.move_to_end(track_id)
            while len(self._urls) > 10_000:
                self._urls.popitem(last=False)

    def _remembered(self, track_id: str) -> str | None:
        with self._lock:
            item = self._urls.get(track_id)
        if item and time.monotonic() - item[1] < self.url_ttl:
            return item[0]
        return None


__all__ = [
    "AudioBytes",
    "HttpClient",
    "HttpConfig",
    "ProviderRequestError",
    "RemoteSource",
]
