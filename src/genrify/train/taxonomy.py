"""Fitting the taxonomy's genre head (see :mod:`genrify.predict.taxonomy` for what it computes).

Inputs are per-song window inputs ``(n_windows, d)`` and per-song *sets* of
genres: a song labelled "Pop/Rock" is right if the answer is Pop or Rock, so
the head maximises ``log Σ_{g ∈ S} p(g)`` — the probability of the set —
rather than spreading a song over its set. Every window is a sample carrying
its song's set; songs are weighted so that every genre carries the same total
weight, and a song's weight is shared by its windows (a 30 s preview counts as
much as a 3 s excerpt). The calibration — a scale and a bias per genre, and a
power of the song's number of windows (a song pooled from ten windows is surer
than one window says) — is fitted on song logits out of the folds of an inner
grouped cross-validation, so it never sees the songs it is judged on.
"""

from __future__ import annotations

import numpy as np

from genrify.dataset.splits import group_kfold


def set_weights(S: np.ndarray) -> np.ndarray:
    """Per-song weights ``(n,)`` with mean 1: the mean over a song's genres of ``1 / (songs of that genre)``."""
    counts = S.sum(axis=0).astype(np.float64)
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    w = (S * inv).sum(axis=1) / np.maximum(S.sum(axis=1), 1)
    return w / w.mean()


def _set_nll(z, S, w):
    import torch

    log_p = torch.log_softmax(z, dim=1)
    in_set = torch.logsumexp(log_p.masked_fill(~S, -torch.inf), dim=1)
    return -(w * in_set).sum() / w.sum()


def fit_set_head(windows: list[np.ndarray], S: np.ndarray, *, l2: float, prefix: str = "head") -> dict[str, np.ndarray]:
    """A linear softmax over ``S.shape[1]`` genres fitted on the windows of songs (``windows[i]``:
    ``(n_i, d)``) with genre sets ``S (n, G)`` (bool), by weighted set likelihood (see the module
    doc) with an L2 penalty ``l2`` on the weights.

    Returns ``<prefix>.mean``, ``.scale`` (standardisation), ``.coef (G, d)``, ``.intercept (G,)``
    and an identity calibration. A genre in no set gets an intercept that never wins."""
    import torch

    S = np.asarray(S, bool)
    X = np.concatenate(windows).astype(np.float64)
    per_song = set_weights(S)
    w = np.concatenate([np.full(len(x), per_song[i] / len(x)) for i, x in enumerate(windows)])
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale < 1e-6] = 1.0
    Xt = torch.from_numpy((X - mean) / scale)
    St = torch.from_numpy(np.repeat(S, [len(x) for x in windows], axis=0))
    wt = torch.from_numpy(w * len(windows) / w.sum())
    G = S.shape[1]
    W = torch.zeros((G, X.shape[1]), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(G, dtype=torch.float64, requires_grad=True)
    absent = torch.from_numpy(~S.any(axis=0))
    opt = torch.optim.LBFGS([W, b], max_iter=300, tolerance_grad=1e-7, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = (Xt @ W.T + b).masked_fill(absent, -30.0)
        loss = _set_nll(z, St, wt) + l2 * (W ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    intercept = b.detach().numpy().copy()
    intercept[absent.numpy()] = -30.0
    coef = W.detach().numpy().copy()
    coef[absent.numpy()] = 0.0
    return {f"{prefix}.mean": mean.astype(np.float32), f"{prefix}.scale": scale.astype(np.float32),
            f"{prefix}.coef": coef.astype(np.float32), f"{prefix}.intercept": intercept.astype(np.float32),
            f"{prefix}.calibration.scale": np.ones(G, np.float32), f"{prefix}.calibration.bias": np.zeros(G, np.float32),
            f"{prefix}.calibration.window_power": np.zeros(1, np.float32)}


def fit_calibration(Z: np.ndarray, S: np.ndarray, n_windows: np.ndarray, *, weights: np.ndarray | None = None,
                    l2: float = 1e-2) -> tuple[np.ndarray, np.ndarray, float]:
    """The calibration ``(scale (G,), bias (G,), power)`` of held-out song logits ``Z (n, G)`` (each the
    mean of its song's ``n_windows`` window logits): ``softmax(scale·z·n^power + bias)`` fitted by
    the (weighted) set likelihood, held near ``(1, 0, 0)`` by ``l2``; genres in no set keep ``(1, 0)``."""
    import torch

    Zt = torch.from_numpy(np.asarray(Z, np.float64))
    St = torch.from_numpy(np.asarray(S, bool))
    log_n = torch.from_numpy(np.log(np.asarray(n_windows, np.float64)))[:, None]
    wt = torch.from_numpy(np.ones(len(Z)) if weights is None else np.asarray(weights, np.float64))
    log_a = torch.zeros(Z.shape[1], dtype=torch.float64, requires_grad=True)
    c = torch.zeros(Z.shape[1], dtype=torch.float64, requires_grad=True)
    power = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    present = torch.from_numpy(np.asarray(S, bool).any(axis=0).astype(np.float64))
    opt = torch.optim.LBFGS([log_a, c, power], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        a, cc = torch.exp(log_a * present), c * present
        loss = _set_nll(Zt * a * torch.exp(power * log_n) + cc, St, wt) + l2 * ((log_a ** 2).sum() + (c ** 2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (torch.exp(log_a * present).numpy().astype(np.float32), (c * present).numpy().astype(np.float32),
                float(power))


def strata(S: np.ndarray) -> list[str]:
    """One label per song for stratified splits: its rarest genre."""
    counts = S.sum(axis=0)
    return [str(min(np.flatnonzero(row), key=lambda g: counts[g])) for row in S]


def song_logits(windows: list[np.ndarray], tensors: dict[str, np.ndarray], *, prefix: str = "head") -> np.ndarray:
    """``(n_songs, G)``: each song's mean window logits under ``tensors`` (calibration included)."""
    from genrify.predict.taxonomy import genre_logits

    return np.stack([genre_logits(w, tensors, prefix=prefix).mean(axis=0) for w in windows])


def fit_taxonomy_head(windows: list[np.ndarray], S: np.ndarray, groups: list[str], *, l2: float, folds: int = 5,
                      seed: int = 0, prefix: str = "head") -> dict[str, np.ndarray]:
    """The head fitted on every song given, with its calibration fitted on out-of-fold song logits
    of an inner ``folds``-fold grouped cross-validation over the same songs."""
    tensors = fit_set_head(windows, S, l2=l2, prefix=prefix)
    Z = np.zeros(S.shape, np.float64)
    for tr, te in group_kfold(strata(S), groups, folds=folds, seed=seed + 1):
        inner = fit_set_head([windows[i] for i in tr], S[tr], l2=l2, prefix=prefix)
        Z[te] = song_logits([windows[i] for i in te], inner, prefix=prefix)
    scale, bias, power = fit_calibration(Z, S, np.array([len(w) for w in windows]), weights=set_weights(S))
    tensors[f"{prefix}.calibration.scale"], tensors[f"{prefix}.calibration.bias"] = scale, bias
    tensors[f"{prefix}.calibration.window_power"] = np.array([power], np.float32)
    return tensors
