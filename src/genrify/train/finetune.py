"""Fine-tuning musicnn's back end (``musicnn-finetune``) on stored per-window embeddings."""

from __future__ import annotations

import numpy as np

from genrify.config import RunConfig
from genrify.dataset.splits import train_val_split
from genrify.errors import DatasetError
from genrify.models.modelfile import ModelFile, network_tensors
from genrify.predict.heads import head_logits, load_head
from genrify.train.calibrate import fit_temperature
from genrify.train.crossval import out_of_fold
from genrify.train.loop import History, WindowSet, fit


def embedding_set(E: list[np.ndarray], y: np.ndarray, idx) -> WindowSet:
    """The windows of tracks ``idx`` as training samples: ``x (n, dim)``, each with its track's label."""
    idx = list(idx)
    if not idx:
        return WindowSet(np.zeros((0, E[0].shape[1]), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return WindowSet(np.concatenate([E[i] for i in idx]).astype(np.float32),
                     np.concatenate([np.full(len(E[i]), y[i], dtype=np.int64) for i in idx]),
                     np.concatenate([np.full(len(E[i]), i, dtype=np.int64) for i in idx]))


def train_finetune(E: list[np.ndarray], y: np.ndarray, groups: list[str], *, config: RunConfig, labels: list[str],
                   progress: bool = False) -> tuple[ModelFile, History, np.ndarray]:
    """Fine-tune musicnn's back end (``musicnn-finetune``) on per-window embeddings.

    A grouped validation split (``config.train.val_fraction``) chooses the number of
    epochs by early stopping and gives the calibration temperature (when it holds at
    least 10 songs; else T = 1); the head is then retrained from the pretrained
    weights on every track for that many epochs, so no song is left unused. Returns
    the model file, the validation run's history and the validation indices.
    """
    from dataclasses import replace

    if len(set(y.tolist())) < 2:
        raise DatasetError("need at least two genres to train a classifier")
    tr, va = train_val_split([labels[i] for i in y], groups, val_fraction=config.train.val_fraction,
                             seed=config.train.seed)
    model, history = fit(embedding_set(E, y, tr), embedding_set(E, y, va) if len(va) else None, config=config,
                         n_classes=len(labels), progress=progress)
    temperature = fit_temperature(head_logits(model, [E[i] for i in va]), y[va]) if len(va) >= 10 else 1.0
    if len(va):
        refit = replace(config, train=replace(config.train, epochs=history.best_epoch + 1))
        model, _ = fit(embedding_set(E, y, range(len(y))), None, config=refit, n_classes=len(labels), progress=progress)
    tensors = network_tensors(model)
    tensors["calibration.temperature"] = np.array([temperature], np.float32)
    extra = {"history": history.to_dict(), "seed": config.train.seed, "epochs": history.best_epoch + 1,
             "temperature_songs": int(len(va))}
    return ModelFile(config=config, labels=list(labels), tensors=tensors, extra=extra), history, va


def finetune_oof_logits(E: list[np.ndarray], y: np.ndarray, groups: list[str], *, config: RunConfig,
                        labels: list[str], folds: int) -> list[np.ndarray]:
    """Out-of-fold per-window logits of :func:`train_finetune`: every track scored by a
    model that never saw its group (each fold chooses its epochs on its own validation split)."""
    def score(tr, te):
        mf, _, _ = train_finetune([E[i] for i in tr], y[tr], [groups[i] for i in tr], config=config, labels=labels)
        return head_logits(load_head(mf), [E[i] for i in te])

    return out_of_fold(y, groups, labels=labels, folds=folds, seed=config.train.seed, score_fold=score)[0]
