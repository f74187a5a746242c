"""The 2017 system's CNN over the MFCC image.

Three 3×3 conv layers (16/32/32 channels), each followed by batch norm,
LeakyReLU and 2×2 max-pooling, then dropout 0.5, a dense layer of 250 units and
the class logits (softmax is applied by the loss / the predictor).

Two speed-ups that leave the function unchanged: max-pooling runs before the
LeakyReLU (a monotonic function commutes with max, so forward and gradient are
the same, on a quarter of the elements), and activations are kept in
``channels_last`` memory format from the first convolution on (with one input
channel the input itself cannot carry that format, and CPU max-pooling in the
default format is several times slower).
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
            # Pool before LeakyReLU: identical result (monotonic), 4x fewer activations.
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.MaxPool2d(pool), nn.LeakyReLU(0.1)]
            c_in, h, w = c_out, h // pool[0], w // pool[1]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * h * w, dense),
                                  nn.LeakyReLU(0.1), nn.Dropout(dropout), nn.Linear(dense, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)  # (B, 1, F, T)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == 0:  # (B, C, F, T) from here on in channels_last memory format
                x = x.contiguous(memory_format=torch.channels_last)
        return self.head(x.contiguous())
