"""What the web app holds while it runs, and the blocking work it runs off the event loop.

:class:`AppState` is built once in the app's lifespan handler: the classifier,
the library index, the sources tried in order, the analysis limiter and the
analysis thread pool. Routes reach it through the ``get_state`` dependency.

Analyses are bounded twice: :class:`AnalysisLimiter` admits ``max_analyses``
at once and lets at most ``max_waiting`` more wait up to ``queue_timeout_s``;
anything beyond that is refused at once with :class:`ServerBusyError` (HTTP 503
with ``Retry-After``) instead of piling up. Admitted analyses run on a thread
pool of exactly ``max_analyses`` threads, and a slot is only given back when
its analysis really finished, so a timed-out analysis still counts until then.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import importlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genrify.errors import GenrifyError, NotFoundError
from genrify.sources.base import SongRef, Source
from genrify.web.settings import Settings

log = logging.getLogger("genrify.web")

#: The message shown (and returned by the API) when no source has the song.
NOT_FOUND_MESSAGE = "The song could not be found or has no available preview"

#: Remote providers by name, as ``module:Class``; imported only when configured.
PROVIDERS: dict[str, str] = {
    "deezer": "genrify.sources.deezer:DeezerSource",
    "itunes": "genrify.sources.itunes:ITunesSource",
}

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ServerBusyError(GenrifyError):
    """Too many analyses are running or waiting; try again after ``retry_after`` seconds."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 2):
        super().__init__(message)
        self.retry_after = retry_after


class AnalysisTimeoutError(GenrifyError):
    """An analysis took longer than the configured limit."""

    status_code = 504


class AnalysisLimiter:
    """At most ``capacity`` analyses at once, at most ``max_waiting`` waiting for a slot.

    Thread-safe; :meth:`try_acquire` and :meth:`release` work from any thread,
    :meth:`acquire` from the event loop (it polls every 20 ms while waiting).
    """

    def __init__(self, capacity: int, *, max_waiting: int = 0, wait_timeout: float = 10.0, retry_after: int = 2):
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.wait_timeout = wait_timeout
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0

    def try_acquire(self) -> bool:
        with self._lock:
            if self.running < self.capacity:
                self.running += 1
                return True
            return False

    def release(self) -> None:
        with self._lock:
            self.running = max(0, self.running - 1)

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        with self._lock:
            if self.waiting >= self.max_waiting:
                raise self._busy()
            self.waiting += 1
        try:
            deadline = time.monotonic() + self.wait_timeout
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                if self.try_acquire():
                    return
            raise self._busy()
        finally:
            with self._lock:
                self.waiting -= 1

    def _busy(self) -> ServerBusyError:
        return ServerBusyError(
            f"the server is busy ({self.running} analyses running, {self.waiting} waiting); try again shortly",
            retry_after=self.retry_after,
        )


