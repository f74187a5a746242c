"""Chromaprint fingerprints of a dataset's tracks, and which pairs of tracks share a recording.

A fingerprint is Chromaprint's raw sub-fingerprint sequence (one ``uint32`` per
~0.12 s of audio at 11025 Hz), computed by libchromaprint through ``pyacoustid``
from genrify's own decode (:func:`genrify.audio.load_audio`), so every container
genrify reads is fingerprinted the same way. They are cached in
``<dataset>/fingerprints/<sha256>.npy``: a second audit decodes nothing.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from genrify.dataset.store import Dataset, FeatureStore
from genrify.errors import GenrifyError

#: Chromaprint's own working rate; decoding straight to it skips its resampler.
FINGERPRINT_SR = 11025
#: Chromaprint returns nothing for clips under ~3 s; shorter clips are padded with silence to this.
MIN_SECONDS = 4.0
#: Postings longer than this (silence, a steady drone) say nothing about which song it is.
MAX_POSTINGS = 20


def fingerprint(y: np.ndarray, *, sr: int = FINGERPRINT_SR) -> np.ndarray:
    """Raw Chromaprint fingerprint ``(n_frames,)`` uint32 of mono float samples ``y`` at ``sr`` Hz."""
    import acoustid
    import chromaprint

    y = np.asarray(y, dtype=np.float32)
    if len(y) < MIN_SECONDS * sr:
        y = np.concatenate([y, np.zeros(int(MIN_SECONDS * sr) - len(y), np.float32)])
    pcm = (np.clip(y, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    try:
        raw, _ = chromaprint.decode_fingerprint(acoustid.fingerprint(sr, 1, iter([pcm])))
    except acoustid.FingerprintGenerationError:
        return np.zeros(0, np.uint32)
    return np.asarray(raw, dtype=np.int64).astype(np.uint32)


def fingerprint_store(dataset: Dataset) -> FeatureStore:
    return FeatureStore(dataset.root / "fingerprints")


def dataset_fingerprints(dataset: Dataset, tracks, *, workers: int = 2, progress=None) -> dict[str, np.ndarray]:
    """``{sha256: fingerprint}`` of ``tracks``, computing (and caching) only the missing ones.

    A track that no longer decodes is left out (the audit reports it as not fingerprinted).
    ``progress(stage, done, total)``, if given, hears of each fingerprinted track.
    """
    store = fingerprint_store(dataset)
    todo = {t.sha256: t.path for t in tracks if not store.has(t.sha256)}

    def one(item):
        from genrify.audio import load_audio

        sha, path = item
        try:
            y, _ = load_audio(path, sr=FINGERPRINT_SR, max_duration=dataset.audio_config.max_duration)
        except GenrifyError:
            return
        store.write(sha, fingerprint(y))

    if todo:
        # load_audio decodes in its own worker process, so threads are enough to use every core.
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for done, _ in enumerate(pool.map(one, todo.items()), 1):
                if progress is not None:
                    progress("fingerprints", done, len(todo))
    return {t.sha256: np.asarray(store.read(t.sha256)) for t in tracks if store.has(t.sha256)}


def similarity(a: np.ndarray, b: np.ndarray, offset: int) -> tuple[float, int]:
    """Share of equal bits of ``a[i]`` and ``b[i - offset]`` over their overlap, and the overlap in frames."""
    lo, hi = max(0, offset), min(len(a), offset + len(b))
    if hi <= lo:
        return 0.0, 0
    x = a[lo:hi].astype(np.uint32) ^ b[lo - offset:hi - offset].astype(np.uint32)
    wrong = np.unpackbits(x.view(np.uint8)).mean()
    return float(1.0 - wrong), hi - lo


def matching_pairs(fps: list[np.ndarray], *, min_votes: int = 3, threshold: float = 0.85,
                   min_overlap: int = 16) -> list[tuple[int, int, float, int]]:
    """Pairs ``(i, j, similarity, offset)`` of fingerprints that share a recording.

    Candidates are pairs with at least ``min_votes`` identical sub-fingerprints at one
    relative offset (an inverted index, so 5,000 tracks never compare all pairs); a
    candidate matches when at least ``threshold`` of the bits agree over ``min_overlap``
    frames or more (different recordings agree on about half).
    """
    values, owners, positions = [], [], []
    for i, fp in enumerate(fps):
        values.append(fp.astype(np.int64))
        owners.append(np.full(len(fp), i))
        positions.append(np.arange(len(fp)))
    if not values:
        return []
    v, o, p = (np.concatenate(a) for a in (values, owners, positions))
    order = np.argsort(v, kind="stable")
    v, o, p = v[order], o[order], p[order]
    bounds = np.flatnonzero(np.diff(v)) + 1
    votes: Counter = Counter()
    for start, end in zip(np.r_[0, bounds], np.r_[bounds, len(v)]):
        if end - start < 2 or end - start > MAX_POSTINGS:
            continue
        oo, pp = o[start:end], p[start:end]
        for a in range(len(oo)):
            for b in range(a + 1, len(oo)):
                if oo[a] != oo[b]:
                    i, j, d = (oo[a], oo[b], pp[a] - pp[b]) if oo[a] < oo[b] else (oo[b], oo[a], pp[b] - pp[a])
                    votes[(int(i), int(j), int(d))] += 1
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for (i, j, d), n in votes.items():
        if n < min_votes:
            continue
        for off in (d - 1, d, d + 1):
            sim, overlap = similarity(fps[i], fps[j], off)
            if overlap >= min(min_overlap, len(fps[i]), len(fps[j])) and sim > best.get((i, j), (0.0, 0))[0]:
                best[(i, j)] = (sim, off)
    return sorted(((i, j, s, off) for (i, j), (s, off) in best.items() if s >= threshold), key=lambda r: -r[2])
