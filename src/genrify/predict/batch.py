"""Analysing many files: one classifier, or one per worker process, answers in the order given."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

import numpy as np

from genrify.errors import GenrifyError
from genrify.predict.classifier import Analysis, GenreClassifier
from genrify.predict.loader import load_classifier, resolve_model


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
    todo = deque(paths)
    while todo:
        yield from _pool_run(todo, model=ref, fast=fast, top_k=top_k, workers=workers)


def _pool_run(todo, *, model, fast, top_k: int, workers: int):
    """Analyse ``todo`` (consumed from the left) in one process pool, at most a few files per worker in flight.

    Decoding is isolated already (:mod:`genrify.audio.isolation`); should an
    analysis process die all the same, its file is answered with the reason and
    the caller starts a fresh pool for the rest.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_init_worker,
                             initargs=(model, fast)) as pool:
        pending = deque()
        while todo and len(pending) < 4 * workers:
            path = todo.popleft()
            pending.append((path, pool.submit(_worker_analyse, path, top_k)))
        while pending:
            path, future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool:
                yield FileResult(path, None, f"{path}: the analysis process died while analysing this file")
                todo.extendleft(p for p, _ in reversed(pending))
                return
            if todo:
                nxt = todo.popleft()
                pending.append((nxt, pool.submit(_worker_analyse, nxt, top_k)))
            yield result


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


def dataset_track_probabilities(clf: GenreClassifier, dataset, tracks) -> np.ndarray:
    """Song probabilities ``(n_tracks, L)`` of a dataset's tracks: from the stored feature images
    when they are the model's own input (the same backend scores them), else from the audio."""
    from genrify.predict.backends import WindowNetBackend

    stored = isinstance(clf.backend, WindowNetBackend) and dataset.feature_config == clf.config.features
    return np.stack([clf.backend.image_probabilities(dataset.features(t))[0].mean(axis=0) if stored
                     else clf.predict_proba(t.path) for t in tracks])
