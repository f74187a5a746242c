"""Linear probes over musicnn embeddings (``musicnn-probe``, and the music / not-music probe)."""

from __future__ import annotations

import numpy as np

from genrify.config import RunConfig
from genrify.errors import DatasetError
from genrify.models.modelfile import ModelFile
from genrify.predict.heads import probe_logits
from genrify.train.calibrate import fit_temperature
from genrify.train.crossval import out_of_fold


def fit_probe(windows: list[np.ndarray], y: np.ndarray, *, C: float, seed: int = 0, prefix: str = "probe",
              n_classes: int | None = None) -> dict[str, np.ndarray]:
    """Class-balanced logistic regression over per-window embeddings.

    ``windows[i]`` is ``(n_windows_i, dim)`` for track ``i`` with label ``y[i]``;
    every window is a training sample carrying its track's label. Returns the
    tensors ``<prefix>.mean``, ``.scale`` (standardisation) and ``.coef (L, dim)``,
    ``.intercept (L,)``; a binary problem gives one row. With ``n_classes``, classes
    absent from ``y`` (a small cross-validation fold) get a row that never wins.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate(windows).astype(np.float64)
    Y = np.concatenate([np.full(len(w), lab) for w, lab in zip(windows, y)])
    if len(np.unique(Y)) < 2:
        raise DatasetError("need at least two classes to train a probe")
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-6] = 1.0
    clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit((X - mean) / scale, Y)
    coef, intercept = clf.coef_, clf.intercept_
    if n_classes is not None:
        # One row per class, in label order: a binary fit's single row becomes two
        # (softmax of ±z/2 is the sigmoid of z); classes absent from this fit never win.
        if len(clf.classes_) == 2:
            coef = np.vstack([-coef, coef]) / 2
            intercept = np.array([-intercept[0], intercept[0]]) / 2
        full_coef = np.zeros((n_classes, X.shape[1]))
        full_int = np.full(n_classes, -1e4)
        full_coef[clf.classes_] = coef
        full_int[clf.classes_] = intercept
        coef, intercept = full_coef, full_int
    return {f"{prefix}.mean": mean.astype(np.float32), f"{prefix}.scale": scale.astype(np.float32),
            f"{prefix}.coef": coef.astype(np.float32), f"{prefix}.intercept": intercept.astype(np.float32)}


def probe_oof_logits(E: list[np.ndarray], y: np.ndarray, groups: list[str], *, labels: list[str], folds: int,
                     C: float, seed: int = 0) -> list[np.ndarray]:
    """Out-of-fold per-window logits: every track scored by a probe that never saw its group."""
    def score(tr, te):
        t = fit_probe([E[i] for i in tr], y[tr], C=C, seed=seed, n_classes=len(labels))
        return [probe_logits(t, E[i]) for i in te]

    return out_of_fold(y, groups, labels=labels, folds=folds, seed=seed, score_fold=score)[0]


def train_probe(E: list[np.ndarray], y: np.ndarray, groups: list[str], *, config: RunConfig,
                labels: list[str]) -> ModelFile:
    """Fit the musicnn genre probe on all tracks; calibrate its temperature on out-of-fold
    predictions when every genre has at least 3 independent groups (else T = 1)."""
    if len(set(y.tolist())) < 2:
        raise DatasetError("need at least two genres to train a classifier")
    C, seed = config.model.C, config.train.seed
    tensors = fit_probe(E, y, C=C, seed=seed, n_classes=len(labels))
    per_class_groups = min(len({g for g, lab in zip(groups, y) if lab == k}) for k in set(y.tolist()))
    folds = min(5, per_class_groups)
    temperature = 1.0
    if folds >= 3:
        oof = probe_oof_logits(E, y, groups, labels=labels, folds=folds, C=C, seed=seed)
        temperature = fit_temperature(oof, y)
    tensors["calibration.temperature"] = np.array([temperature], np.float32)
    extra = {"seed": seed, "temperature_folds": folds if folds >= 3 else 0}
    return ModelFile(config=config, labels=list(labels), tensors=tensors, extra=extra)
