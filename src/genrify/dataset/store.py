"""The feature store and the :class:`Dataset` that joins it with the track index."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from genrify.config import AudioConfig, FeatureConfig
from genrify.dataset.index import Track, TrackIndex
from genrify.errors import DatasetError


class FeatureStore:
    """``<root>/<key>.npy`` arrays, written atomically, read memory-mapped (never pickled)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def has(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def write(self, key: str, array: np.ndarray) -> None:
        from genrify.fileio import atomic_path

        with atomic_path(self.path_for(key)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)

    def read(self, key: str, *, mmap: bool = True) -> np.ndarray:
        try:
            return np.load(self.path_for(key), mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{self.path_for(key)}: unreadable feature file ({exc})") from None


class Dataset:
    """A built dataset folder: index + feature store + the configs used to build it."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset folder (run 'genrify dataset build' first)")
        self.index = TrackIndex(self.root / "index.sqlite")
        self.store = FeatureStore(self.root / "features")
        features = self.index.get_meta("features")
        if features is None:
            raise DatasetError(f"{self.root}: dataset was never built (no feature configuration recorded)")
        self.feature_config = FeatureConfig(**features)
        self.audio_config = AudioConfig(**self.index.get_meta("audio", {}))

    def tracks(self, *, include_excluded: bool = False) -> list[Track]:
        """Usable tracks (status ``ok``), less those on the dataset's exclusion list
        (:mod:`genrify.dataset.exclusions`, written by ``genrify audit --apply``) unless ``include_excluded``,
        each under the genre the audit page relabelled it to, if any."""
        from dataclasses import replace

        from genrify.dataset.exclusions import read_exclusions, read_relabels

        try:
            relabelled = read_relabels(self.root)
        except DatasetError:
            if not include_excluded:
                raise
            relabelled = {}  # the audit reads past a damaged list, so that 'audit --apply' can rewrite it
        tracks = [replace(t, genre=relabelled[t.path]) if t.path in relabelled else t
                  for t in self.index.tracks(status="ok")]
        if include_excluded:
            return tracks
        excluded = read_exclusions(self.root)
        return [t for t in tracks if t.path not in excluded] if excluded else tracks

    def labels(self) -> list[str]:
        return sorted({t.genre for t in self.tracks()})

    def features(self, track: Track) -> np.ndarray:
        """The track's feature image ``(n_features, frames)``, memory-mapped."""
        return self.store.read(track.sha256)

    def close(self) -> None:
        self.index.close()
