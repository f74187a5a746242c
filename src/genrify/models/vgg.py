"""MSD_vgg and MTT_vgg: musicnn's VGG-style taggers (Pons & Serra, 2019), ported to PyTorch.

Follows ``vgg(x, is_training, num_classes, num_filters=128)`` of musicnn 0.1.0
(``musicnn/models.py``, ISC licence) with the weights converted from its
Million Song Dataset (``MSD_vgg``) and MagnaTagATune (``MTT_vgg``) checkpoints,
50 tags each; see ``models/weights/NOTICE-musicnn.txt``. The input is the same
as :class:`~genrify.models.musicnn.MusiCNN`'s: a batch of log-mel patches
``(batch, 187, 96)`` from :mod:`genrify.features.musicnn`.

Architecture (``B`` batch, ``T`` = 187 frames, ``F`` = 96 mel bands)::

    input (B, T, F) → batch norm (one channel)       → (B, 1, 187, 96)
    5 × [conv 3×3, 128 filters, 'same' (zero pad 1) → ReLU → BN → max-pool]
        pool1 window 4×1, stride 2×2                   → (B, 128, 92, 48)
        pool2, pool3, pool4 window 2×2, stride 2×2     → (46, 24), (23, 12), (11, 6)
        pool5 window 4×4, stride 4×4                   → (B, 128, 2, 1)
    flatten in TensorFlow's (time, mel, channel) order → (B, 256) ("penultimate")
    dense 256 → 50 (logits)

TensorFlow's pooling is 'valid': windows that do not fit are dropped, as
``nn.MaxPool2d`` does. pool1's 1-band window with stride 2 on the mel axis keeps
every other band; that is what musicnn does. Batch norms use the checkpoint's
moving statistics with TensorFlow's epsilon 0.001; dropout is the identity at
inference and is omitted. Unlike MusiCNN, the network only takes 187-frame
patches: the dense layer's width depends on the patch length.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from genrify.config import MUSICNN_PATCH_FRAMES
from genrify.errors import ModelFileError
from genrify.models.musicnn import N_MELS, FrozenBatchNorm, read_weights

#: (window, stride) of the max-pooling after each conv block, (time, mel).
POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))


def _pooled_size(size: int, axis: int) -> int:
    """Length of one axis after the five 'valid' max-poolings."""
    for window, stride in POOLS:
        size = (size - window[axis]) // stride[axis] + 1
    return size


class _VGGBlock(nn.Module):
    """Conv 3×3 'same' → ReLU → BN → max-pool: ``(B, C_in, T, F) → (B, filters, T', F')``."""

    def __init__(self, in_channels: int, filters: int, window: tuple[int, int], stride: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, filters, 3, padding=1)  # TF 'same' at stride 1: 1 zero on each side
        self.bn = FrozenBatchNorm(filters)
        self.pool = nn.MaxPool2d(window, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.bn(torch.relu(self.conv(x))))


class VGG(nn.Module):
    """musicnn's VGG tagger (see the module docstring).

    ``forward(x)`` maps log-mel patches ``(batch, 187, 96)`` to tag logits
    ``(batch, n_tags)``, like :class:`~genrify.models.musicnn.MusiCNN`;
    :meth:`forward_features` adds the tag probabilities and the embeddings.
    """

    def __init__(self, *, n_mels: int = N_MELS, n_frames: int = MUSICNN_PATCH_FRAMES, n_tags: int = 50,
                 filters: int = 128, tags: list[str] | None = None):
        super().__init__()
        self.tags = list(tags) if tags is not None else [f"tag{i}" for i in range(n_tags)]
        self.n_frames, self.n_mels = n_frames, n_mels
        self.input_bn = FrozenBatchNorm(1)
        self.blocks = nn.ModuleList(
            _VGGBlock(1 if i == 0 else filters, filters, window, stride) for i, (window, stride) in enumerate(POOLS)
        )
        self.embedding_dim = filters * _pooled_size(n_frames, 0) * _pooled_size(n_mels, 1)  # 128 · 2 · 1 = 256
        self.classifier = nn.Linear(self.embedding_dim, n_tags)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every named output for a batch of patches ``x`` of shape ``(B, 187, 96)``.

        Returns a dict with ``logits`` (B, 50), ``taggram`` = sigmoid(logits)
        (B, 50), ``penultimate`` (B, 256: pool5 flattened in TensorFlow's
        (time, mel, channel) order, the input of the output layer) and
        ``pool1`` … ``pool5``, each ``(B, 128, T', F')`` (PyTorch's channel-first
        layout; musicnn's extractor returns them channel-last).

        Raises:
            ValueError: ``x`` is not ``(B, 187, 96)``.
        """
        if x.dim() != 3 or tuple(x.shape[1:]) != (self.n_frames, self.n_mels):
            raise ValueError(f"expected log-mel patches of shape (batch, {self.n_frames}, {self.n_mels}), "
                             f"got {tuple(x.shape)}")
        h = self.input_bn(x.unsqueeze(1))  # (B, 1, T, F)
        out: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)
            out[f"pool{i}"] = h
        penultimate = h.permute(0, 2, 3, 1).flatten(1)  # (B, T5·F5·C): TF flattens channel-last
        logits = self.classifier(penultimate)
        return {"logits": logits, "taggram": torch.sigmoid(logits), "penultimate": penultimate, **out}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tag logits ``(B, 50)`` for log-mel patches ``x`` of shape ``(B, 187, 96)``."""
        return self.forward_features(x)["logits"]


def load_vgg(*, weights: str | Path) -> VGG:
    """Build :class:`VGG` with pretrained weights, in eval mode.

    Args:
        weights: a ``.safetensors`` file written by ``tools/convert_musicnn.py``
            (``msd_vgg`` or ``mtt_vgg``; :func:`genrify.models.backbones.load_backbone`
            finds the shipped ones by name).

    Returns:
        the model; its ``tags`` attribute lists the tag names in output order.

    Raises:
        ModelFileError: the file is missing, unreadable or does not fit the architecture.
    """
    state, metadata = read_weights(weights, what="vgg")
    tags = json.loads(metadata["tags"])
    model = VGG(n_tags=len(tags), tags=tags)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{weights}: weights do not fit the vgg architecture ({exc})") from None
    return model.eval().requires_grad_(False)
