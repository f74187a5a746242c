"""The one training loop, for every architecture in the model registry.

Pure core: :func:`fit` takes arrays of windows and labels and returns a trained
model and its history. :func:`train_on_dataset` is the edge that reads a
dataset, splits it, normalises with training statistics only and packs the
result into a :class:`~genrify.models.modelfile.ModelFile`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from genrify.config import RunConfig, TrainConfig
from genrify.dataset.splits import train_val_split
from genrify.dataset.windows import cut_windows
from genrify.errors import DatasetError
from genrify.models import build_model
from genrify.models.modelfile import ModelFile, network_tensors


@dataclass
class History:
    """Per-epoch learning curves; ``best_epoch`` is the checkpoint that was kept (0-based)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int = -1

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class WindowSet:
    """Windows cut from a set of tracks: ``x (n, n_features, size)``, ``y (n,)``, ``track (n,)``."""

    x: np.ndarray
    y: np.ndarray
    track: np.ndarray


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """``total / (n_classes * count)`` per class (sklearn's "balanced"); absent classes get 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def fit(train: WindowSet, val: WindowSet | None, *, config: RunConfig, n_classes: int,
        progress: bool = False) -> tuple[nn.Module, History]:
    """Train ``config.model`` on normalised windows (or embeddings ``(n, dim)``); early-stop on
    ``val`` loss, keep the best weights."""
    from tqdm import tqdm

    tc: TrainConfig = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    gen = seed_everything(tc.seed)
    n_features, size = train.x.shape[1], (train.x.shape[2] if train.x.ndim == 3 else 1)
    model = build_model(config.model, n_features=n_features, n_frames=size, n_classes=n_classes)
    optimiser = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    weight = class_weights(train.y, n_classes) if tc.class_weighting == "balanced" else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)

    x_tr, y_tr = torch.from_numpy(train.x), torch.from_numpy(train.y.astype(np.int64))
    history = History()
    best_state, best_loss, bad_epochs = None, math.inf, 0
    bar = tqdm(range(tc.epochs), desc=f"train {config.model.name}", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(x_tr), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), tc.batch_size):
            idx = order[start : start + tc.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            xb, yb = x_tr[idx], y_tr[idx]
            optimiser.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        history.train_loss.append(total / max(seen, 1))
        history.train_acc.append(correct / max(seen, 1))
        if val is None or len(val.y) == 0:
            best_state, history.best_epoch = copy.deepcopy(model.state_dict()), epoch
            continue
        v_loss, v_acc = evaluate_windows(model, val, loss_fn=loss_fn, batch_size=tc.batch_size * 4)
        history.val_loss.append(v_loss)
        history.val_acc.append(v_acc)
        bar.set_postfix(val_loss=f"{v_loss:.3f}", val_acc=f"{v_acc:.2f}")
        if v_loss < best_loss - 1e-4:
            best_loss, bad_epochs = v_loss, 0
            best_state, history.best_epoch = copy.deepcopy(model.state_dict()), epoch
        else:
            bad_epochs += 1
            if bad_epochs >= tc.patience:
                break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return model, history


@torch.inference_mode()
def predict_windows(model: nn.Module, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``(n, n_classes)`` for windows ``x (n, n_features, size)``."""
    model.eval()
    out = [torch.softmax(model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))), dim=1)
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


@torch.inference_mode()
def evaluate_windows(model, data: WindowSet, *, loss_fn, batch_size: int) -> tuple[float, float]:
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(data.y), batch_size):
        xb = torch.from_numpy(data.x[i : i + batch_size])
        yb = torch.from_numpy(data.y[i : i + batch_size].astype(np.int64))
        logits = model(xb)
        total += float(loss_fn(logits, yb)) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
    return total / len(data.y), correct / len(data.y)


# --------------------------------------------------------------------------- dataset edge


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


def window_frames(config: RunConfig) -> tuple[int, int, int]:
    """(window size, training hop, prediction hop) in frames."""
    fc, wc = config.features, config.window
    size = fc.frames_for(wc.seconds)
    to_frames = lambda s: max(1, int(round(s * fc.sr / fc.hop_length)))  # noqa: E731
    return size, to_frames(wc.train_hop_seconds), to_frames(wc.hop_seconds)


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


