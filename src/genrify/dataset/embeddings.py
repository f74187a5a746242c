"""Where a dataset keeps the musicnn embeddings of its tracks (computed by :mod:`genrify.train.embed`).

``embeddings/msd_musicnn/<sha256>.npy``  per-window embeddings ``(n_windows, 1506)``
``embeddings/msd_musicnn/tracks.npy``    per-track embeddings ``(n_tracks, 1506)`` (mean of windows)
``embeddings/msd_musicnn/tracks.json``   the tracks' sha256 / path / genre, in the row order of tracks.npy

"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from genrify.config import MUSICNN_BACKBONE, MUSICNN_EMBEDDING_DIM
from genrify.dataset.store import Dataset, FeatureStore
from genrify.errors import DatasetError

BACKBONE = MUSICNN_BACKBONE


def embedding_store(dataset: Dataset) -> FeatureStore:
    return FeatureStore(dataset.root / "embeddings" / BACKBONE)


def write_track_table(dataset: Dataset, tracks) -> None:
    """Refresh ``tracks.npy`` / ``tracks.json``: the per-track mean embedding of every embedded track of ``tracks``."""
    from genrify.fileio import atomic_path, write_text_atomic

    store = embedding_store(dataset)
    done = [t for t in tracks if store.has(t.sha256)]
    table = np.stack([np.asarray(store.read(t.sha256)).mean(axis=0) for t in done]) if done else np.zeros((0, MUSICNN_EMBEDDING_DIM))
    with atomic_path(store.root / "tracks.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, table.astype(np.float32), allow_pickle=False)
    write_text_atomic(store.root / "tracks.json",
                      json.dumps([{"sha256": t.sha256, "path": t.path, "genre": t.genre} for t in done]))


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
