"""The dataset's musicnn embeddings: stored per window and per track, resumable, exported in four formats."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genrify.dataset import Dataset
from genrify.errors import DatasetError


def _copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_embeddings_are_stored_per_window_and_per_track(real_embedded, real_embedded_windows):
    from genrify.dataset.embeddings import embedding_store
    from genrify.models.embedder import EMBEDDING_DIM

    tracks, windows = real_embedded_windows
    for t, w in zip(tracks, windows):
        # every non-overlapping 3 s window of a 15–30 s clip
        assert w.shape[1] == EMBEDDING_DIM and 5 <= len(w) <= 10 and np.isfinite(w).all(), t.path
    ds = Dataset(real_embedded)
    store = embedding_store(ds)
    ds.close()
    table = np.load(store.root / "tracks.npy", allow_pickle=False)
    meta = json.loads((store.root / "tracks.json").read_text())
    assert [m["sha256"] for m in meta] == [t.sha256 for t in tracks]
    np.testing.assert_allclose(table, np.stack([w.mean(axis=0) for w in windows]), rtol=1e-5, atol=1e-6)


def test_embedding_is_resumable_and_computes_only_what_is_missing(real_embedded, tmp_path):
    from genrify.dataset.embeddings import embedding_store
    from genrify.train.embed import embed_dataset

    copy = _copy_dataset(real_embedded, tmp_path / "copy.gdb")
    ds = Dataset(copy)
    try:
        store = embedding_store(ds)
        first = ds.tracks()[0]
        kept = np.asarray(store.read(first.sha256)).copy()
        again = embed_dataset(ds, workers=1)
        assert again["embedded"] == 0 and again["reused"] == again["tracks"] == 28
        (store.root / f"{first.sha256}.npy").unlink()
        resumed = embed_dataset(ds, workers=1)
        assert resumed["embedded"] == 1 and resumed["reused"] == 27
        np.testing.assert_allclose(np.asarray(store.read(first.sha256)), kept, rtol=1e-5, atol=1e-5)
    finally:
        ds.close()


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".parquet"])
def test_embedding_export_formats(real_embedded, tmp_path, suffix):
    from genrify.dataset.embeddings import embedding_store, export_embeddings

    ds = Dataset(real_embedded)
    try:
        table = np.load(embedding_store(ds).root / "tracks.npy", allow_pickle=False)
        genres = [t.genre for t in ds.tracks()]
        out = export_embeddings(ds, tmp_path / f"emb{suffix}")
    finally:
        ds.close()
    if suffix == ".npy":
        np.testing.assert_array_equal(np.load(out, allow_pickle=False), table)
    elif suffix == ".npz":
        with np.load(out, allow_pickle=False) as z:
            np.testing.assert_array_equal(z["embeddings"], table)
            assert list(z["genre"]) == genres
    elif suffix == ".csv":
        with open(out, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0][:3] == ["path", "genre", "sha256"] and len(rows[0]) == 3 + table.shape[1]
        assert [r[1] for r in rows[1:]] == genres
        np.testing.assert_allclose(np.array([r[3:] for r in rows[1:]], dtype=np.float32), table, rtol=1e-5, atol=1e-6)
    else:
        import pyarrow.parquet as pq

        t = pq.read_table(out)
        assert t.column("genre").to_pylist() == genres
        np.testing.assert_array_equal(np.array(t.column("embedding").to_pylist(), dtype=np.float32), table)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # nothing half-written beside it


def test_embedding_export_refuses_unknown_format(real_embedded, tmp_path):
    from genrify.dataset.embeddings import export_embeddings

    ds = Dataset(real_embedded)
    try:
        with pytest.raises(DatasetError, match="unsupported export format"):
            export_embeddings(ds, tmp_path / "emb.xlsx")
    finally:
        ds.close()
    assert list(tmp_path.iterdir()) == []