@dataclass
class AppState:
    """Everything the routes share. Built by :func:`build_state`, closed by :meth:`close`."""

    settings: Settings
    classifier: Any
    sources: list[Source]
    limiter: AnalysisLimiter
    executor: concurrent.futures.ThreadPoolExecutor
    library: Any = None  # LibraryIndex | None
    library_root: Path | None = None
    scan_thread: threading.Thread | None = None
    scan_summary: Any = None
    started: float = field(default_factory=time.time)

    def source(self, name: str) -> Source | None:
        return next((s for s in self.sources if s.name == name), None)

    @property
    def scanning(self) -> bool:
        return self.scan_thread is not None and self.scan_thread.is_alive()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.scan_thread is not None:
            self.scan_thread.join(timeout=5.0)
        for src in self.sources:
            close = getattr(src, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # closing must never fail a shutdown
                    log.exception("closing source %s", getattr(src, "name", src))
        if self.library is not None and not self.scanning:
            self.library.close()

    # -- analyses ---------------------------------------------------------------------

    async def run_analysis(self, fn: Callable[[], Any]) -> Any:
        """Run blocking ``fn`` on the analysis pool, within the limiter and the timeout."""
        await self.limiter.acquire()
        try:
            future = self.executor.submit(fn)
        except BaseException:
            self.limiter.release()
            raise
        future.add_done_callback(lambda _: self.limiter.release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.settings.analysis_timeout_s)
        except asyncio.TimeoutError:
            raise AnalysisTimeoutError(
                f"the analysis took longer than {self.settings.analysis_timeout_s:g} s"
            ) from None


# -------------------------------------------------------------------------- building


def build_sources(settings: Settings, library_source: Source | None) -> list[Source]:
    """The configured sources in order; a provider that cannot be loaded is skipped with a warning."""
    out: list[Source] = []
    for name in settings.providers:
        if name == "library":
            if library_source is None:
                log.warning("provider 'library' skipped: no library is available")
            else:
                out.append(library_source)
            continue
        target = PROVIDERS.get(name)
        if target is None:
            log.warning("unknown provider %r skipped (known: library, %s)", name, ", ".join(PROVIDERS))
            continue
        module_name, cls_name = target.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
            base_url = getattr(settings, f"{name}_url", None)
            out.append(cls(base_url) if base_url else cls())
        except Exception as exc:  # a missing optional provider must not stop the server
            log.warning("provider %r skipped: %s", name, exc)
    return out


def _share_cores(max_analyses: int) -> None:
    """Give each concurrent analysis its share of the cores.

    torch's intra-op pool is process-wide; with ``max_analyses`` analyses each
    asking for every core, the OpenMP threads oversubscribe the machine and
    spin-wait on each other, which collapses throughput on a busy server.
    """
    import os

    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, max_analyses)))


def build_state(settings: Settings, *, classifier: Any = None) -> AppState:
    """Load the model, open (and maybe generate) the library, connect the sources. Blocking."""
    from genrify.sources.library import LibraryIndex, LibrarySource, default_db_path, ensure_demo_library

    from genrify.predict import load_classifier

    clf = classifier if classifier is not None else load_classifier(settings.model, fast=True if settings.fast else None)
    _share_cores(settings.max_analyses)
    index = root = None
    if "library" in settings.providers:
        if settings.library:
            root = Path(settings.library).expanduser()
        else:
            try:
                root = ensure_demo_library(per_genre=settings.demo_per_genre)
            except Exception as exc:
                log.warning("demo library unavailable: %s", exc)
        if root is not None:
            db = Path(settings.library_db) if settings.library_db else default_db_path(root)
            index = LibraryIndex(db)
    sources = build_sources(settings, LibrarySource(index) if index is not None else None)
    state = AppState(
        settings=settings,
        classifier=clf,
        sources=sources,
        limiter=AnalysisLimiter(settings.max_analyses, max_waiting=settings.max_waiting,
                                wait_timeout=settings.queue_timeout_s, retry_after=settings.retry_after_s),
        executor=concurrent.futures.ThreadPoolExecutor(settings.max_analyses, thread_name_prefix="genrify-analysis"),
        library=index,
        library_root=root,
    )
    _warm_up_plots()
    if index is not None and settings.scan != "off":
        if settings.scan == "blocking":
            _scan(state)
        else:
            state.scan_thread = threading.Thread(target=_scan, args=(state,), name="genrify-scan", daemon=True)
            state.scan_thread.start()
    return state


def _warm_up_plots() -> None:
    """Render one tiny image so the first request does not pay for matplotlib's start-up (fonts, caches)."""
    from genrify import report

    try:
        report.feature_image_png(np.zeros((2, 2)), sr=22050, hop_length=512)
    except Exception as exc:  # only an optimisation
        log.warning("plot warm-up failed: %s", exc)


def _scan(state: AppState) -> None:
    try:
        state.scan_summary = state.library.scan(state.library_root)
        log.info("library scanned: %s", state.scan_summary)
    except Exception as exc:
        log.warning("library scan failed: %s", exc)


# -------------------------------------------------------------------------- finding songs


@dataclass(frozen=True)
class Found:
    """A song some source has, with its audio fetched to a local file."""

    source: Source
    ref: SongRef
    path: Path


