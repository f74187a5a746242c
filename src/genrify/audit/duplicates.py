"""Which tracks are the same recording: identical decoded audio, re-encodings, trims, excerpts.

Pure functions over per-window musicnn embeddings and Chromaprint fingerprints;
they return index pairs with their evidence, and :func:`group_pairs` joins pairs
into groups (a song filed three times is one finding, not three).
"""

from __future__ import annotations

import numpy as np


def exact_pairs(windows: list[np.ndarray], durations: list[float], *, atol: float = 1e-4) -> list[tuple[int, int]]:
    """Pairs of tracks whose per-window embeddings are equal within ``atol`` and whose durations
    agree within 10 ms: the same decoded audio, whatever the container (FLAC vs WAV, tags)."""
    buckets: dict[tuple, list[int]] = {}
    for i, w in enumerate(windows):
        w = np.asarray(w, dtype=np.float32)
        # A coarse key finds candidates in one pass; allclose confirms them.
        key = (w.shape[0], round(float(durations[i]), 1), *np.round(w.mean(axis=0)[:8], 2).tolist())
        buckets.setdefault(key, []).append(i)
    out = []
    for members in buckets.values():
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i, j = members[a], members[b]
                if abs(durations[i] - durations[j]) <= 0.01 and np.allclose(windows[i], windows[j], atol=atol):
                    out.append((i, j))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def embedding_pairs(windows: list[np.ndarray], *, threshold: float, neighbours: int = 5,
                    dims: int = 128) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, cosine)`` of tracks sharing a passage: the best cosine between any window of one and
    any window of the other reaches ``threshold``.

    Embeddings are standardised over the dataset (so what every song shares does not count) and
    projected on their first ``dims`` principal axes; only each track's ``neighbours`` nearest
    tracks by mean embedding are compared window by window, so the cost grows as n·k, not n².
    """
    n = len(windows)
    if n < 2:
        return []
    flat = np.concatenate([np.asarray(w, dtype=np.float32) for w in windows])
    mean, std = flat.mean(axis=0), flat.std(axis=0) + 1e-6
    z = (flat - mean) / std
    k = min(dims, z.shape[0] - 1, z.shape[1])
    if k >= 1:
        from sklearn.utils.extmath import randomized_svd

        # A randomized SVD of a sample of windows: a full one costs minutes on a large dataset.
        _, _, vt = randomized_svd(z[:: max(1, len(z) // 4000)], k, random_state=0)
        z = z @ vt.T
    z = _unit(z)
    starts = np.r_[0, np.cumsum([len(w) for w in windows])]
    per_track = [z[starts[i]:starts[i + 1]] for i in range(n)]
    means = _unit(np.stack([w.mean(axis=0) for w in per_track]))
    sims = means @ means.T
    np.fill_diagonal(sims, -np.inf)
    k = min(neighbours, n - 1)
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    out: dict[tuple[int, int], float] = {}
    for i in range(n):
        for j in nearest[i]:
            a, b = (i, int(j)) if i < j else (int(j), i)
            if (a, b) not in out:
                out[(a, b)] = float((per_track[a] @ per_track[b].T).max())
    return sorted(((a, b, s) for (a, b), s in out.items() if s >= threshold), key=lambda r: -r[2])


def group_pairs(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected groups (size ≥ 2) of ``n`` items joined by ``pairs``, each sorted, largest first."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g))
