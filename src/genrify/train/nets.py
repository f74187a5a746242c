"""Training a network over feature windows (``mlp``, ``cnn``) on whole tracks.

The edge between a dataset and :func:`~genrify.train.loop.fit`: split off a
validation part, normalise with training statistics only, cut windows, fit and
pack the result into a :class:`~genrify.models.modelfile.ModelFile`.
"""

from __future__ import annotations

import numpy as np

from genrify.config import RunConfig
from genrify.dataset.splits import train_val_split
from genrify.dataset.windows import cut_windows, window_frames
from genrify.errors import DatasetError
from genrify.models.modelfile import ModelFile, network_tensors
from genrify.train.crossval import out_of_fold
from genrify.train.loop import History, WindowSet, fit


def normalisation_stats(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over all frames of ``images`` (each ``(n_features, frames)``)."""
    n = sum(im.shape[1] for im in images)
    s = sum(im.sum(axis=1, dtype=np.float64) for im in images)
    ss = sum(np.square(im, dtype=np.float64).sum(axis=1) for im in images)
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean**2, 1e-12))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def make_windows(images: list[np.ndarray], labels: np.ndarray, *, mean, std, size: int, hop: int) -> WindowSet:
    """Normalise each image with ``mean``/``std`` and cut it into windows."""
    xs, ys, ts = [], [], []
    for i, (im, lab) in enumerate(zip(images, labels)):
        w, _ = cut_windows((np.asarray(im) - mean[:, None]) / std[:, None], size=size, hop=hop)
        xs.append(w.astype(np.float32))
        ys.append(np.full(len(w), lab, dtype=np.int64))
        ts.append(np.full(len(w), i, dtype=np.int64))
    if not xs:
        return WindowSet(np.zeros((0, len(mean), size), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return WindowSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(ts))


def train_tracks(images: list[np.ndarray], y: np.ndarray, groups: list[str], *, config: RunConfig,
                 labels: list[str], progress: bool = False) -> tuple[ModelFile, History, np.ndarray]:
    """Train on whole tracks: split off a validation part for early stopping, normalise with
    training statistics only, fit. Returns the model file, the history and the validation indices."""
    if len(set(y.tolist())) < 2:
        raise DatasetError("need at least two genres to train a classifier")
    tr, va = train_val_split([labels[i] for i in y], groups, val_fraction=config.train.val_fraction,
                             seed=config.train.seed)
    mean, std = normalisation_stats([images[i] for i in tr])
    size, hop_train, _ = window_frames(config)
    train_set = make_windows([images[i] for i in tr], y[tr], mean=mean, std=std, size=size, hop=hop_train)
    val_set = make_windows([images[i] for i in va], y[va], mean=mean, std=std, size=size, hop=hop_train)
    model, history = fit(train_set, val_set, config=config, n_classes=len(labels), progress=progress)
    tensors = network_tensors(model)
    tensors["norm.mean"], tensors["norm.std"] = mean, std
    extra = {"history": history.to_dict(), "seed": config.train.seed}
    return ModelFile(config=config, labels=list(labels), tensors=tensors, extra=extra), history, va


def load_dataset_images(dataset, *, progress: bool = False, group_by: str = "artist"):
    """All usable tracks of ``dataset`` with their memory-mapped images, label ids and split groups."""
    tracks = dataset.tracks()
    if not tracks:
        raise DatasetError(f"{dataset.root}: no usable tracks (see 'genrify dataset build' summary)")
    labels = sorted({t.genre for t in tracks})
    images = [dataset.features(t) for t in tracks]
    y = np.array([labels.index(t.genre) for t in tracks], dtype=np.int64)
    return tracks, images, y, [t.group_for(group_by) for t in tracks], labels


def track_probabilities(model_file: ModelFile, images: list[np.ndarray]) -> np.ndarray:
    """Song probabilities ``(n_songs, L)`` of ``model_file`` for stored feature images, scored
    by the shipped backend (the mean of its window probabilities)."""
    from genrify.predict.backends import build_backend, plan_for

    backend = build_backend(model_file, runtime=plan_for(model_file))
    return np.stack([backend.image_probabilities(im)[0].mean(axis=0) for im in images])


def cross_validate(images: list[np.ndarray], y: np.ndarray, groups: list[str], *, config: RunConfig,
                   labels: list[str], folds: int, progress: bool = False) -> dict:
    """K-fold cross-validation grouped by artist/track: every song is predicted by a model
    that never saw it (early stopping uses a split of the training folds only)."""
    from genrify.evaluate import evaluate

    def score(tr, te):
        mf, _, _ = train_tracks([images[i] for i in tr], y[tr], [groups[i] for i in tr], config=config,
                                labels=labels, progress=progress)
        return track_probabilities(mf, [images[i] for i in te])

    out, splits = out_of_fold(y, groups, labels=labels, folds=folds, seed=config.train.seed, score_fold=score)
    oof = np.stack(out).astype(np.float32)
    metrics = evaluate(y, oof.argmax(1), labels=labels, probabilities=oof)
    metrics["folds"] = folds
    metrics["fold_accuracy"] = [float((oof[te].argmax(1) == y[te]).mean()) for _, te in splits]
    metrics["oof_probabilities"] = oof.tolist()
    return metrics
