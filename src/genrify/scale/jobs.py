"""genrify's jobs on a Ray cluster: the driver side of ``predict --ray``, ``tag --ray`` and ``embed --ray``."""

from __future__ import annotations

import os
from typing import Iterator

from genrify.scale.engine import RayConfig, run_stage


def analyse_many_on_ray(paths, *, config: RayConfig, model: str | os.PathLike | None = None,
                        fast: bool | None = None, top_k: int = 2) -> Iterator:
    """:func:`genrify.predict.analyse_many` on a Ray cluster: a :class:`~genrify.predict.FileResult`
    per path or fsspec URL, in the order given, equal to the local run's.

    ``model``: as for ``analyse_many``; a model *file* is read here and shipped to
    the actors through Ray's object store, so it need not be on the workers' disks.
    """
    for _, (_, result) in analyse_with_hashes(paths, config=config, model=model, fast=fast, top_k=top_k):
        yield result


def analyse_with_hashes(paths, *, config: RayConfig, model=None, fast: bool | None = None, top_k: int = 2,
                        ordered: bool = True, stats=None) -> Iterator:
    """``(index, (content sha256 or None, FileResult))`` per path, once each; ``ordered=False``: as they
    finish; ``stats``: a :class:`~genrify.scale.engine.RunStats` to fill in."""
    setup = classifier_setup(model, fast=fast, top_k=top_k)
    yield from run_stage("predict", [str(p) for p in paths], setup=setup, config=config, ordered=ordered,
                         stats=stats)


def classifier_setup(model, *, fast: bool | None, top_k: int) -> dict:
    """The actors' classifier: a built-in model by name (every installation has it), or a model
    file's bytes (read and checked here, once, so a bad file fails with its reason before any actor
    starts). ``model``: as :func:`genrify.predict.resolve_model` takes it, or its answer."""
    from genrify.predict import resolve_model

    ref = resolve_model(model)
    model_bytes = None
    if not ref.builtin:
        from genrify.fileio import read_regular

        ref.read()
        model_bytes = read_regular(ref.path)
    return {"model": ref.name if ref.builtin else os.path.basename(ref.name), "model_bytes": model_bytes,
            "fast": fast, "top_k": top_k}


def tag_engine(config: RayConfig, *, model=None, fast: bool | None = None, top_k: int = 2):
    """The analyser of ``genrify tag`` on the cluster (:mod:`genrify.tagging.analyser`): ``analyse(paths, *,
    known)`` yields a :class:`~genrify.tagging.stage.SongResult` per path as they finish. The actors run
    :func:`genrify.tagging.stage.analyse_song`, hashing each file and skipping the analysis of ``known``
    content hashes; the driver (:func:`genrify.tagging.run_tag_job`) records them in the index."""
    setup = classifier_setup(model, fast=fast, top_k=top_k)

    def analyse(paths, *, known=frozenset()):
        for _, result in run_stage("tag", [str(p) for p in paths], setup=setup | {"known": frozenset(known)},
                                   config=config, ordered=False):
            yield result

    return analyse


def embed_engine(config: RayConfig):
    """The ``engine`` of :func:`genrify.train.embed.embed_dataset` that runs its stage on the cluster."""

    def engine(jobs):
        return run_stage("embed", list(jobs), setup={}, config=config, ordered=False)

    return engine
