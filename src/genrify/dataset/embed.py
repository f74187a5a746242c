"""Musicnn embeddings of a dataset's tracks, stored beside the feature store.

``embeddings/msd_musicnn/<sha256>.npy``  per-window embeddings ``(n_windows, 1506)``
``embeddings/msd_musicnn/tracks.npy``    per-track embeddings ``(n_tracks, 1506)`` (mean of windows)
``embeddings/msd_musicnn/tracks.json``   the tracks' sha256 / path / genre, in the row order of tracks.npy

Resumable like the feature build: a rerun embeds only tracks whose file is missing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from genrify.dataset.store import Dataset, FeatureStore
from genrify.errors import DatasetError, GenrifyError

from genrify.features.embeddings import EMBEDDING_DIM

BACKBONE = "msd_musicnn"


def embedding_store(dataset: Dataset) -> FeatureStore:
    return FeatureStore(dataset.root / "embeddings" / BACKBONE)


def embed_dataset(dataset: Dataset, *, workers: int | None = None, progress: bool = False) -> dict:
    """Compute missing per-window embeddings for every usable track; refresh the per-track table."""
    from tqdm import tqdm

    from genrify.fileio import atomic_path, write_text_atomic

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
    done = [t for t in tracks if store.has(t.sha256)]
    table = np.stack([np.asarray(store.read(t.sha256)).mean(axis=0) for t in done]) if done else np.zeros((0, EMBEDDING_DIM))
    with atomic_path(store.root / "tracks.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, table.astype(np.float32), allow_pickle=False)
    write_text_atomic(store.root / "tracks.json",
                      json.dumps([{"sha256": t.sha256, "path": t.path, "genre": t.genre} for t in done]))
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
    from genrify.features.embeddings import MusicnnEmbedder
    from genrify.features.musicnn import SR

    if "e" not in _EMBEDDER:
        _EMBEDDER["e"] = MusicnnEmbedder()
    try:
        y, _ = load_audio(path, sr=SR, max_duration=max_duration)
    except GenrifyError as exc:
        return (path, str(exc))
    FeatureStore(store_root).write(sha, _EMBEDDER["e"].embed(y).embeddings)
    return None


def load_embeddings(dataset: Dataset, tracks) -> list[np.ndarray]:
    """Per-window embeddings of ``tracks`` (all must have been embedded)."""
    store = embedding_store(dataset)
    missing = [t.path for t in tracks if not store.has(t.sha256)]
    if missing:
        raise DatasetError(f"{dataset.root}: {len(missing)} tracks have no embeddings yet; run 'genrify embed {dataset.root}'")
    return [np.asarray(store.read(t.sha256)) for t in tracks]


def export_embeddings(dataset: Dataset, out: str | os.PathLike) -> Path:
    """Write the per-track embeddings with their labels to ``.npy`` (array only), ``.npz`` or ``.csv``.

    ``.npz`` holds ``embeddings``, ``sha256``, ``path``, ``genre``; ``.csv`` and ``.parquet`` one
    row per track (Parquet: ``path``, ``genre``, ``sha256`` and an ``embedding`` list column).
    """
    from genrify.fileio import atomic_path

    store = embedding_store(dataset)
    if not (store.root / "tracks.npy").exists():
        raise DatasetError(f"{dataset.root}: no embeddings yet; run 'genrify embed {dataset.root}'")
    table = np.load(store.root / "tracks.npy", allow_pickle=False)
    meta = json.loads((store.root / "tracks.json").read_text())
    out = Path(out)
    suffix = out.suffix.lower()
    with atomic_path(out) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, table, allow_pickle=False)
        elif suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez(f, embeddings=table, sha256=np.array([m["sha256"] for m in meta]),
                         path=np.array([m["path"] for m in meta]), genre=np.array([m["genre"] for m in meta]))
        elif suffix == ".csv":
            import csv

            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["path", "genre", "sha256"] + [f"e{i}" for i in range(table.shape[1])])
                for m, row in zip(meta, table):
                    w.writerow([m["path"], m["genre"], m["sha256"]] + [f"{v:.6g}" for v in row])
        elif suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            cols = {"path": [m["path"] for m in meta], "genre": [m["genre"] for m in meta],
                    "sha256": [m["sha256"] for m in meta], "embedding": list(table)}
            pq.write_table(pa.table(cols), tmp)
        else:
            raise DatasetError(f"{out}: unsupported export format (use .npy, .npz, .csv or .parquet)")
    return out
