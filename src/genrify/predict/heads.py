"""Heads over musicnn embeddings, as inference: per-window logits and the one song softmax.

Both kinds of head score embeddings ``(n_windows, 1506)``: a linear probe
(``musicnn-probe``, tensors ``probe.mean/scale/coef/intercept``) and musicnn's
fine-tuned back end (``musicnn-finetune``, an ``nn.Module``). Training
(:mod:`genrify.train`) fits them; everything that turns their logits into
probabilities — the shipped backend, cross-validation, temperature fitting —
goes through :func:`window_softmax` and :func:`song_softmax` here.
"""

from __future__ import annotations

import numpy as np

from genrify.errors import ModelFileError
from genrify.models.modelfile import ModelFile


def window_softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Per-window probabilities ``softmax(z / T)`` for logits ``z (n_windows, L)``."""
    z = z / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def song_softmax(window_logits: list[np.ndarray], temperature: float = 1.0) -> np.ndarray:
    """Song probabilities ``(n_songs, L)``: the mean over each song's windows of ``softmax(logits / T)``."""
    return np.stack([window_softmax(z, temperature).mean(axis=0) for z in window_logits])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def probe_logits(tensors: dict[str, np.ndarray], x: np.ndarray, *, prefix: str = "probe") -> np.ndarray:
    """Logits ``(n, L)`` of a fitted probe for embeddings ``x (n, dim)``."""
    z = (x - tensors[f"{prefix}.mean"]) / tensors[f"{prefix}.scale"]
    return z @ tensors[f"{prefix}.coef"].T + tensors[f"{prefix}.intercept"]


def head_logits(model, windows: list[np.ndarray]) -> list[np.ndarray]:
    """Per-window logits of a trained embedding head (a ``torch.nn.Module``), one array per track."""
    import torch

    model.eval()
    with torch.inference_mode():  # copy: stores are read-only maps
        return [model(torch.from_numpy(np.array(w, dtype=np.float32))).numpy() for w in windows]


def load_head(model_file: ModelFile):
    """The trained ``musicnn-finetune`` head of ``model_file``, in eval mode (no pretrained load)."""
    from genrify.models.musicnn import MusicnnBackEnd

    head = MusicnnBackEnd(n_classes=len(model_file.labels), dropout=model_file.config.model.dropout, pretrained=False)
    try:
        head.load_state_dict(model_file.network_state(), strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"model weights do not fit musicnn-finetune ({exc})") from None
    return head.eval()


def genre_logits_function(model_file: ModelFile):
    """``f(embeddings (n, 1506)) -> logits (n, L)`` for the genre head of ``model_file``."""
    from genrify.models import EMBEDDING_NET, model_spec

    if model_spec(model_file.config.model.name).kind == EMBEDDING_NET:
        head = load_head(model_file)
        return lambda e: head_logits(head, [e])[0]
    return lambda e: probe_logits(model_file.tensors, e)
