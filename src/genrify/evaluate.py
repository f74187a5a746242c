"""Evaluation: metrics of held-out predictions, returned as ordered dicts.

The probabilities come from the shipped inference code (:mod:`genrify.predict`),
cross-validated by :mod:`genrify.train.crossval`; rendering lives in
:mod:`genrify.report`. Nothing here trains, scores audio or writes files.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


def expected_calibration_error(probabilities: np.ndarray, y_true: np.ndarray, *, n_bins: int = 10) -> float:
    """ECE of the top-1 confidence over ``n_bins`` equal-width bins."""
    conf = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, *, labels: list[str],
             probabilities: np.ndarray | None = None) -> OrderedDict:
    """Accuracy, macro-F1, per-genre precision/recall/F1/support and the confusion matrix.

    ``y_true``/``y_pred`` are label indices into ``labels``. Macro-F1 is the mean F1 of
    the genres present in ``y_true``: a genre with no songs has no F1 to average (it would
    count as 0); ``absent`` names those genres.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    idx = list(range(len(labels)))
    present = sorted({int(i) for i in np.asarray(y_true).tolist()})
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    out = OrderedDict()
    out["n"] = int(len(y_true))
    out["accuracy"] = float(accuracy_score(y_true, y_pred))
    out["macro_f1"] = float(f1_score(y_true, y_pred, labels=present or idx, average="macro", zero_division=0))
    out["chance"] = float(1.0 / len(labels))
    if probabilities is not None:
        out["ece"] = expected_calibration_error(probabilities, np.asarray(y_true))
    out["per_genre"] = OrderedDict(
        (lab, OrderedDict(precision=float(p[i]), recall=float(r[i]), f1=float(f[i]), support=int(s[i])))
        for i, lab in enumerate(labels))
    out["labels"] = list(labels)
    out["absent"] = [lab for i, lab in enumerate(labels) if i not in present]
    out["confusion"] = confusion_matrix(y_true, y_pred, labels=idx).tolist()
    return out
