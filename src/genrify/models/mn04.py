"""mn04: EfficientAT's smallest-but-one AudioSet tagger (527 sound classes), ported to PyTorch.

The network of F. Schmid, K. Koutini and G. Widmer, "Efficient Large-Scale Audio
Tagging via Transformer-to-CNN Knowledge Distillation", ICASSP 2023
(https://github.com/fschmid56/EfficientAT, MIT licence): a MobileNetV3-Large at
width 0.4 (0.98 M parameters) trained on AudioSet by distillation from an
ensemble of audio transformers (mAP 0.432). Its weights are the release
checkpoint ``mn04_as_mAP_432.pt`` converted unchanged to safetensors; see
``models/weights/NOTICE-mn04.txt``. About 50 of its 527 classes are music genres
and styles, the others say what is not music (speech, animals, vehicles, silence…).

Input: the log-mel spectrogram of :class:`genrify.features.audioset.AudioSetMel`,
``(B, 128, T)`` or ``(B, 1, 128, T)`` float32, 100 frames a second, any ``T``
(10 s windows in training). Output: logits ``(B, 527)`` in the order of
:func:`audioset_labels`; :meth:`MN04.forward_features` adds the 384-value
embedding (the last feature map averaged over frequency and time) and the
sigmoid probabilities (AudioSet is multi-label: classes are not exclusive).

Architecture (``B`` batch, F × T the feature map; every conv is followed by
batch norm, eps 0.001)::

    mel (B, 1, 128, T)
    stem      conv 3×3 stride 2, 8 channels, hard-swish          → (B, 8, 64, T/2)
    15 inverted residual blocks (MobileNetV3-Large's table at width 0.4):
              [1×1 expand → BN → act] (absent where expand = input width)
              → depthwise k×k, stride s → BN → act
              → [squeeze-excitation over channels] → 1×1 project → BN
              (+ input where stride 1 and widths agree)           → (B, 64, 4, T/32)
    last conv 1×1 to 384 channels, hard-swish
    head      mean over F and T → embedding (B, 384)
              → dense 512 → hard-swish → dense 527 (logits)

Inference only: batch norms use the checkpoint's running statistics and the
head's dropout is the identity, so ``train()`` leaves the module in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genrify.models.mn04_numpy import (AUDIOSET_CLASSES, LABELS_PATH, MN04_EMBEDDING_DIM, WEIGHTS_PATH,  # noqa: F401
                                       audioset_labels, read_mn04_weights, unfit_weights)

WIDTH = 0.4
BN_EPS = 1e-3

# MobileNetV3-Large at width 1.0: (input, kernel, expanded, output, squeeze-excite, hard-swish, stride).
# Scaled by WIDTH with make_divisible below; the four stride-2 rows are EfficientAT's strides=(2, 2, 2, 2).
_LARGE = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)
_HEAD_HIDDEN = 1280
_SE_REDUCTION = 4


def make_divisible(v: float, *, divisor: int = 8) -> int:
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), never more than 10 % below ``v``.

    The channel rounding of the MobileNet family: at width 0.4 it turns 24 × 0.4 = 9.6
    into 16, not 8, which the checkpoint's shapes depend on.
    """
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * v:
        rounded += divisor
    return rounded