@dataclass(frozen=True)
class NotFound:
    """No source had a playable match; ``problems`` lists sources that failed (offline, errors)."""

    problems: tuple[str, ...] = ()


def find_song(state: AppState, *, artist: str, track: str, candidates: int = 3) -> Found | NotFound:
    """The first match whose audio can be fetched, trying sources in order (blocking; may use the network).

    A source that fails (offline, timeout, a bad answer, a preview that is not
    audio) is skipped and named in ``NotFound.problems``; the next one is tried.
    """
    problems: list[str] = []
    for src in state.sources:
        try:
            refs = src.search(artist=artist, track=track, limit=candidates)
        except GenrifyError as exc:
            log.warning("search in %s failed: %s", src.name, exc)
            problems.append(f"{src.name}: {exc}")
            continue
        for ref in refs[:candidates]:
            try:
                return Found(src, ref, Path(src.fetch_audio(ref)))
            except NotFoundError:
                continue
            except GenrifyError as exc:
                log.warning("audio of %s %s failed: %s", src.name, ref.id, exc)
                problems.append(f"{src.name}: {exc}")
                break
    return NotFound(tuple(problems))


def not_found_error(result: NotFound) -> NotFoundError:
    err = NotFoundError(NOT_FOUND_MESSAGE)
    err.problems = result.problems  # type: ignore[attr-defined]
    return err


def search_all(state: AppState, *, artist: str, track: str, limit: int = 5) -> list[SongRef]:
    """Matches from every source, in source order."""
    out: list[SongRef] = []
    for src in state.sources:
        try:
            out.extend(src.search(artist=artist, track=track, limit=limit))
        except GenrifyError as exc:
            log.warning("search in %s failed: %s", src.name, exc)
    return out


def audio_path(state: AppState, source: str, track_id: str) -> Path:
    """The file to serve for ``(source, track_id)``: an indexed library track or a cached preview.

    Never derived from request text: the id is only a lookup key, and whatever
    does not resolve through the index or the preview cache is "not found".
    """
    if not _SAFE_ID.match(track_id or ""):
        raise NotFoundError("no such track")
    src = state.source(source)
    if src is None:
        raise NotFoundError("no such track")
    if source == "library":
        return state.library.path_for(track_id)
    cache = getattr(src, "cache", None)
    path = cache.path_for(source, track_id) if cache is not None else None
    if path is None:
        raise NotFoundError("no such track (previews are served once they were fetched for an analysis)")
    return Path(path)


def ref_dict(ref: SongRef) -> dict:
    return asdict(ref)


# -------------------------------------------------------------------------- analysing


def png_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def analyse_audio(state: AppState, audio: Path | bytes, *, top_k: int, images: bool, name: str | None = None) -> dict:
    """Decode once, analyse, and optionally render the feature image and the timeline (blocking).

    Returns the analysis's JSON view (:meth:`~genrify.predict.Analysis.to_dict`, ``top_k``
    genres listed) with ``images`` (base64 PNGs) and ``elapsed_ms``: ``/api/predict`` without its ``song`` part.
    """
    from genrify import report

    clf = state.classifier
    t0 = time.perf_counter()
    label = name or (audio.name if isinstance(audio, Path) else "upload")
    y = clf.load(audio, name=label)
    analysis = clf.analyse(y, sr=clf.sr, top_k=top_k, name=label)
    out = analysis.to_dict()
    if images:
        image, sr, hop = clf.feature_image(y, sr=clf.sr)
        out["images"] = {
            "features": png_b64(report.feature_image_png(image, sr=sr, hop_length=hop)),
            "timeline": png_b64(report.timeline_png(analysis.window_starts, analysis.window_probabilities,
                                                    analysis.labels, top=5, duration=float(analysis.duration))),
        }
    out["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return out


def library_examples(state: AppState, n: int = 5) -> list[dict]:
    """A few library tracks spread over the library, for the page's example values."""
    if state.library is None:
        return []
    tracks = state.library.tracks()
    if not tracks:
        return []
    step = max(1, len(tracks) // max(1, n))
    return [{"artist": t.artist, "title": t.title, "genre_tag": t.genre} for t in tracks[::step][:n]]
