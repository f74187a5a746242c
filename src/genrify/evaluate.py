"""Evaluation: metrics computed on held-out data only, returned as ordered dicts.

Rendering lives in :mod:`genrify.report`; nothing here writes files.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from genrify.config import RunConfig
from genrify.dataset.windows import cut_windows


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

    ``y_true``/``y_pred`` are label indices into ``labels``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    out = OrderedDict()
    out["n"] = int(len(y_true))
    out["accuracy"] = float(accuracy_score(y_true, y_pred))
    out["macro_f1"] = float(f1_score(y_true, y_pred, labels=idx, average="macro", zero_division=0))
    out["chance"] = float(1.0 / len(labels))
    if probabilities is not None:
        out["ece"] = expected_calibration_error(probabilities, np.asarray(y_true))
    out["per_genre"] = OrderedDict(
        (lab, OrderedDict(precision=float(p[i]), recall=float(r[i]), f1=float(f[i]), support=int(s[i])))
        for i, lab in enumerate(labels))
    out["labels"] = list(labels)
    out["confusion"] = confusion_matrix(y_true, y_pred, labels=idx).tolist()
    return out


def song_probabilities(predict_windows, images: list[np.ndarray], *, mean: np.ndarray, std: np.ndarray,
                       size: int, hop: int) -> np.ndarray:
    """Song-level probabilities ``(n_songs, n_classes)``: the mean over each song's windows."""
    out = []
    for im in images:
        w, _ = cut_windows((np.asarray(im) - mean[:, None]) / std[:, None], size=size, hop=hop)
        out.append(predict_windows(w.astype(np.float32)).mean(axis=0))
    return np.stack(out)


def cross_validate(images: list[np.ndarray], y: np.ndarray, groups: list[str], *, config: RunConfig,
                   labels: list[str], folds: int, progress: bool = False) -> OrderedDict:
    """K-fold cross-validation grouped by artist/track: every song is predicted by a model
    that never saw it (early stopping uses a split of the training folds only)."""
    from genrify.dataset.splits import check_cross_validation, group_kfold
    from genrify.train import predict_windows, train_tracks, window_frames

    check_cross_validation([labels[i] for i in y], groups)
    size, _, hop = window_frames(config)
    oof = np.zeros((len(y), len(labels)), dtype=np.float32)
    fold_acc = []
    for k, (tr, te) in enumerate(group_kfold([labels[i] for i in y], groups, folds=folds, seed=config.train.seed)):
        mf, _, _ = train_tracks([images[i] for i in tr], y[tr], [groups[i] for i in tr], config=config,
                                labels=labels, progress=progress)
        from genrify.predict import GenreClassifier

        net = GenreClassifier(mf).backend.net
        probs = song_probabilities(lambda w: predict_windows(net, w), [images[i] for i in te],
                                   mean=mf.tensors["norm.mean"], std=mf.tensors["norm.std"], size=size, hop=hop)
        oof[te] = probs
        fold_acc.append(float((probs.argmax(1) == y[te]).mean()))
    metrics = evaluate(y, oof.argmax(1), labels=labels, probabilities=oof)
    metrics["folds"] = folds
    metrics["fold_accuracy"] = fold_acc
    metrics["oof_probabilities"] = oof.tolist()
    return metrics
