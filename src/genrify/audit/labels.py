"""What a genre collection's labels hide: artist concentration, balance, not-music, likely mislabels.

Each function takes the tracks' metadata and/or arrays and returns plain data
(tables, scores, indices); :mod:`genrify.audit.core` turns them into findings.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def artist_table(genres: list[str], artists: list[str | None]) -> dict[str, dict]:
    """Per genre: ``tracks``, ``artists`` (distinct, case-folded), ``unknown`` (tracks without an artist),
    ``top_artist`` and ``top_share`` (its share of the genre's tracks)."""
    out = {}
    for genre in sorted(set(genres)):
        names = [a for g, a in zip(genres, artists) if g == genre]
        known = Counter(a.strip().casefold() for a in names if a and a.strip())
        display: dict[str, str] = {}
        for a in names:  # the first spelling met names the artist
            if a and a.strip():
                display.setdefault(a.strip().casefold(), a.strip())
        top, count = known.most_common(1)[0] if known else (None, 0)
        out[genre] = {"tracks": len(names), "artists": len(known), "unknown": len(names) - sum(known.values()),
                      "top_artist": display.get(top), "top_share": count / len(names) if names else 0.0}
    return out


def balance_table(genres: list[str], durations: list[float | None]) -> dict[str, dict]:
    """Per genre: ``tracks`` and ``minutes`` of audio."""
    out: dict[str, dict] = {}
    for g, d in zip(genres, durations):
        row = out.setdefault(g, {"tracks": 0, "minutes": 0.0})
        row["tracks"] += 1
        row["minutes"] += (d or 0.0) / 60
    return dict(sorted(out.items()))


def music_probabilities(windows: list[np.ndarray], tensors: dict[str, np.ndarray]) -> np.ndarray:
    """Mean music probability ``(n_tracks,)`` of a music / not-music probe (``tensors``: ``music.*``, e.g.
    :func:`genrify.predict.resolve.embedding_music_probe`) over each track's stored window embeddings."""
    from genrify.predict.heads import probe_logits, sigmoid

    with np.errstate(over="ignore"):  # exp overflow is a probability of exactly 0 or 1
        return np.array([float(sigmoid(probe_logits(tensors, np.asarray(w, np.float32), prefix="music")[:, 0]).mean())
                         for w in windows])


def out_of_fold_probabilities(means: np.ndarray, y: np.ndarray, groups: list[str], *, labels: list[str],
                              folds: int, C: float, seed: int, progress=None) -> np.ndarray:
    """Out-of-fold genre probabilities ``(n_tracks, n_genres)`` of genrify's linear probe over per-track
    mean embeddings ``means (n_tracks, dim)``: every track scored by a probe that never saw its group.

    ``progress(stage, done, total)``, if given, hears of each fitted fold: on a large collection the
    folds are most of an audit's time."""
    from genrify.predict.heads import probe_logits, song_softmax
    from genrify.train.crossval import out_of_fold
    from genrify.train.probe import fit_probe

    fitted = 0

    def score(tr, te):
        nonlocal fitted
        t = fit_probe([means[i][None, :] for i in tr], y[tr], C=C, seed=seed, n_classes=len(labels))
        fitted += 1
        if progress is not None:
            progress("cross-validation", fitted, folds)
        return [probe_logits(t, means[i][None, :]) for i in te]

    if progress is not None:
        progress("cross-validation", 0, folds)
    logits = out_of_fold(y, groups, labels=labels, folds=folds, seed=seed, score_fold=score)[0]
    return song_softmax(logits)


def label_issues(y: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Indices of probably mislabelled tracks by confident learning (cleanlab), most doubtful first."""
    from cleanlab.filter import find_label_issues

    present = np.unique(y)
    if len(present) < 2:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(find_label_issues(labels=y, pred_probs=probabilities, filter_by="prune_by_noise_rate",
                                        return_indices_ranked_by="self_confidence"), dtype=np.int64)
