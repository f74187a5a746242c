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
from genrify.models.modelfile import ModelFile


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
    """Train ``config.model`` on normalised windows; early-stop on ``val`` loss, keep the best weights."""
    from tqdm import tqdm

    tc: TrainConfig = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    gen = seed_everything(tc.seed)
    n_features, size = train.x.shape[1], train.x.shape[2]
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
    tensors = {f"model.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
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