def load_dataset_images(dataset, *, progress: bool = False):
    """All usable tracks of ``dataset`` with their memory-mapped images, label ids and split groups."""
    tracks = dataset.tracks()
    if not tracks:
        raise DatasetError(f"{dataset.root}: no usable tracks (see 'genrify dataset build' summary)")
    labels = sorted({t.genre for t in tracks})
    images = [dataset.features(t) for t in tracks]
    y = np.array([labels.index(t.genre) for t in tracks], dtype=np.int64)
    return tracks, images, y, [t.group for t in tracks], labels


# --------------------------------------------------------------------------- linear probes over embeddings


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


def probe_logits(tensors: dict[str, np.ndarray], x: np.ndarray, *, prefix: str = "probe") -> np.ndarray:
    """Logits ``(n, L)`` of a fitted probe for embeddings ``x (n, dim)``."""
    z = (x - tensors[f"{prefix}.mean"]) / tensors[f"{prefix}.scale"]
    return z @ tensors[f"{prefix}.coef"].T + tensors[f"{prefix}.intercept"]


def song_softmax(window_logits: list[np.ndarray], temperature: float = 1.0) -> np.ndarray:
    """Song probabilities: the mean over each song's windows of ``softmax(logits / T)``."""
    out = []
    for z in window_logits:
        z = z / temperature
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out.append((e / e.sum(axis=1, keepdims=True)).mean(axis=0))
    return np.stack(out)


def fit_temperature(window_logits: list[np.ndarray], y: np.ndarray) -> float:
    """Temperature scaling: the T > 0 minimising the song-level negative log-likelihood
    of held-out predictions (Guo et al. 2017, applied to window-averaged probabilities)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t):
        p = song_softmax(window_logits, float(np.exp(log_t)))
        return -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def probe_oof_logits(E: list[np.ndarray], y: np.ndarray, groups: list[str], *, labels: list[str], folds: int,
                     C: float, seed: int = 0) -> list[np.ndarray]:
    """Out-of-fold per-window logits: every track scored by a probe that never saw its group."""
    from genrify.dataset.splits import check_cross_validation, group_kfold

    check_cross_validation([labels[i] for i in y], groups)
    out: list = [None] * len(y)
    for tr, te in group_kfold([labels[i] for i in y], groups, folds=folds, seed=seed):
        t = fit_probe([E[i] for i in tr], y[tr], C=C, seed=seed, n_classes=len(labels))
        for i in te:
            out[i] = probe_logits(t, E[i])
    return out


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


# --------------------------------------------------------------------------- fine-tuning musicnn's back end


def embedding_set(E: list[np.ndarray], y: np.ndarray, idx) -> WindowSet:
    """The windows of tracks ``idx`` as training samples: ``x (n, dim)``, each with its track's label."""
    idx = list(idx)
    if not idx:
        return WindowSet(np.zeros((0, E[0].shape[1]), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return WindowSet(np.concatenate([E[i] for i in idx]).astype(np.float32),
                     np.concatenate([np.full(len(E[i]), y[i], dtype=np.int64) for i in idx]),
                     np.concatenate([np.full(len(E[i]), i, dtype=np.int64) for i in idx]))


@torch.inference_mode()
def head_logits(model: nn.Module, windows: list[np.ndarray]) -> list[np.ndarray]:
    """Per-window logits of a trained embedding head, one array per track."""
    model.eval()
    return [model(torch.from_numpy(np.array(w, dtype=np.float32))).numpy() for w in windows]  # copy: stores are read-only maps


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
    from genrify.dataset.splits import check_cross_validation, group_kfold

    check_cross_validation([labels[i] for i in y], groups)
    out: list = [None] * len(y)
    for tr, te in group_kfold([labels[i] for i in y], groups, folds=folds, seed=config.train.seed):
        mf, _, _ = train_finetune([E[i] for i in tr], y[tr], [groups[i] for i in tr], config=config, labels=labels)
        head = load_head(mf)
        for i, z in zip(te, head_logits(head, [E[i] for i in te])):
            out[i] = z
    return out


def load_head(model_file: ModelFile) -> nn.Module:
    """The trained ``musicnn-finetune`` head of ``model_file``, in eval mode (no pretrained load)."""
    from genrify.models.musicnn import MusicnnBackEnd

    head = MusicnnBackEnd(n_classes=len(model_file.labels), dropout=model_file.config.model.dropout, pretrained=False)
    try:
        head.load_state_dict(model_file.network_state(), strict=True)
    except RuntimeError as exc:
        from genrify.errors import ModelFileError

        raise ModelFileError(f"model weights do not fit musicnn-finetune ({exc})") from None
    return head.eval()
