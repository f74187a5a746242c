"""mn04's forward pass (EfficientAT's AudioSet tagger) in NumPy alone: no torch in the process.

The same network and weights as :class:`genrify.models.mn04.MN04`, in float32,
for a process that tags a few songs: importing torch costs more than analysing
a song (see :mod:`genrify.models.musicnn_numpy`). The arithmetic follows the
torch module layer by layer, with every batch norm folded into the convolution
before it when the weights are loaded (its eval statistics, eps 0.001: the
convolution gains a bias, computed in float64 and rounded once):

* stem: the 3×3 stride-2 convolution over the one input channel, as one matrix
  product ``(8, 9) @ (9, F/2 · T/2)`` of the nine strided taps;
* pointwise 1×1 convolutions: matrix products ``(C_out, C_in) @ (C_in, F · T)``;
* depthwise k×k convolutions (stride 1 or 2, zero padding ``(k - 1) // 2``, no
  dilation): a sum over the k² taps of shifted slices of the padded map times
  one weight per channel. For stride 2 the padded map is first split into its
  even and odd time columns, so every tap reads contiguous rows;
* squeeze-excitation: mean over F × T → dense → ReLU → dense → sigmoid, which
  scales each channel (EfficientAT's variant: a true sigmoid, not a hard one);
* activations as torch defines them: ``relu(x) = max(x, 0)`` and hard-swish
  ``x · min(max(x + 3, 0), 6) / 6``.

Layout is ``(channels, frequency, time)`` per clip, time contiguous. The clips of
a batch run in parallel threads (:func:`genrify.models.musicnn_numpy._map_patches`).
Results match the torch module to float32 round-off (``tests/test_mn04_numpy.py``
holds logits and embeddings to 1e-4 of the original's).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from genrify.errors import ModelFileError
from genrify.models.musicnn_numpy import _map_patches

AUDIOSET_CLASSES = 527
MN04_EMBEDDING_DIM = 384
BN_EPS = 1e-3  # the torch module's BatchNorm2d eps

_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: The shipped weights (EfficientAT's mn04_as_mAP_432.pt as safetensors; both engines load them).
WEIGHTS_PATH = _WEIGHTS_DIR / "mn04_as.safetensors"
#: AudioSet's class names in output order (index, mid, display_name), as :mod:`genrify.models.mn04` reads them.
LABELS_PATH = _WEIGHTS_DIR / "audioset_labels.csv"

# The 15 inverted residual blocks (features.1 … features.15): (kernel, squeeze-excite, hard-swish, stride),
# MobileNetV3-Large's table as the torch module uses it; the channel counts come from the weights.
_BLOCKS = (
    (3, False, False, 1), (3, False, False, 2), (3, False, False, 1),
    (5, True, False, 2), (5, True, False, 1), (5, True, False, 1),
    (3, False, True, 2), (3, False, True, 1), (3, False, True, 1), (3, False, True, 1),
    (3, True, True, 1), (3, True, True, 1),
    (5, True, True, 2), (5, True, True, 1), (5, True, True, 1),
)


@lru_cache(maxsize=1)
def audioset_labels() -> tuple[str, ...]:
    """AudioSet's 527 class display names in mn04's output order, from the shipped ``audioset_labels.csv``
    (here, not in :mod:`genrify.models.mn04`, so that reading them never imports torch).

    Raises:
        ModelFileError: the file is missing or does not list indices 0–526 in order.
    """
    try:
        with open(LABELS_PATH, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        names = tuple(row["display_name"] for row in rows)
        ordered = [int(row["index"]) for row in rows] == list(range(AUDIOSET_CLASSES))
    except FileNotFoundError:
        raise ModelFileError(f"{LABELS_PATH}: AudioSet labels not found") from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{LABELS_PATH}: not an AudioSet labels file ({exc})") from None
    if not ordered:
        raise ModelFileError(f"{LABELS_PATH}: not the {AUDIOSET_CLASSES} AudioSet classes in index order")
    return names


# --- activations, as torch computes them -----------------------------------------------------------------------

def _hardswish_(x: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """In place: ``x · min(max(x + 3, 0), 6) / 6`` (torch's Hardswish); ``scratch``, if given, an array of
    ``x``'s shape to hold the gate."""
    gate = np.add(x, np.float32(3), out=scratch)
    np.clip(gate, np.float32(0), np.float32(6), out=gate)
    x *= gate
    x /= np.float32(6)
    return x


def _relu_(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.float32(0), out=x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function without overflow for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32, copy=False)


# --- layers ----------------------------------------------------------------------------------------------------

def _fold(state: dict[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """The conv weight ``conv`` with the batch norm ``bn`` folded in: ``(weight, bias)``, float32."""
    w = state[f"{conv}.weight"].astype(np.float64)
    scale = state[f"{bn}.weight"].astype(np.float64) / np.sqrt(state[f"{bn}.running_var"].astype(np.float64)
                                                                  + BN_EPS)
    bias = state[f"{bn}.bias"].astype(np.float64) - state[f"{bn}.running_mean"].astype(np.float64) * scale
    return (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32), bias.astype(np.float32)


def _out_size(n: int, kernel: int, stride: int) -> int:
    return (n + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


@dataclass(frozen=True)
class _Pointwise:
    """1×1 conv + folded batch norm (+ activation): ``(C_in, F, T) → (C_out, F, T)``."""

    weight: np.ndarray  # (C_out, C_in)
    bias: np.ndarray  # (C_out, 1)
    activation: str | None  # "relu", "hardswish" or None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        c, f, t = x.shape
        y = np.matmul(self.weight, x.reshape(c, f * t))
        y += self.bias
        _activate_(y, self.activation)
        return y.reshape(-1, f, t)


@dataclass(frozen=True)
class _Depthwise:
    """k×k depthwise conv (stride 1 or 2, zero padding ``(k - 1) // 2``) + folded batch norm + activation."""

    weight: np.ndarray  # (C, k, k, 1, 1): one weight per channel and tap, shaped to broadcast over (C, F, T)
    bias: np.ndarray  # (C, 1, 1)
    stride: int
    activation: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        c, f, t = x.shape
        k, s = self.weight.shape[1], self.stride
        p = (k - 1) // 2
        f_out, t_out = _out_size(f, k, s), _out_size(t, k, s)
        out = np.empty((c, f_out, t_out), np.float32)
        tmp = np.empty_like(out)
        if s == 1:
            xp = np.empty((c, f + 2 * p, t + 2 * p), np.float32)
            xp[:, p : p + f, p : p + t] = x
            _zero_border(xp, p, p + f, p, p + t)
            for i in range(k):
                for j in range(k):
                    if i == j == 0:
                        np.multiply(xp[:, :f_out, :t_out], self.weight[:, 0, 0], out=out)
                    else:
                        np.multiply(xp[:, i : i + f_out, j : j + t_out], self.weight[:, i, j], out=tmp)
                        out += tmp
        else:
            # Stride 2: the zero-padded map's even and odd columns apart, so tap j reads the
            # contiguous columns j // 2 … of phase j % 2 (and every other row).
            phases = _padded_phases(x, p)
            for i in range(k):
                for j in range(k):
                    src = phases[j % 2][:, i : i + 2 * (f_out - 1) + 1 : 2, j // 2 : j // 2 + t_out]
                    if i == j == 0:
                        np.multiply(src, self.weight[:, i, j], out=out)
                    else:
                        np.multiply(src, self.weight[:, i, j], out=tmp)
                        out += tmp
        out += self.bias
        return _activate_(out, self.activation, scratch=tmp)


def _padded_phases(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """The even and odd columns of ``x (C, F, T)`` zero-padded by ``p`` on every side, each contiguous."""
    c, f, t = x.shape
    width = t + 2 * p
    phases = []
    for r in (0, 1):
        phase = np.empty((c, f + 2 * p, (width - r + 1) // 2), np.float32)
        m0 = (p - r + 1) // 2  # the first column of phase r inside the map: padded column 2·m0 + r
        src = x[:, :, 2 * m0 + r - p :: 2]
        m1 = m0 + src.shape[2]
        phase[:, p : p + f, m0:m1] = src
        _zero_border(phase, p, p + f, m0, m1)
        phases.append(phase)
    return phases[0], phases[1]


def _zero_border(x: np.ndarray, f0: int, f1: int, t0: int, t1: int) -> None:
    """Zeros ``x (C, F, T)`` outside rows ``f0:f1`` and columns ``t0:t1`` (the padding around a copied map)."""
    x[:, :f0] = 0
    x[:, f1:] = 0
    x[:, f0:f1, :t0] = 0
    x[:, f0:f1, t1:] = 0


@dataclass(frozen=True)
class _SqueezeExcite:
    """Mean over F × T → dense → ReLU → dense → sigmoid → each channel scaled by its gate (in place)."""

    w1: np.ndarray  # (squeezed, C)
    b1: np.ndarray
    w2: np.ndarray  # (C, squeezed)
    b2: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        s = x.mean(axis=(1, 2), dtype=np.float32)
        h = np.maximum(self.w1 @ s + self.b1, np.float32(0))
        x *= _sigmoid(self.w2 @ h + self.b2)[:, None, None]
        return x


@dataclass(frozen=True)
class _Block:
    """One inverted residual block: [expand] → depthwise → [squeeze-excite] → project, [+ input]."""

    expand: _Pointwise | None
    depthwise: _Depthwise
    se: _SqueezeExcite | None
    project: _Pointwise
    residual: bool

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.expand(x) if self.expand is not None else x
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        if self.residual:
            y += x
        return y


def _activate_(x: np.ndarray, activation: str | None, *, scratch: np.ndarray | None = None) -> np.ndarray:
    if activation == "relu":
        return _relu_(x)
    if activation == "hardswish":
        return _hardswish_(x, scratch)
    return x


class _Reader(dict):
    """The state dict, recording which keys were read (the rest are weights the architecture has no place for)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> np.ndarray:
        self.used.add(key)
        return super().__getitem__(key)


class NumpyMN04:
    """mn04 (:class:`~genrify.models.mn04.MN04`) evaluated with NumPy, float32, inference only.

    Built from the torch module's ``state_dict`` as NumPy arrays (the safetensors
    file holds exactly that); batch norms are folded into the convolutions here.

    Attributes:
        labels: tuple of the 527 AudioSet display names in output order; ``tags`` the same as a list.
    """

    precision = "float32"

    def __init__(self, state: dict[str, np.ndarray], *, labels: tuple[str, ...] | None = None):
        self.labels = tuple(labels) if labels is not None else audioset_labels()
        if len(self.labels) != AUDIOSET_CLASSES:
            raise ValueError(f"mn04 has {AUDIOSET_CLASSES} classes, got {len(self.labels)} labels")
        self.tags = list(self.labels)
        state = _Reader((k, np.asarray(v, dtype=np.float32)) for k, v in state.items()
                        if not k.endswith(".num_batches_tracked"))
        w, b = _fold(state, "features.0.0", "features.0.1")  # (8, 1, 3, 3)
        self.stem_weight, self.stem_bias = np.ascontiguousarray(w.reshape(w.shape[0], 9)), b[:, None]
        self.blocks = [self._block(state, n, *spec) for n, spec in enumerate(_BLOCKS, start=1)]
        last = len(_BLOCKS) + 1
        w, b = _fold(state, f"features.{last}.0", f"features.{last}.1")
        self.last = _Pointwise(np.ascontiguousarray(w[:, :, 0, 0]), b[:, None], "hardswish")
        if self.last.weight.shape[0] != MN04_EMBEDDING_DIM:
            raise ValueError(f"the last conv has {self.last.weight.shape[0]} channels, not {MN04_EMBEDDING_DIM}")
        self.dense_w, self.dense_b = np.ascontiguousarray(state["classifier.2.weight"].T), state["classifier.2.bias"]
        self.out_w, self.out_b = np.ascontiguousarray(state["classifier.5.weight"].T), state["classifier.5.bias"]
        if self.out_b.shape != (AUDIOSET_CLASSES,):
            raise ValueError(f"the classifier has {self.out_b.shape} outputs, not {AUDIOSET_CLASSES}")
        unused = set(state) - state.used
        if unused:
            raise ValueError(f"unexpected weights {sorted(unused)[:3]}")
        self.head(self.trunk(np.zeros((128, 32), np.float32)).T)  # channel counts that do not chain raise here

    def _block(self, state, n: int, kernel: int, se: bool, hard_swish: bool, stride: int) -> _Block:
        act = "hardswish" if hard_swish else "relu"
        prefix = f"features.{n}.block"
        expand = None
        j = 0
        if state[f"{prefix}.0.0.weight"].shape[2] == 1:  # a 1×1 expansion precedes the depthwise conv
            w, b = _fold(state, f"{prefix}.0.0", f"{prefix}.0.1")
            expand = _Pointwise(np.ascontiguousarray(w[:, :, 0, 0]), b[:, None], act)
            j = 1
        w, b = _fold(state, f"{prefix}.{j}.0", f"{prefix}.{j}.1")  # (C, 1, k, k)
        if w.shape[1:] != (1, kernel, kernel):
            raise ValueError(f"{prefix}.{j}.0.weight: expected a depthwise {kernel}×{kernel} kernel, got {w.shape}")
        depthwise = _Depthwise(np.ascontiguousarray(w[:, 0, :, :, None, None]), b[:, None, None], stride, act)
        j += 1
        gate = None
        if se:
            g = f"{prefix}.{j}.conc_se_layers.0"
            gate = _SqueezeExcite(state[f"{g}.fc1.weight"], state[f"{g}.fc1.bias"], state[f"{g}.fc2.weight"],
                                  state[f"{g}.fc2.bias"])
            j += 1
        w, b = _fold(state, f"{prefix}.{j}.0", f"{prefix}.{j}.1")
        project = _Pointwise(np.ascontiguousarray(w[:, :, 0, 0]), b[:, None], None)
        c_in = expand.weight.shape[1] if expand is not None else depthwise.weight.shape[0]
        return _Block(expand, depthwise, gate, project, residual=stride == 1 and c_in == project.weight.shape[0])

    def _stem(self, mel: np.ndarray) -> np.ndarray:
        """3×3 stride-2 conv over the one input channel + batch norm + hard-swish: ``(F, T) → (8, F', T')``."""
        f, t = mel.shape
        f_out, t_out = _out_size(f, 3, 2), _out_size(t, 3, 2)
        xp = np.zeros((f + 2, t + 2), np.float32)
        xp[1 : f + 1, 1 : t + 1] = mel
        phases = (xp[:, 0::2], xp[:, 1::2])
        taps = np.empty((9, f_out, t_out), np.float32)
        for i in range(3):
            for j in range(3):
                taps[3 * i + j] = phases[j % 2][i : i + 2 * (f_out - 1) + 1 : 2, j // 2 : j // 2 + t_out]
        y = np.matmul(self.stem_weight, taps.reshape(9, -1))
        y += self.stem_bias
        return _hardswish_(y).reshape(-1, f_out, t_out)

    def _features(self, mel: np.ndarray) -> np.ndarray:
        """The last feature map ``(384, F/32, T/32)`` of one log-mel ``(128, T)``."""
        x = self._stem(np.asarray(mel, dtype=np.float32))
        for block in self.blocks:
            x = block(x)
        return self.last(x)

    def trunk(self, mel: np.ndarray) -> np.ndarray:
        """The last feature map averaged over frequency, ``(384, T')`` (``T' ≈ T / 32``), of one log-mel ``(128, T)``."""
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim != 2:
            raise ValueError(f"trunk takes one log-mel (128, T), got {mel.shape}")
        return self._features(mel).mean(axis=1, dtype=np.float32)

    def head(self, embedding: np.ndarray) -> np.ndarray:
        """Logits ``(n, 527)`` of embeddings ``(n, 384)`` (the feature map averaged over frequency and time):
        dense 512 → hard-swish → dense 527."""
        embedding = np.asarray(embedding, dtype=np.float32)
        h = _hardswish_(embedding @ self.dense_w + self.dense_b)
        return h @ self.out_w + self.out_b

    def forward_features(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        """``{"logits": (B, 527), "embedding": (B, 384), "probabilities": (B, 527)}`` of log-mels ``(B, 128, T)``
        (or ``(B, 1, 128, T)``), as :meth:`MN04.forward_features` names them; the clips run in parallel threads."""
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim == 4 and mel.shape[1] == 1:
            mel = mel[:, 0]
        if mel.ndim != 3:
            raise ValueError(f"mn04 takes a log-mel batch (B, 128, T) or (B, 1, 128, T), got {mel.shape}")
        embedding = np.stack(_map_patches(lambda m: self._features(m).mean(axis=(1, 2), dtype=np.float32), mel))
        logits = self.head(embedding)
        return {"logits": logits, "embedding": embedding, "probabilities": _sigmoid(logits)}

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """Logits ``(B, 527)`` of log-mels ``(B, 128, T)``."""
        return self.forward_features(mel)["logits"]


def read_mn04_weights(weights: str | Path | None = None, *, framework: str = "numpy") -> tuple[Path, dict]:
    """The path and state dict of mn04 weights (default: the shipped ones), as NumPy arrays
    (``framework="numpy"``) or torch tensors (``"torch"``).

    Raises:
        ModelFileError: the file is missing or not safetensors.
    """
    from safetensors import SafetensorError

    if framework == "torch":
        from safetensors.torch import load_file
    else:
        from safetensors.numpy import load_file
    path = Path(weights) if weights is not None else WEIGHTS_PATH
    try:
        return path, load_file(str(path))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: mn04 weights not found") from None
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ModelFileError(f"{path}: not an mn04 weights file ({str(exc).splitlines()[0][:160]})") from None


def unfit_weights(path: Path, exc: Exception) -> ModelFileError:
    """The one-line error for weights that do not fit the mn04 architecture."""
    return ModelFileError(f"{path}: weights do not fit the mn04 architecture ({' '.join(str(exc).split())[:200]})")


def load_numpy_mn04(*, weights: str | Path | None = None) -> NumpyMN04:
    """:class:`NumpyMN04` with mn04's pretrained weights (default: the mn04_as weights shipped with genrify).

    Raises:
        ModelFileError: the file is missing, not safetensors, or does not fit the architecture.
    """
    path, state = read_mn04_weights(weights)
    try:
        return NumpyMN04(state)
    except (KeyError, ValueError, IndexError) as exc:
        raise unfit_weights(path, exc) from None
