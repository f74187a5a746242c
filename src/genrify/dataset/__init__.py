"""A dataset folder (``my.gdb/``): a SQLite index of tracks, the single source of
truth, and a feature store of memory-mappable ``.npy`` arrays keyed by content hash.

``index.sqlite``   tracks(path, sha256, genre, artist, title, duration, status, error, ...) + meta
``features/``      ``<sha256>.npy`` feature images, shape ``(n_features, frames)``
``embeddings/``    per-window and per-track embeddings (musicnn), when computed
``exclusions.json``  tracks that training and evaluation leave out (``genrify audit --apply``)
"""

from genrify.dataset.index import Track, TrackIndex
from genrify.dataset.store import Dataset, FeatureStore

__all__ = ["Dataset", "FeatureStore", "Track", "TrackIndex"]
