"""The 2017 system's CNN over the MFCC image.

Three 3×3 conv layers (16/32/32 channels), each followed by batch norm,
LeakyReLU and 2×2 max-pooling, then dropout 0.5, a dense layer of 250 units and
the class logits (softmax is applied by the loss / the predictor). Runs in
``channels_last`` memory format, which is faster for these convolutions on CPU.
"""

from __future__ import annotations

import torch
from torch import nn


class MfccCNN(nn.Module):
    """Input ``(B, n_features, n_frames)`` → logits ``(B, n_classes)``."""

    def __init__(self, *, n_features: int, n_frames: int, n_classes: int, channels: tuple[int, ...] = (16, 32, 32),
                 dense: int = 250, dropout: float = 0.5):
        super().__init__()
        blocks: list[nn.Module] = []
        c_in, h, w = 1, n_features, n_frames
        for c_out in channels:
            # Pool frequency only while there is more than one row left, so short
            # images (10 MFCCs) keep working through all three blocks.
            pool = (2 if h >= 2 else 1, 2 if w >= 2 else 1)
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.1), nn.MaxPool2d(pool)]
            c_in, h, w = c_out, h // pool[0], w // pool[1]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * h * w, dense),
                                  nn.LeakyReLU(0.1), nn.Dropout(dropout), nn.Linear(dense, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (B, 1, F, T)
        return self.head(self.features(x).contiguous())
