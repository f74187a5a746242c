"""Seeded splits that keep every window of a track, and every track of an artist, on one side."""

from __future__ import annotations

import numpy as np

from genrify.errors import DatasetError


def group_kfold(labels: list[str], groups: list[str], *, folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified group K-fold over tracks: ``[(train_idx, test_idx), ...]``."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels_arr = np.asarray(labels)
    n_groups = len(set(groups))
    if folds < 2:
        raise DatasetError("need at least 2 folds")
    if n_groups < folds:
        raise DatasetError(f"only {n_groups} independent groups (artists/tracks) for {folds} folds")
    largest = max(np.unique(labels_arr, return_counts=True)[1])
    if largest < folds:  # scikit-learn refuses: no genre could be spread over every fold
        raise DatasetError(f"cannot split {len(labels_arr)} tracks into {folds} folds: the largest genre has only "
                           f"{largest} songs; ask for {largest} folds or fewer (--folds {largest}), or add songs")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    try:
        return [(tr, te) for tr, te in splitter.split(np.zeros(len(labels_arr)), labels_arr, groups)]
    except ValueError as exc:  # e.g. fewer tracks in every genre than folds
        raise DatasetError(f"cannot split {len(labels_arr)} tracks into {folds} folds ({exc})") from None


def check_cross_validation(labels: list[str], groups: list[str]) -> None:
    """Refuse a cross-validation that cannot test a genre: one with a single artist/track group."""
    for lab in sorted(set(labels)):
        if len({g for g, l in zip(groups, labels) if l == lab}) < 2:
            raise DatasetError(f"genre {lab!r} has a single artist/track group: a split that keeps each artist on one "
                               "side cannot both train and test it (add another artist, or fewer genres)")


def train_val_split(labels: list[str], groups: list[str], *, val_fraction: float = 0.2,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One stratified, grouped split with about ``val_fraction`` of the tracks held out."""
    if not 0 < val_fraction < 1:
        raise DatasetError("val_fraction must be between 0 and 1")
    labels_arr, groups_arr = np.asarray(labels), np.asarray(groups)
    # A genre whose tracks all share one group cannot be validated; it trains whole.
    single = {lab for lab in set(labels) if len(set(groups_arr[labels_arr == lab])) < 2}
    rest = np.flatnonzero(~np.isin(labels_arr, list(single)))
    always = np.flatnonzero(np.isin(labels_arr, list(single)))
    folds = max(2, int(round(1 / val_fraction)))
    folds = min(folds, len(set(groups_arr[rest])))
    if folds < 2:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    largest = max(np.unique(labels_arr[rest], return_counts=True)[1])
    if largest < folds:
        raise DatasetError(_too_few_to_validate(largest, val_fraction))
    tr, va = group_kfold(list(labels_arr[rest]), list(groups_arr[rest]), folds=folds, seed=seed)[0]
    return np.sort(np.concatenate([rest[tr], always])), rest[va]


def _too_few_to_validate(largest: int, val_fraction: float) -> str:
    """What to do when no genre has enough songs to hold out ``val_fraction`` of them."""
    import math

    more = (f"hold out more with --val-fraction {math.ceil(100 / largest) / 100:.2f} (one song in {largest}), "
            if largest >= 2 else "")
    return (f"too few songs for a validation split: the largest genre has {largest}, and holding out "
            f"{val_fraction:.0%} of each genre needs at least {max(2, round(1 / val_fraction))}; {more}"
            "train --model musicnn-probe (it needs no validation split and learns from a few songs per genre), "
            "or add songs (10 or more per genre)")
