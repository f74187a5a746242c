"""Analysers of a tagging job: the per-file stage (:mod:`genrify.tagging.stage`) over many files.

An analyser is a callable ``analyse(paths, *, known=frozenset())`` that yields one
:class:`~genrify.tagging.stage.SongResult` per path, as they finish (in any order),
each file hashed, read and analysed where it is analysed; ``known``: content hashes
whose analysis is skipped (the index has them). :func:`local_analyser` is the
default, in this process or over worker processes; ``genrify tag --ray`` passes
the cluster's (:func:`genrify.scale.jobs.tag_engine`). The job records what they
yield: an analyser writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator

from genrify.errors import GenrifyError
from genrify.predict.batch import in_worker_pool
from genrify.tagging.stage import SongResult, analyse_song, file_facts

#: ``analyse(paths, *, known=frozenset()) → SongResult per path, as they finish``.
Analyser = Callable[..., Iterator[SongResult]]

def local_analyser(*, model: str | os.PathLike | None = None, fast: bool | None = None, workers: int = 1,
                   top_k: int = 2) -> Analyser:
    """The analyser on this machine: in this process, or over ``workers`` worker processes, each
    holding its own classifier (``model``, ``fast`` as for :func:`genrify.predict.load_classifier`)
    and one intra-op thread, a few files in flight each."""

    def analyse(paths, *, known: Collection[str] = frozenset()) -> Iterator[SongResult]:
        paths = [os.fspath(p) for p in paths]
        if workers <= 1 or len(paths) <= 1:
            yield from _in_process(paths, model=model, fast=fast, top_k=top_k, known=known)
            return
        from genrify.predict import resolve_model

        ref = resolve_model(model)
        ref.read()  # a bad model file fails here once, not in every worker
        yield from in_worker_pool(paths, workers=workers, initializer=_init_worker,
                                  initargs=(ref, fast, top_k, frozenset(known)), task=_worker_run, died=_died,
                                  ordered=False)

    return analyse


def _in_process(paths: list[str], *, model, fast, top_k: int, known: Collection[str]) -> Iterator[SongResult]:
    """The stage in this process: every file's facts first (no model is loaded for files that are all
    known or unreadable), then :func:`genrify.predict.analyse_many`, whose engine suits the number of songs."""
    from genrify.predict import analyse_many

    facts = {}
    for path in paths:
        try:
            facts[path] = file_facts(path)
        except GenrifyError as exc:
            yield SongResult(path, None, None, str(exc))
            continue
        if facts[path].digest in known:
            yield SongResult(path, facts.pop(path), None)
    for result in analyse_many(list(facts), model=model, fast=fast, top_k=top_k, workers=1) if facts else ():
        if result.analysis is None:
            yield SongResult(result.path, None, None, result.error)
        else:
            yield SongResult(result.path, facts[result.path], result.analysis.to_dict())


_WORKER: dict = {}


def _init_worker(model, fast: bool | None, top_k: int, known: frozenset[str]) -> None:
    from genrify.predict import load_classifier

    # One process per core: intra-op threads would only contend.
    _WORKER.update(clf=load_classifier(model, fast=fast, threads=1), top_k=top_k, known=known)


def _worker_run(path: str) -> SongResult:
    return analyse_song(path, classifier=_WORKER["clf"], top_k=_WORKER["top_k"], known=_WORKER["known"])


def _died(path: str) -> SongResult:
    return SongResult(path, None, None, f"{path}: the analysis process died while analysing this file")
