"""Computing musicnn embeddings of a dataset's tracks, resumable like the feature build:
a rerun embeds only tracks whose file is missing. Storage: :mod:`genrify.dataset.embeddings`.

The stage, :func:`embed_file` (a file → its per-window embeddings), runs in worker
processes here and in Ray actors (:mod:`genrify.scale`) alike; only the driver writes.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

from genrify.dataset.embeddings import embedding_store, write_track_table
from genrify.dataset.store import Dataset
from genrify.errors import DatasetError, GenrifyError


def embed_dataset(dataset: Dataset, *, workers: int | None = None, progress: bool = False, engine=None) -> dict:
    """Compute missing per-window embeddings for every usable track; refresh the per-track table.

    ``engine``: where the stage runs, a callable ``jobs → iterable of (index, (embeddings, reason))``
    over ``jobs`` of ``(path, max_duration)`` (e.g. :func:`genrify.scale.embed_engine`); default:
    ``workers`` local processes.
    """
    from tqdm import tqdm

    store = embedding_store(dataset)
    tracks = dataset.tracks()
    if not tracks:
        raise DatasetError(f"{dataset.root}: no usable tracks to embed")
    todo = [t for t in tracks if not store.has(t.sha256)]
    failed: list[tuple[str, str]] = []
    if todo:
        bar = tqdm(total=len(todo), desc="embed", unit="track", disable=not progress, leave=False)
        jobs = [(t.path, dataset.audio_config.max_duration) for t in todo]
        results = engine(jobs) if engine is not None else _local_results(jobs, workers)
        for i, (embeddings, reason) in results:
            if reason is not None:
                failed.append((todo[i].path, reason))
            else:
                store.write(todo[i].sha256, embeddings)
            bar.update()
        bar.close()
    write_track_table(dataset, tracks)
    return {"tracks": len(tracks), "embedded": len(todo) - len(failed), "reused": len(tracks) - len(todo),
            "failed": failed}


def _local_results(jobs, workers: int | None):
    """``(index, embed_file(*job))`` for every job, over ``workers`` processes, as they finish."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        yield from ((i, embed_file(*job)) for i, job in enumerate(jobs))
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(embed_file, *job): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _init_worker():
    import torch

    torch.set_num_threads(1)


_EMBEDDER = {}


def embed_file(path: str, max_duration: float | None):
    """The stage: one file → ``(embeddings (n_windows, 1506) float32, None)``, or ``(None, reason)``
    when it cannot be decoded. The embedder loads once per process."""
    from genrify.audio import load_audio
    from genrify.features.musicnn import SR
    from genrify.models.embedder import MusicnnEmbedder

    if "e" not in _EMBEDDER:
        _EMBEDDER["e"] = MusicnnEmbedder()
    try:
        y, _ = load_audio(path, sr=SR, max_duration=max_duration)
    except GenrifyError as exc:
        return None, str(exc)
    return _EMBEDDER["e"].embed(y).embeddings, None
