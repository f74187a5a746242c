"""What the web app holds while it runs, and the blocking work it runs off the event loop.

:class:`AppState` is built once in the app's lifespan handler: the classifier,
the library index, the sources tried in order, the admission lanes for analyses
and look-ups, the upload limiter and the private folder uploads are spooled to.
Routes reach it through the ``get_state`` dependency.

Analyses are bounded twice: their :class:`~genrify.web.admission.Lane` admits
``max_analyses`` at once and lets at most ``max_waiting`` more wait up to
``queue_timeout_s``; anything beyond that is refused at once with
:class:`ServerBusyError` (HTTP 503 with ``Retry-After``) instead of piling up.
Searches and look-ups pass their own lane (``max_lookups``, ``lookup_timeout_s``)
the same way, before they search. See :mod:`genrify.web.admission`.
"""

from __future__ import annotations

import base64
import importlib
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genrify.errors import GenrifyError, NotFoundError
from genrify.sources.base import SongRef, Source
from genrify.web.admission import (  # noqa: F401 (ServerBusyError and AnalysisTimeoutError are part of this API)
    AnalysisLimiter,
    AnalysisTimeoutError,
    Lane,
    LookupTimeoutError,
    ServerBusyError,
)
from genrify.web.cache import AnalysisCache, cached_answer
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


@dataclass
class AppState:
    """Everything the routes share. Built by :func:`build_state`, closed by :meth:`close`."""

    settings: Settings
    classifier: Any
    sources: list[Source]
    analyses: Lane
    lookups: Lane
    uploads: AnalysisLimiter
    spool_dir: Path
    library: Any = None  # LibraryIndex | None
    library_root: Path | None = None
    #: The demo library served when no ``--library`` was given: ``{"kind": "debian" | "synthetic",
    #: "credits": [...], "note": str}`` (see :func:`open_demo_library`); ``None`` for the user's own library.
    demo: dict | None = None
    cache: AnalysisCache | None = None  # analysis answers (None: none kept); see analyse_audio
    scan_thread: threading.Thread | None = None
    scan_summary: Any = None
    started: float = field(default_factory=time.time)

    def source(self, name: str) -> Source | None:
        return next((s for s in self.sources if s.name == name), None)

    @property
    def scanning(self) -> bool:
        return self.scan_thread is not None and self.scan_thread.is_alive()

    @property
    def limiter(self) -> AnalysisLimiter:
        """The analyses' limiter."""
        return self.analyses.limiter

    def close(self) -> None:
        self.analyses.close()
        self.lookups.close()
        shutil.rmtree(self.spool_dir, ignore_errors=True)
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
        """Run blocking ``fn`` on the analysis pool, within its limiter and the analysis timeout."""
        return await self.analyses.run(fn)

    async def run_lookup(self, fn: Callable[[], Any]) -> Any:
        """Run blocking ``fn`` (a search, a look-up, a preview download) within the look-up limiter and budget."""
        return await self.lookups.run(fn)


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


