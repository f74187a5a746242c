"""Scoring the taxonomy: genre and style probabilities from the backbones' per-window outputs.

Pure arrays in, arrays out. The genre head is one linear softmax over every
top-level genre, fed per window by the inputs the model file names
(:func:`head_inputs`: a backbone's tag logits or its embedding, side by side),
then calibrated (``z'_g = a_g·z_g·n^γ + c_g`` for a song of ``n`` windows: a
scale and a bias per genre, and how much surer ten windows make a song than
one; fitted on held-out songs inside the training folds). It was fitted on songs labelled with *sets* of
genres (an AllMusic "Pop/Rock" is Pop or Rock), maximising the
probability that the answer lies in the set (:mod:`genrify.train.taxonomy`).

A song pools its windows by their normalised geometric mean, which for this
head is the softmax of the mean window logits: the song-level quantity it was
fitted on. A style's share of its genre is the mean over windows of the
noisy-OR of the style's evidence (``1 − Π(1 − p)`` over the tags and AudioSet
classes the taxonomy maps to it); its probability is its genre's times that share.
"""

from __future__ import annotations

import numpy as np

from genrify.errors import ModelFileError
from genrify.predict.heads import window_softmax

_EPS = 1e-4
#: What a head input may name after its backbone: its tags' logits or its embedding.
INPUT_KINDS = ("tags", "embedding")


def tag_logits(p: np.ndarray) -> np.ndarray:
    """Logits of tag probabilities ``p``, clipped to ``[1e-4, 1 − 1e-4]`` first."""
    p = np.clip(p.astype(np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def head_inputs(taggrams: dict[str, np.ndarray], embeddings: dict[str, np.ndarray], inputs: list[str]) -> np.ndarray:
    """``(n_windows, d)``: the head's inputs side by side; each of ``inputs`` is ``"<backbone>.tags"``
    (the logits of its tag probabilities in ``taggrams``), ``"<backbone>.tags[a:b]"`` (those of tags
    ``a`` to ``b - 1`` only) or ``"<backbone>.embedding"``."""
    parts = []
    for name in inputs:
        backbone, _, kind = name.rpartition(".")
        kind, _, span = kind.partition("[")
        if kind == "tags":
            a, _, b = span.rstrip("]").partition(":")
            parts.append(tag_logits(taggrams[backbone][:, int(a or 0):int(b) if b else None]))
        elif kind == "embedding":
            parts.append(embeddings[backbone].astype(np.float64))
        else:
            raise ModelFileError(f"unknown head input {name!r}")
    return np.concatenate(parts, axis=1)


def backbones_of(inputs: list[str]) -> list[str]:
    """The backbones a list of head inputs listens through, in order of first mention."""
    return list(dict.fromkeys(name.rpartition(".")[0] for name in inputs))


def genre_logits(x: np.ndarray, tensors: dict[str, np.ndarray], *, prefix: str = "head") -> np.ndarray:
    """Calibrated genre logits ``(n, n_genres)`` of the head ``prefix`` for the ``n`` windows ``x (n, d)``
    of one song (the calibration's window power reads ``n``)."""
    z = ((x - tensors[f"{prefix}.mean"]) / tensors[f"{prefix}.scale"]) @ tensors[f"{prefix}.coef"].T.astype(np.float64)
    z = z + tensors[f"{prefix}.intercept"]
    sure = float(len(x)) ** float(tensors[f"{prefix}.calibration.window_power"][0])
    return z * tensors[f"{prefix}.calibration.scale"] * sure + tensors[f"{prefix}.calibration.bias"]


def genre_window_probabilities(x: np.ndarray, tensors: dict[str, np.ndarray], *, prefix: str = "head") -> np.ndarray:
    """Per-window genre probabilities ``(n_windows, n_genres)`` for head inputs ``x`` (one song's windows)."""
    return window_softmax(genre_logits(x, tensors, prefix=prefix))


def song_pool(window_probabilities: np.ndarray) -> np.ndarray:
    """A song's genre probabilities ``(n_genres,)`` from its windows': the normalised geometric mean."""
    p = np.exp(np.log(np.clip(window_probabilities.astype(np.float64), 1e-12, 1.0)).mean(axis=0))
    return p / p.sum()


def noisy_or(taggrams: dict[str, np.ndarray], matrices: dict[str, np.ndarray]) -> np.ndarray:
    """``(n_windows, n_nodes)``: ``1 − Π(1 − p_t)`` over the tags each node's row of ``matrices[backbone]`` marks."""
    log_none = 0.0
    for b, m in matrices.items():
        p = np.clip(taggrams[b].astype(np.float64), 0.0, 1 - _EPS)
        log_none = log_none + np.log1p(-p) @ m.T.astype(np.float64)
    return 1.0 - np.exp(log_none)


def style_shares(taggrams: dict[str, np.ndarray], tensors: dict[str, np.ndarray], backbones: list[str]) -> np.ndarray:
    """Each style's share of its genre ``(n_styles,)``: the mean over windows of its evidence's noisy-OR."""
    matrices = {b: tensors[f"styles.{b}"] for b in backbones if f"styles.{b}" in tensors and b in taggrams}
    if tensors["styles.parent"].size == 0 or not matrices:
        return np.zeros(tensors["styles.parent"].size)
    return noisy_or(taggrams, matrices).mean(axis=0)
