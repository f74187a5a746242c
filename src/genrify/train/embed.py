"""Computing musicnn embeddings of a dataset's tracks, resumable like the feature build:
a rerun embeds only tracks whose file is missing. Storage: :mod:`genrify.dataset.embeddings`."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

from genrify.dataset.embeddings import embedding_store, write_track_table
from genrify.dataset.store import Dataset, FeatureStore
from genrify.errors import DatasetError, GenrifyError


def embed_dataset(dataset: Dataset, *, workers: int | None = None, progress: bool = False) -> dict:
    """Compute missing per-window embeddings for every usable track; refresh the per-track table."""
    from tqdm import tqdm

    store = embedding_store(dataset)
    tracks = dataset.tracks()
    if not tracks:
        raise DatasetError(f"{dataset.root}: no usable tracks to embed")
    todo = [t for t in tracks if not store.has(t.sha256)]
    failed: list[tuple[str, str]] = []
    max_d = dataset.audio_config.max_duration
    if todo:
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        bar = tqdm(total=len(todo), desc="embed", unit="track", disable=not progress, leave=False)
        jobs = [(t.path, t.sha256, str(store.root), max_d) for t in todo]
        if workers == 1:
            for job in jobs:
                failed += _collect(embed_track(*job))
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
                for fut in as_completed([pool.submit(embed_track, *j) for j in jobs]):
                    failed += _collect(fut.result())
                    bar.update()
        bar.close()
    write_track_table(dataset, tracks)
    return {"tracks": len(tracks), "embedded": len(todo) - len(failed), "reused": len(tracks) - len(todo),
            "failed": failed}


def _collect(result):
    return [] if result is None else [result]


def _init_worker():
    import torch

    torch.set_num_threads(1)


_EMBEDDER = {}


def embed_track(path: str, sha: str, store_root: str, max_duration: float | None):
    """Embed one file into the store; returns ``(path, reason)`` on failure, else ``None``."""
    from genrify.audio import load_audio
    from genrify.models.embedder import MusicnnEmbedder
    from genrify.features.musicnn import SR

    if "e" not in _EMBEDDER:
        _EMBEDDER["e"] = MusicnnEmbedder()
    try:
        y, _ = load_audio(path, sr=SR, max_duration=max_duration)
    except GenrifyError as exc:
        return (path, str(exc))
    FeatureStore(store_root).write(sha, _EMBEDDER["e"].embed(y).embeddings)
    return None


