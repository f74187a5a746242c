"""The 2017 system's multilayer perceptron over a column-subsampled MFCC image.

The image is sub-sampled to every ``column_step``-th time column; each of the
``column_step`` offsets is a distinct view of the same window. In training each
sample takes a random offset (so over epochs every offset serves as an extra
training sample, the original's augmentation); in evaluation the logits of all
offsets are averaged, so prediction is deterministic and uses every column.
"""

from __future__ import annotations

import torch
from torch import nn


class ColumnMLP(nn.Module):
    """ReLU MLP with dropout; input ``(B, n_features, n_frames)`` → logits ``(B, n_classes)``."""

    def __init__(self, *, n_features: int, n_frames: int, n_classes: int, hidden: tuple[int, ...] = (600,),
                 dropout: float = 0.5, column_step: int = 20):
        super().__init__()
        if not 1 <= column_step <= n_frames:
            from genrify.errors import ConfigError

            raise ConfigError(f"the MLP needs windows of at least column_step={column_step} frames, got {n_frames} "
                              "(use a longer window or a smaller column step)")
        self.column_step = column_step
        self.n_columns = n_frames // column_step  # columns available at every offset
        layers: list[nn.Module] = []
        width = n_features * self.n_columns
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        step, cols = self.column_step, self.n_columns
        x = x[..., : step * cols].reshape(B, x.shape[1], cols, step)  # (B, F, cols, step)
        if self.training:
            offsets = torch.randint(step, (B,), device=x.device)
            view = x[torch.arange(B, device=x.device), :, :, offsets]  # (B, F, cols)
            return self.net(view.flatten(1))
        views = x.permute(0, 3, 1, 2).reshape(B * step, -1)  # every offset at once
        return self.net(views).reshape(B, step, -1).mean(dim=1)
