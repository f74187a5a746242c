"""Fitting the taxonomy model (see :mod:`genrify.predict.taxonomy` for what it computes).

Inputs are per-song dicts of per-window tag probabilities, one entry per
backbone, and labels given as indices into the taxonomy's top-level genres
(only genres with labelled audio occur). Everything is fitted on the songs
given; the labelled head's temperature comes from an inner grouped
cross-validation, so the calibration never sees the songs it is judged on.
"""

from __future__ import annotations

import numpy as np

from genrify.models.backbones import BACKBONES
from genrify.predict.heads import probe_logits
from genrify.predict.taxonomy import noisy_or, tag_logits
from genrify.taxonomy import Taxonomy
from genrify.train.calibrate import fit_temperature
from genrify.train.crossval import out_of_fold
from genrify.train.probe import fit_probe


def _labelled_temperature(X: list[np.ndarray], y_lab: np.ndarray, groups: list[str], *, n_labelled: int, C: float,
                          seed: int, folds: int) -> float:
    per_class = min(len({g for g, lab in zip(groups, y_lab) if lab == k}) for k in set(y_lab.tolist()))
    folds = min(folds, per_class)
    if folds < 2:  # a genre of a single artist: no split can hold it out
        return 1.0

    def score(tr, te):
        t = fit_probe([X[i] for i in tr], y_lab[tr], C=C, seed=seed, n_classes=n_labelled)
        return [probe_logits(t, X[i]) for i in te]

    labels = [str(k) for k in range(n_labelled)]
    oof = out_of_fold(y_lab, groups, labels=labels, folds=folds, seed=seed + 1, score_fold=score)[0]
    return fit_temperature(oof, y_lab)


def _fit_evidence(q: np.ndarray, y: np.ndarray, has: np.ndarray, labelled: np.ndarray,
                  *, l2: float = 1e-3) -> tuple[float, np.ndarray]:
    """``α`` and the bias of every genre, by window-level maximum likelihood; genres without
    labelled audio share the mean bias of the labelled ones (nothing else could set it)."""
    import torch

    q = np.clip(q, 1e-4, 1 - 1e-4)
    e = torch.from_numpy(np.log(q / (1 - q)) * has)
    target = torch.from_numpy(y.astype(np.int64))
    lab = torch.from_numpy(labelled)
    raw_alpha = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    b_lab = torch.zeros(len(labelled), dtype=torch.float64, requires_grad=True)

    def bias() -> torch.Tensor:
        full = b_lab.mean().repeat(q.shape[1])
        return full.index_put((lab,), b_lab)

    opt = torch.optim.LBFGS([raw_alpha, b_lab], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        alpha = torch.nn.functional.softplus(raw_alpha)
        loss = torch.nn.functional.cross_entropy(alpha * e + bias(), target) + l2 * (b_lab ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(torch.nn.functional.softplus(raw_alpha)), bias().numpy()


def fit_taxonomy(taggrams: list[dict[str, np.ndarray]], y: np.ndarray, groups: list[str], *, taxonomy: Taxonomy,
                 tags: dict[str, list[str]], C: float, seed: int = 0, folds: int = 5) -> dict[str, np.ndarray]:
    """The taxonomy model's tensors, fitted on songs ``taggrams`` with genre indices ``y``.

    Args:
        taggrams: per song, ``{backbone: (n_windows, n_tags)}`` tag probabilities.
        y: per song, the index of its top-level genre in ``taxonomy.genres``.
        groups: per song, what must stay on one side of the inner split (the artist).
        tags: each backbone's tag names, in output order.
        C: inverse L2 strength of the labelled head's probe.
    """
    backbones = list(tags)
    labelled = np.array(sorted(set(y.tolist())), dtype=np.int64)
    to_lab = {g: i for i, g in enumerate(labelled)}
    y_lab = np.array([to_lab[g] for g in y])
    X = [tag_logits(t, backbones) for t in taggrams]
    tensors = fit_probe(X, y_lab, C=C, seed=seed, n_classes=len(labelled))
    tensors["calibration.temperature"] = np.array([_labelled_temperature(
        X, y_lab, groups, n_labelled=len(labelled), C=C, seed=seed, folds=folds)], np.float32)

    key = {b: BACKBONES[b].taxonomy_key if b in BACKBONES else b for b in backbones}
    genre_m = {b: taxonomy.evidence_matrix(key[b], tags[b]) for b in backbones}
    has = (sum(m.sum(axis=1) for m in genre_m.values()) > 0).astype(np.float64)
    q = np.concatenate([noisy_or(t, genre_m) for t in taggrams])
    yw = np.concatenate([np.full(len(t[backbones[0]]), g) for t, g in zip(taggrams, y)])
    alpha, bias = _fit_evidence(q, yw, has, labelled)
    tensors.update({f"evidence.{b}": m for b, m in genre_m.items()})
    tensors.update({"evidence.has": has.astype(np.float32), "evidence.alpha": np.array([alpha], np.float32),
                    "evidence.bias": bias.astype(np.float32), "evidence.labelled": labelled.astype(np.int64)})

    pairs = taxonomy.styles()
    style_nodes = [s for _, s in pairs]
    tensors.update({f"styles.{b}": taxonomy.evidence_matrix(key[b], tags[b], style_nodes) for b in backbones})
    tensors["styles.parent"] = np.array([taxonomy.ids.index(g.id) for g, _ in pairs], np.int64)
    return tensors
