"""The one training loop, for every network in the model registry.

Pure core: :func:`fit` takes arrays of windows (or embeddings) and labels and
returns a trained network and its history. It never branches on which network
it trains.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from genrify.config import RunConfig, TrainConfig
from genrify.models import build_model


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
