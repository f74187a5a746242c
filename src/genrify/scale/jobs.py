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
    """An analyser for ``genrify tag``: ``paths → SongResult per path, as they finish`` on the cluster
    (:func:`genrify.tagging.stage.analyse_song` in the actors; the driver records them in the index)."""
    setup = classifier_setup(model, fast=fast, top_k=top_k)

    def analyse(paths):
        for _, result in run_stage("tag", [str(p) for p in paths], setup=setup, config=config, ordered=False):
            yield result

    return analyse


def embed_engine(config: RayConfig):
    """The ``engine`` of :func:`genrify.train.embed.embed_dataset` that runs its stage on the cluster."""

    def engine(jobs):
        return run_stage("embed", list(jobs), setup={}, config=config, ordered=False)

    return engine


def analyse_library_on_ray(paths, *, index, job, config: RayConfig) -> int:
    """The analysis half of ``genrify tag`` on the cluster; returns how many songs it added to ``index``.

    Every audio file under ``paths`` that ``index`` does not know yet (by path, size and time, for
    ``job``'s model) is analysed by the actors, which also hash it; this driver alone records the
    answers, one row per content hash (a file whose hash is known already is only noted at its new
    path). :func:`genrify.tagging.run_tag_job` then finds them all in the index and chooses and
    writes as usual. Files that fail are left out: the job answers them with their reason.
    """
    from genrify.fileio import stat_regular
    from genrify.tagging import record_song
    from genrify.tagging.job import list_files

    todo = []
    for f in list_files(paths):
        try:
            st = stat_regular(f.path)
        except OSError:
            continue
        if f.error is None and index.known_path(f.path, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                                model=job.model_id) is None:
            todo.append(f.path)
    added = 0
    for result in tag_engine(config, model=job.model, fast=job.fast)(todo) if todo else ():
        if result.analysis is None:
            continue
        facts = result.facts
        known = index.known_hash(facts.digest, model=job.model_id)
        if known is not None:  # a copy or a moved file of a song analysed before: the same row
            index.see(known, path=result.path, size=facts.size, mtime_ns=facts.mtime_ns, digest=facts.digest)
        else:
            record_song(index, result, model_id=job.model_id)
            added += 1
    return added