def _share_cores(clf, max_analyses: int) -> None:
    """Give each concurrent analysis its share of the cores.

    The engines' intra-op pools are process-wide; with ``max_analyses`` analyses
    each asking for every core, the threads oversubscribe the machine and
    spin-wait on each other, which collapses throughput on a busy server.
    """
    import os

    clf.set_threads(max(1, (os.cpu_count() or 1) // max(1, max_analyses)))


def _admission(settings: Settings) -> dict:
    """The lanes, the upload limiter and a private spool folder (mode 0700) for :class:`AppState`."""
    s = settings
    return {
        "analyses": Lane(name="analyses", noun="analysis", capacity=s.max_analyses, max_waiting=s.max_waiting,
                         wait_timeout=s.queue_timeout_s, timeout_s=s.analysis_timeout_s, retry_after=s.retry_after_s,
                         timeout_error=AnalysisTimeoutError),
        "lookups": Lane(name="searches", noun="search", capacity=s.max_lookups, max_waiting=4 * s.max_lookups,
                        wait_timeout=s.queue_timeout_s, timeout_s=s.lookup_timeout_s, retry_after=s.retry_after_s,
                        timeout_error=LookupTimeoutError),
        # Each admitted upload can wait for an analysis; more bodies than that would only sit on disk.
        "uploads": AnalysisLimiter(s.max_analyses + s.max_waiting, max_waiting=0, retry_after=s.retry_after_s,
                                   what="uploads"),
        "spool_dir": Path(tempfile.mkdtemp(prefix="genrify-uploads-")),
    }


def build_state(settings: Settings, *, classifier: Any = None) -> AppState:
    """Load the model, open (and maybe generate) the library, connect the sources. Blocking."""
    from genrify.sources.library import LibraryIndex, LibrarySource, default_db_path

    from genrify.predict import load_classifier

    clf = classifier if classifier is not None else load_classifier(settings.model, fast=True if settings.fast else None)
    _share_cores(clf, settings.max_analyses)
    index = root = demo = None
    if "library" in settings.providers:
        if settings.library:
            root = Path(settings.library).expanduser()
        else:
            root, demo = open_demo_library(settings)
        if root is not None:
            db = Path(settings.library_db) if settings.library_db else default_db_path(root)
            index = LibraryIndex(db)
    sources = build_sources(settings, LibrarySource(index) if index is not None else None)
    state = AppState(
        settings=settings,
        classifier=clf,
        sources=sources,
        **_admission(settings),
        library=index,
        library_root=root,
        demo=demo,
        cache=AnalysisCache(max_entries=settings.cache_size),
    )
    _warm_up_plots()
    if index is not None and settings.scan != "off":
        if settings.scan == "blocking":
            _scan(state)
        else:
            state.scan_thread = threading.Thread(target=_scan, args=(state,), name="genrify-scan", daemon=True)
            state.scan_thread.start()
    return state


#: Shown (log and page) when the server falls back to the synthetic demo library.
SYNTHETIC_DEMO_NOTE = ("The real demo library (freely licensed music from the Debian archive) is not built: "
                       "scripts/setup.sh could not fetch it (offline?). These demo songs are synthetic: generated "
                       "test clips, not real recordings. Run scripts/setup.sh online to build the real one.")


def open_demo_library(settings: Settings) -> tuple[Path | None, dict | None]:
    """The demo library's folder and its description for :attr:`AppState.demo`.

    The real one (:mod:`genrify.sources.demo`, built at set-up) when it exists; otherwise the
    synthetic library of :func:`~genrify.sources.library.ensure_demo_library`, labelled as such.
    """
    from genrify.sources.demo import demo_dir, read_credits
    from genrify.sources.library import ensure_demo_library

    root = demo_dir()
    credits = read_credits(root)
    if credits is not None:
        return root, {"kind": "debian", "credits": credits, "note": "Demo songs: freely licensed music from the "
                      "Debian archive, 30 s clips."}
    log.warning("%s", SYNTHETIC_DEMO_NOTE)
    try:
        root = ensure_demo_library(per_genre=settings.demo_per_genre)
    except Exception as exc:
        log.warning("demo library unavailable: %s", exc)
        return None, None
    return root, {"kind": "synthetic", "credits": [], "note": SYNTHETIC_DEMO_NOTE}


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
    """No source had a playable match; ``problems`` lists sources that failed (offline, errors),
    ``searched`` what was searched (``"your library (9 songs)"``, ``"Deezer"``), ``closest`` near misses."""

    problems: tuple[str, ...] = ()
    searched: tuple[str, ...] = ()
    closest: tuple[SongRef, ...] = ()


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
    return NotFound(tuple(problems), searched=tuple(_searched(state)), closest=tuple(_closest(state, artist, track)))


_PROVIDER_NAMES = {"deezer": "Deezer", "itunes": "iTunes"}


def _searched(state: AppState) -> list[str]:
    """What a search looks in, in words: "your library (N songs)" or "the demo library (N songs)", providers."""
    out = []
    for src in state.sources:
        if src.name == "library" and state.library is not None:
            n = len(state.library)
            out.append(f"{'the demo library' if state.demo else 'your library'} ({n} song{'s' * (n != 1)})")
        else:
            out.append(_PROVIDER_NAMES.get(src.name, src.name))
    return out


def _closest(state: AppState, artist: str, track: str) -> list[SongRef]:
    """Near misses in the library (never a remote provider: they would cost more requests)."""
    if state.library is None:
        return []
    try:
        return state.library.closest(artist=artist, track=track)
    except GenrifyError as exc:
        log.warning("near misses failed: %s", exc)
        return []


def not_found_error(result: NotFound) -> NotFoundError:
    """The 404: says what was searched; ``suggestions`` (artist, title) of near misses ride along."""
    where = "; searched " + ", ".join(result.searched) if result.searched else ""
    err = NotFoundError(NOT_FOUND_MESSAGE + where)
    err.problems = result.problems  # type: ignore[attr-defined]
    err.details = {"searched": list(result.searched),  # type: ignore[attr-defined]
                   "suggestions": [{"artist": r.artist, "title": r.title} for r in result.closest]}
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


#: The page's timeline chart: font size (points at 100 dpi) and height (inches) of its axis text and figure.
TIMELINE_FONT_PT = 13
TIMELINE_HEIGHT_IN = 3.0


def analyse_audio(state: AppState, audio: Path | bytes, *, top_k: int, images: bool, name: str | None = None,
                  legacy_mfcc: bool = False, key: Any = None) -> dict:
    """Decode once, analyse, and optionally render the model's input and the timeline (blocking).

    Returns the analysis's JSON view (:meth:`~genrify.predict.Analysis.to_dict`, ``top_k``
    genres listed) with ``images`` (base64 PNGs: ``features``, the model's input on a fixed
    colour scale (:mod:`genrify.web.pictures`), titled by ``features_title``; ``timeline``,
    absent under "not music") and ``elapsed_ms``: ``/api/predict`` without its ``song`` part.
    ``legacy_mfcc``: ``features`` is the 2017 widget's MFCC image instead. ``cached``: the answer came
    from ``state.cache`` (same bytes, model, mode and options; ``key``: its key if already computed).
    """
    t0 = time.perf_counter()
    out, cached = cached_answer(getattr(state, "cache", None), state.classifier, audio, top_k=top_k, images=images,
                                legacy_mfcc=legacy_mfcc, key=key, compute=lambda: _analysis(
                                    state, audio, top_k=top_k, images=images, name=name, legacy_mfcc=legacy_mfcc))
    out.update(cached=cached, elapsed_ms=round((time.perf_counter() - t0) * 1000, 1))
    return out


def _analysis(state: AppState, audio: Path | bytes, *, top_k: int, images: bool, name: str | None,
              legacy_mfcc: bool) -> dict:
    """What :func:`analyse_audio` answers, analysed now (never from the cache)."""
    from genrify import report
    from genrify.web import pictures

    clf = state.classifier
    label = name or (audio.name if isinstance(audio, Path) else "upload")
    y = clf.load(audio, name=label)
    analysis = clf.analyse(y, sr=clf.sr, top_k=top_k, name=label)
    out = analysis.to_dict()
    if images and legacy_mfcc:
        image, sr, hop = clf.feature_image(y, sr=clf.sr)
        out["images"] = {"features": png_b64(report.feature_image_png(image, sr=sr, hop_length=hop))}
    elif images:
        image, sr, hop, picture = pictures.model_input(clf, y)
        out["images"] = {"features": png_b64(pictures.picture_png(image, sr=sr, hop_length=hop, picture=picture)),
                         "features_title": picture.title}
        if out.get("verdict") != "not_music":  # a genre timeline of something that is not music misleads
            # Larger text than the report's (legend included): a phone shows the chart at about half its width.
            out["images"]["timeline"] = png_b64(report.timeline_png(
                analysis.window_starts, analysis.window_probabilities, analysis.labels, top=5,
                duration=float(analysis.duration), height=TIMELINE_HEIGHT_IN, fontsize=TIMELINE_FONT_PT))
    return out


def library_examples(state: AppState, n: int = 5) -> list[dict]:
    """A few library tracks spread over the library, for the page's example values."""
    if state.library is None:
        return []
    if state.demo and state.demo["credits"]:
        chosen = [c for c in state.demo["credits"] if c["example"]][:n]
        return [{"artist": c["artist"], "title": c["title"], "genre_tag": None} for c in chosen]
    tracks = state.library.tracks()
    if not tracks:
        return []
    step = max(1, len(tracks) // max(1, n))
    return [{"artist": t.artist, "title": t.title, "genre_tag": t.genre} for t in tracks[::step][:n]]