def _conv_bn(c_in: int, c_out: int, *, kernel: int = 1, stride: int = 1, groups: int = 1,
             activation: type[nn.Module] | None = None) -> nn.Sequential:
    """conv (no bias, 'same' padding for odd kernels) → batch norm → optional activation; keys ``0``, ``1``, ``2``."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=BN_EPS),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class _ChannelGate(nn.Module):
    """Squeeze-excitation over channels: mean over F×T → dense → ReLU → dense → sigmoid, scales each channel.

    EfficientAT's variant uses dense layers and a true sigmoid, not torchvision's
    1×1 convs and hard-sigmoid.
    """

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, squeezed)
        self.fc2 = nn.Linear(squeezed, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3))                                   # (B, C)
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(scale))))
        return x * scale[:, :, None, None]


class _SqueezeExcite(nn.Module):
    """EfficientAT's "concurrent" squeeze-excitation configured with the channel axis only.

    With a single gate the max over concurrent gates is the gate itself; the
    ModuleList stays so the checkpoint's keys (``conc_se_layers.0.fc1``…) load.
    """

    def __init__(self, channels: int):
        super().__init__()
        squeezed = make_divisible(channels // _SE_REDUCTION)
        self.conc_se_layers = nn.ModuleList([_ChannelGate(channels, squeezed)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class _InvertedResidual(nn.Module):
    """One MobileNetV3 bottleneck: [expand] → depthwise → [squeeze-excite] → project, with a skip when shapes agree."""

    def __init__(self, *, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, hard_swish: bool,
                 stride: int):
        super().__init__()
        act = nn.Hardswish if hard_swish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(_conv_bn(c_in, expanded, activation=act))
        layers.append(_conv_bn(expanded, expanded, kernel=kernel, stride=stride, groups=expanded, activation=act))
        if se:
            layers.append(_SqueezeExcite(expanded))
        layers.append(_conv_bn(expanded, c_out))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class MN04(nn.Module):
    """EfficientAT's mn04 AudioSet tagger (inference only); state-dict keys are those of the original.

    Args:
        labels: the class names in output order; ``None`` reads :func:`audioset_labels`.

    Attributes:
        labels: tuple of the 527 AudioSet display names in output order.
    """

    def __init__(self, *, labels: tuple[str, ...] | None = None):
        super().__init__()
        self.labels = tuple(labels) if labels is not None else audioset_labels()
        if len(self.labels) != AUDIOSET_CLASSES:
            raise ValueError(f"mn04 has {AUDIOSET_CLASSES} classes, got {len(self.labels)} labels")

        def w(c: int) -> int:
            return make_divisible(c * WIDTH)

        layers: list[nn.Module] = [_conv_bn(1, w(_LARGE[0][0]), kernel=3, stride=2, activation=nn.Hardswish)]
        for c_in, kernel, expanded, c_out, se, hs, stride in _LARGE:
            layers.append(_InvertedResidual(c_in=w(c_in), kernel=kernel, expanded=w(expanded), c_out=w(c_out),
                                            se=se, hard_swish=hs, stride=stride))
        last = w(_LARGE[-1][3])
        layers.append(_conv_bn(last, 6 * last, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        # Indices 0-5 mirror the original head (pool, flatten, dense, hard-swish, dropout, dense) so keys
        # classifier.2 and classifier.5 load; dropout is the identity at inference.
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(start_dim=1),
            nn.Linear(6 * last, w(_HEAD_HIDDEN)),
            nn.Hardswish(),
            nn.Identity(),
            nn.Linear(w(_HEAD_HIDDEN), AUDIOSET_CLASSES),
        )
        self.eval()

    def train(self, mode: bool = True) -> MN04:
        """Stay in eval mode: the checkpoint's batch-norm statistics are part of the model."""
        return super().train(False)

    def _embed(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() == 3:
            mel = mel.unsqueeze(1)
        if mel.dim() != 4 or mel.shape[1] != 1:
            raise ValueError(f"mn04 takes a log-mel batch (B, 128, T) or (B, 1, 128, T), got {tuple(mel.shape)}")
        x = self.features(mel)                                       # (B, 384, F/32, T/32)
        return self.classifier[1](self.classifier[0](x))             # (B, 384)

    def _logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier[5](self.classifier[3](self.classifier[2](embedding)))

    @property
    def tags(self) -> tuple[str, ...]:
        """The class names, under the name every backbone gives its outputs."""
        return self.labels

    def trunk(self, mel: torch.Tensor) -> torch.Tensor:
        """The convolutional trunk's columns ``(B, 384, ⌈T/32⌉)`` (averaged over frequency) of a log-mel
        batch; averaging them over time gives :meth:`forward_features`'s embedding."""
        if mel.dim() == 3:
            mel = mel.unsqueeze(1)
        return self.features(mel).mean(dim=2)

    def head(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 527)`` of embeddings ``(B, 384)``: the classifier after its pooling."""
        return self._logits(embedding)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 527)`` of a log-mel batch ``(B, 128, T)`` or ``(B, 1, 128, T)``."""
        return self._logits(self._embed(mel))

    def forward_features(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"logits": (B, 527), "embedding": (B, 384), "probabilities": (B, 527)}`` of a log-mel batch.

        ``probabilities`` is the sigmoid of the logits, one independent score per class.
        """
        embedding = self._embed(mel)
        logits = self._logits(embedding)
        return {"logits": logits, "embedding": embedding, "probabilities": torch.sigmoid(logits)}


def load_mn04(*, weights: Path | None = None) -> MN04:
    """Build :class:`MN04` with pretrained weights, in eval mode, gradients off.

    Args:
        weights: a ``.safetensors`` file with the original state-dict keys; ``None``
            loads the mn04_as weights shipped with genrify (:data:`WEIGHTS_PATH`).

    Raises:
        ModelFileError: the file is missing, not safetensors, or does not fit the architecture.
    """
    path, state = read_mn04_weights(weights, framework="torch")
    model = MN04()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise unfit_weights(path, exc) from None
    return model.eval().requires_grad_(False)
