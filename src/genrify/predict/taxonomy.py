"""Scoring the taxonomy: genre and style probabilities from the taggers' per-window tag probabilities.

Pure arrays in, arrays out. Two parts, both over the taggers' tags (tags
learned from hundreds of thousands of songs carry across artists better than
embeddings learned from a few hundred; docs/results.md has the figures):

* the **labelled head**: a linear probe over the tags' logits, fitted on labelled
  audio (GTZAN's ten genres), calibrated by a temperature — ``P_lab(g)`` over the
  genres that have labelled audio;
* the **evidence head**: for every top-level genre, the noisy-OR of the tags the
  taxonomy maps to it, ``q_g = 1 − Π(1 − p_tag)``; ``softmax(α·logit(q) + b)``
  over all genres says how much of a window belongs to the genres known *only*
  from the taggers (electronic, folk, punk, soul & R&B). ``α`` and ``b`` are
  fitted on the labelled audio, where those genres are always wrong, so they
  learn how strong the tag evidence must be before it wins.

Per window: ``P(g) = P_ev(g)`` for a tagger-only genre, ``(1 − Σ P_ev(tagger-only)) · P_lab(g)``
for a labelled one. A song pools its windows by their normalised geometric mean
(each window an expert; on leave-artist-out GTZAN this is better calibrated
than the arithmetic mean, which leaves long songs underconfident). A style's
probability is its genre's times the mean noisy-OR of the style's own tags.
"""

from __future__ import annotations

import numpy as np

from genrify.predict.heads import probe_logits, window_softmax

_EPS = 1e-4


def tag_logits(taggrams: dict[str, np.ndarray], backbones: list[str]) -> np.ndarray:
    """``(n_windows, 50·B)``: the logits of every backbone's tag probabilities, side by side."""
    p = np.concatenate([np.clip(taggrams[b], _EPS, 1 - _EPS) for b in backbones], axis=1).astype(np.float64)
    return np.log(p / (1 - p))


def noisy_or(taggrams: dict[str, np.ndarray], matrices: dict[str, np.ndarray]) -> np.ndarray:
    """``(n_windows, n_nodes)``: ``1 − Π(1 − p_t)`` over the tags each node's row of ``matrices[backbone]`` marks."""
    log_none = 0.0
    for b, m in matrices.items():
        p = np.clip(taggrams[b].astype(np.float64), 0.0, 1 - _EPS)
        log_none = log_none + np.log1p(-p) @ m.T.astype(np.float64)
    return 1.0 - np.exp(log_none)


def evidence_logits(q: np.ndarray, has: np.ndarray, *, alpha: float, bias: np.ndarray) -> np.ndarray:
    """``α·logit(q)·has + b``: the evidence head's logits ``(n_windows, n_genres)``."""
    q = np.clip(q, _EPS, 1 - _EPS)
    return alpha * np.log(q / (1 - q)) * has + bias


def mix(p_evidence: np.ndarray, p_labelled: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Per-window genre probabilities ``(n, n_genres)``: tagger-only genres from the evidence head,
    the rest of the mass shared by the labelled head over the genres at indices ``labelled``."""
    out = p_evidence.copy()
    only = np.ones(p_evidence.shape[1], bool)
    only[labelled] = False
    rest = 1.0 - p_evidence[:, only].sum(axis=1, keepdims=True)
    out[:, labelled] = rest * p_labelled
    return out


def genre_window_probabilities(taggrams: dict[str, np.ndarray], tensors: dict[str, np.ndarray],
                               backbones: list[str]) -> np.ndarray:
    """The taxonomy model's per-window genre probabilities ``(n_windows, n_genres)`` (see the module doc)."""
    x = tag_logits(taggrams, backbones)
    temperature = float(tensors["calibration.temperature"][0])
    p_lab = window_softmax(probe_logits(tensors, x), temperature)
    q = noisy_or(taggrams, {b: tensors[f"evidence.{b}"] for b in backbones})
    z = evidence_logits(q, tensors["evidence.has"], alpha=float(tensors["evidence.alpha"][0]),
                        bias=tensors["evidence.bias"])
    return mix(window_softmax(z), p_lab, tensors["evidence.labelled"].astype(np.int64))


def song_pool(window_probabilities: np.ndarray) -> np.ndarray:
    """A song's genre probabilities ``(n_genres,)`` from its windows': the normalised geometric mean."""
    p = np.exp(np.log(np.clip(window_probabilities.astype(np.float64), 1e-9, 1.0)).mean(axis=0))
    return p / p.sum()


def style_probabilities(taggrams: dict[str, np.ndarray], song_genres: np.ndarray, tensors: dict[str, np.ndarray],
                        backbones: list[str]) -> np.ndarray:
    """Song-level style probabilities ``(n_styles,)``: P(genre) × the mean over windows of noisy-OR(style tags)."""
    parent = tensors["styles.parent"].astype(np.int64)
    if parent.size == 0:
        return np.zeros(0)
    q = noisy_or(taggrams, {b: tensors[f"styles.{b}"] for b in backbones})
    return song_genres[parent] * q.mean(axis=0)
