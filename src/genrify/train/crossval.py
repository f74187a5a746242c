"""Grouped K-fold cross-validation: every song scored by a model that never saw its group.

One fold loop for every kind of model: the caller says how to fit on the
training indices and score the test indices; each kind's module
(:mod:`~genrify.train.nets`, :mod:`~genrify.train.probe`,
:mod:`~genrify.train.finetune`) scores through the shipped inference code.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from genrify.dataset.splits import check_cross_validation, group_kfold


def out_of_fold(y: np.ndarray, groups: list[str], *, labels: list[str], folds: int, seed: int,
                score_fold: Callable[[np.ndarray, np.ndarray], Sequence]) -> tuple[list, list[tuple]]:
    """Out-of-fold outputs, one per song: ``score_fold(train_idx, test_idx)`` fits on the first and
    returns one output per song of the second. Returns the outputs and the ``(train, test)`` splits."""
    names = [labels[i] for i in y]
    check_cross_validation(names, groups)
    out: list = [None] * len(y)
    splits = list(group_kfold(names, groups, folds=folds, seed=seed))
    for tr, te in splits:
        for i, result in zip(te, score_fold(tr, te)):
            out[i] = result
    return out, splits
