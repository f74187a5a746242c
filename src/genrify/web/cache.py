"""Answers of analyses already made, kept in memory: a song asked for again answers in milliseconds.

:class:`AnalysisCache` is a bounded LRU of analysis answers (the dicts
:func:`genrify.web.analysis.analyse_audio` returns), one per server process,
keyed by :class:`CacheKey`: the content hash of the audio file's bytes
(:func:`genrify.fileio.file_digest`), the model's identity and mode
(:func:`model_identity`) and the options that change the answer (``top_k``,
``images``, ``legacy_mfcc``). The key is the file's *bytes*: the same song
re-encoded, or retagged, is another key and is analysed again. A server started
with another model or in another mode never gets an old answer.

Single flight: when a request asks for a key whose analysis is running, it waits
for that result instead of analysing the same file twice. Errors are never
cached or shared: when the running analysis fails, each waiting request runs its
own (so its error names its own file, and a passing fault is not handed on).

Every answer handed out is a deep copy: a caller that edits one changes neither
the cache nor another caller's answer. The routes look an answer up with
:func:`stored_answer` before they queue for an analysis slot, so a song asked for
again is not kept waiting behind other songs' analyses; what is not stored goes
through :func:`cached_answer` on the analysis lane.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genrify.fileio import file_digest


@dataclass(frozen=True)
class CacheKey:
    """What decides an analysis's answer.

    ``content``: BLAKE2b-128 of the audio file's bytes; ``model``: the model file's
    ``sha256`` (``"sha256:…"``), or a per-process name for a model never saved;
    ``mode``: ``"full"`` or ``"fast"``, with the precision musicnn's convolutions run
    in (``"fast/bfloat16"``); then the request's options that change the answer.
    """

    content: str
    model: str
    mode: str
    top_k: int
    images: bool
    legacy_mfcc: bool


def model_identity(classifier: Any) -> tuple[str, str]:
    """``(model, mode)`` of a :class:`~genrify.predict.GenreClassifier` for :class:`CacheKey`.

    ``model`` is the checksum its model file carries (checked when it was loaded);
    a model built in memory (musicnn's own tagger, a test's) has none, and is named
    by its source and this object's id, so no other classifier shares its answers.
    """
    digest = classifier.model_file.sha256
    model = f"sha256:{digest}" if digest else f"memory:{classifier.source}:{id(classifier):x}"
    runtime = classifier.runtime
    # Reduced precision is chosen by timing the machine and the engines differ in round-off: both
    # move probabilities a little, so they are part of the mode.
    return model, f"{runtime.mode}/{runtime.precision}/{runtime.engine}"


def analysis_key(classifier: Any, path: str | os.PathLike, *, top_k: int, images: bool,
                 legacy_mfcc: bool = False) -> CacheKey:
    """The key of analysing the file ``path`` with ``classifier``: hashes the whole file, nothing else.

    Raises :class:`OSError` when the file cannot be read (see :func:`~genrify.fileio.file_digest`).
    """
    content = file_digest(path)  # first: a file that cannot be hashed is analysed uncached, whatever the model
    model, mode = model_identity(classifier)
    return CacheKey(content=content, model=model, mode=mode, top_k=int(top_k), images=bool(images),
                    legacy_mfcc=bool(legacy_mfcc))


def cached_answer(cache: AnalysisCache | None, classifier: Any, audio: Any, *, top_k: int, images: bool,
                  legacy_mfcc: bool, compute: Callable[[], dict], key: CacheKey | None = None) -> tuple[dict, bool]:
    """``(answer, cached)`` for analysing ``audio`` (a file's path, or bytes) with ``classifier``.

    From ``cache`` when it holds the key (``key``, when the caller hashed the file already, else
    :func:`analysis_key`), else ``compute()``'s answer, which is stored. Bytes, a file that cannot
    be hashed (``compute`` then says what is wrong with it, in its own words) and ``cache=None``
    are analysed without the cache.
    """
    if cache is None:
        return compute(), False
    if key is None and cache.enabled and isinstance(audio, (str, os.PathLike)):
        try:
            key = analysis_key(classifier, audio, top_k=top_k, images=images, legacy_mfcc=legacy_mfcc)
        except OSError:
            key = None
    return cache.get_or_compute(key, compute)


def stored_answer(cache: AnalysisCache | None, classifier: Any, audio: Any, *, top_k: int, images: bool,
                  legacy_mfcc: bool) -> tuple[dict | None, CacheKey | None]:
    """``(answer, key)``: the answer ``cache`` holds for analysing ``audio`` with ``classifier`` (a copy,
    counted as a hit) or ``None`` (nothing counted), and the key it was looked up by (``None`` where
    there is none), which :func:`cached_answer` takes so the file is hashed once. Never analyses,
    never waits for an analysis in flight."""
    if cache is None or not cache.enabled or not isinstance(audio, (str, os.PathLike)):
        return None, None
    try:
        key = analysis_key(classifier, audio, top_k=top_k, images=images, legacy_mfcc=legacy_mfcc)
    except OSError:
        return None, None
    return cache.get(key), key


class _Flight:
    """One analysis in progress; its waiters block on ``done``. ``value`` stays ``None`` when it failed."""

    def __init__(self):
        self.done = threading.Event()
        self.value: dict | None = None


class AnalysisCache:
    """A thread-safe LRU of at most ``max_entries`` analysis answers, with single flight.

    ``max_entries=0`` turns the cache off: every request analyses (and counts as a miss).
    """

    def __init__(self, *, max_entries: int):
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, not {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, dict] = OrderedDict()
        self._flights: dict[CacheKey, _Flight] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.joined = 0
        self.waiting = 0  # requests waiting now for an analysis in flight

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: CacheKey) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: CacheKey) -> dict | None:
        """A copy of the answer stored for ``key`` (counted as a hit), else ``None`` (not counted)."""
        with self._lock:
            stored = self._entries.get(key)
            if stored is None:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return copy.deepcopy(stored)  # a stored answer is never changed, so it is copied outside the lock

    def get_or_compute(self, key: CacheKey | None, compute: Callable[[], dict]) -> tuple[dict, bool]:
        """``(answer, cached)``: the stored answer for ``key`` (``cached`` true), else ``compute()``'s, stored.

        While another thread computes ``key``, this one waits for its answer (``cached``
        true: it did not analyse). ``compute``'s exceptions propagate and nothing is
        stored; threads that waited then compute for themselves. ``key=None`` (an
        answer that cannot be keyed) or a cache that is off: ``compute()``, never stored.
        The answer is always the caller's own copy.
        """
        if key is None or not self.enabled:
            with self._lock:
                self.misses += 1
            return compute(), False
        while True:
            with self._lock:
                stored = self._entries.get(key)
                if stored is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                else:
                    flight = self._flights.get(key)
                    if flight is None:
                        flight = self._flights[key] = _Flight()
                        self.misses += 1
                        break
                    self.waiting += 1
            if stored is not None:  # a stored answer is never changed, so it is copied outside the lock
                return copy.deepcopy(stored), True
            flight.done.wait()
            with self._lock:
                self.waiting -= 1
                if flight.value is not None:
                    self.hits += 1
                    self.joined += 1
            if flight.value is not None:
                return copy.deepcopy(flight.value), True
            # The analysis this thread waited for failed: look again (someone may have stored it), else analyse.
        return self._lead(key, flight, compute), False

    def _lead(self, key: CacheKey, flight: _Flight, compute: Callable[[], dict]) -> dict:
        """Compute ``key`` for ``flight``'s waiters, store it, and wake them (also when it fails)."""
        try:
            value = compute()
            kept = copy.deepcopy(value)  # the caller's answer and the stored one never share a list
        except BaseException:
            with self._lock:
                del self._flights[key]
            flight.done.set()
            raise
        with self._lock:
            self._entries[key] = kept
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            del self._flights[key]
        flight.value = kept
        flight.done.set()
        return value

    def stats(self) -> dict:
        """``entries``, ``max_entries``, ``hits`` (answered without analysing; ``joined`` of them waited for an
        analysis in flight), ``waiting`` (doing so now) and ``misses`` (analyses run), for ``/healthz``."""
        with self._lock:
            return {"entries": len(self._entries), "max_entries": self.max_entries, "hits": self.hits,
                    "joined": self.joined, "waiting": self.waiting, "misses": self.misses}
