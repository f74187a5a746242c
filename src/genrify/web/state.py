"""What the web app holds while it runs: :class:`AppState`, built once in the app's lifespan handler.

It holds the classifier, the library index, the sources tried in order
(:mod:`genrify.web.providers`), the admission lanes for analyses and look-ups,
the upload limiter and the private folder uploads are spooled to. Routes reach
it through the ``get_state`` dependency (:mod:`genrify.web.routes`).

Analyses are bounded twice: their :class:`~genrify.web.admission.Lane` admits
``max_analyses`` at once and lets at most ``max_waiting`` more wait up to
``queue_timeout_s``; anything beyond that is refused at once with
:class:`~genrify.web.admission.ServerBusyError` (HTTP 503 with ``Retry-After``)
instead of piling up. Searches and look-ups pass their own lane (``max_lookups``,
``lookup_timeout_s``) the same way, before they search. See :mod:`genrify.web.admission`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genrify.sources.base import Source
from genrify.web.admission import AnalysisLimiter, AnalysisTimeoutError, Lane, LookupTimeoutError
from genrify.web.analysis import warm_up_pictures
from genrify.web.cache import AnalysisCache
from genrify.web.demo import open_demo_library
from genrify.web.providers import build_sources
from genrify.web.settings import Settings

log = logging.getLogger("genrify.web")


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
    #: "credits": [...], "note": str}`` (see :func:`~genrify.web.demo.open_demo_library`); ``None`` for the
    #: user's own library.
    demo: dict | None = None
    cache: AnalysisCache | None = None  # analysis answers (None: none kept); see :mod:`genrify.web.analysis`
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

    clf = classifier if classifier is not None else load_classifier(settings.model,
                                                                    fast=True if settings.fast else None)
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
    warm_up_pictures()
    if index is not None and settings.scan != "off":
        if settings.scan == "blocking":
            _scan(state)
        else:
            state.scan_thread = threading.Thread(target=_scan, args=(state,), name="genrify-scan", daemon=True)
            state.scan_thread.start()
    return state


def _scan(state: AppState) -> None:
    try:
        state.scan_summary = state.library.scan(state.library_root)
        log.info("library scanned: %s", state.scan_summary)
    except Exception as exc:
        log.warning("library scan failed: %s", exc)
