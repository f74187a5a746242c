"""Analysing many files: one classifier, or one per worker process, answers in the order given."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

import numpy as np

from genrify.errors import GenrifyError
from genrify.predict.classifier import Analysis, GenreClassifier, load_classifier
from genrify.predict.resolve import resolve_model


@dataclass(frozen=True)
class FileResult:
    """One file of :func:`analyse_many`: its analysis, or the one-line reason it failed."""

    path: str
    analysis: Analysis | None
    error: str | None = None


def analyse_many(paths, *, model: str | os.PathLike | None = None, fast: bool | None = None, top_k: int = 2,
                 workers: int = 1, classifier: GenreClassifier | None = None):
    """Analyse many files; yields a :class:`FileResult` per path, in the order given.

    ``model``: a model file or a built-in model's name (:func:`~genrify.predict.resolve_model`;
    ``None``: the bundled default), or a ``classifier`` loaded already (one process only).
    With ``workers > 1`` the files are spread over that many processes, each
    holding its own classifier and one thread; at most a few files per worker
    are in flight, so memory stays flat however long the list is. In one
    process the classifier is planned for ``len(paths)`` songs
    (:func:`~genrify.predict.load_classifier`).
    """
    paths = [str(p) for p in paths]
    if classifier is not None or workers <= 1 or len(paths) <= 1:
        clf = classifier if classifier is not None else load_classifier(model, fast=fast, songs=len(paths))
        for path in paths:
            yield _analyse_file(clf, path, top_k)
        return
    ref = resolve_model(model)
    ref.read()  # a bad model file fails here, with its reason, not in every worker
    yield from in_worker_pool(paths, workers=workers, initializer=_init_worker, initargs=(ref, fast),
                              task=_worker_analyse, args=(top_k,), died=_died, ordered=True)


#: Files in flight per worker process: enough to keep it busy, few enough that memory stays flat.
IN_FLIGHT_PER_WORKER = 4


def in_worker_pool(items, *, workers: int, initializer, initargs: tuple, task, args: tuple = (), died,
                   ordered: bool = True):
    """``task(item, *args)`` for every item, in ``workers`` spawned processes set up by
    ``initializer(*initargs)``; yields each answer, in the order given (``ordered``) or as they finish.

    At most :data:`IN_FLIGHT_PER_WORKER` items per worker are in flight, so memory stays flat
    however long the list is. Decoding is isolated already (:mod:`genrify.audio.isolation`);
    should a worker die all the same, the oldest item in flight is answered ``died(item)`` and
    the rest go to a fresh pool.
    """
    todo = deque(items)
    while todo:
        yield from _one_pool(todo, workers=workers, initializer=initializer, initargs=initargs, task=task,
                             args=args, died=died, ordered=ordered)


def _one_pool(todo: deque, *, workers, initializer, initargs, task, args, died, ordered: bool):
    """:func:`in_worker_pool` over ``todo`` (consumed from the left) in one pool, until it is done or broken."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=initializer, initargs=initargs)
    pending: dict = {}  # future → item, oldest first
    try:
        while todo or pending:
            while todo and len(pending) < IN_FLIGHT_PER_WORKER * workers:
                item = todo.popleft()
                pending[pool.submit(task, item, *args)] = item
            oldest = next(iter(pending))
            done = {oldest} if ordered else wait(pending, return_when=FIRST_COMPLETED)[0]
            wait(done)
            for future in [f for f in pending if f in done]:
                item = pending.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    yield died(item)
                    todo.extendleft(reversed(list(pending.values())))
                    pending.clear()
                    return
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _analyse_file(clf: GenreClassifier, path: str, top_k: int) -> FileResult:
    try:
        return FileResult(path, clf.analyse(path, top_k=top_k))
    except GenrifyError as exc:
        return FileResult(path, None, str(exc))


_WORKER: dict = {}


def _init_worker(model, fast) -> None:
    # One process per core: intra-op threads would only contend.
    _WORKER["clf"] = load_classifier(model, fast=fast, threads=1)


def _worker_analyse(path: str, top_k: int) -> FileResult:
    return _analyse_file(_WORKER["clf"], path, top_k)


def _died(path: str) -> FileResult:
    return FileResult(path, None, f"{path}: the analysis process died while analysing this file")


def dataset_track_probabilities(clf: GenreClassifier, dataset, tracks) -> np.ndarray:
    """Song probabilities ``(n_tracks, L)`` of a dataset's tracks: from the stored feature images
    when they are the model's own input (the same backend scores them), else from the audio."""
    from genrify.predict.backends import WindowNetBackend

    stored = isinstance(clf.backend, WindowNetBackend) and dataset.feature_config == clf.config.features
    return np.stack([clf.backend.image_probabilities(dataset.features(t))[0].mean(axis=0) if stored
                     else clf.predict_proba(t.path) for t in tracks])
