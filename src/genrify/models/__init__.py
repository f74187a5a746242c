"""Model architectures and the registry that maps a model name to its builder.

Models only hold architecture: ``forward(x)`` takes a batch of normalised feature
windows ``(batch, n_features, frames)`` (or of embeddings ``(batch, n_features)``)
and returns logits ``(batch, n_classes)``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from genrify.config import ModelConfig

Builder = Callable[..., nn.Module]


def _mlp(config: ModelConfig, *, n_features: int, n_frames: int, n_classes: int) -> nn.Module:
    from genrify.models.mlp import ColumnMLP

    return ColumnMLP(n_features=n_features, n_frames=n_frames, n_classes=n_classes,
                     hidden=config.hidden, dropout=config.dropout, column_step=config.column_step)


def _cnn(config: ModelConfig, *, n_features: int, n_frames: int, n_classes: int) -> nn.Module:
    from genrify.models.cnn import MfccCNN

    return MfccCNN(n_features=n_features, n_frames=n_frames, n_classes=n_classes,
                   channels=config.channels, dense=config.dense, dropout=config.dropout)


def _musicnn_finetune(config: ModelConfig, *, n_features: int, n_frames: int, n_classes: int) -> nn.Module:
    from genrify.features.embeddings import EMBEDDING_DIM
    from genrify.models.musicnn import MusicnnBackEnd

    if n_features != EMBEDDING_DIM:
        from genrify.errors import ConfigError

        raise ConfigError(f"musicnn-finetune takes {EMBEDDING_DIM}-value musicnn embeddings, got {n_features}")
    return MusicnnBackEnd(n_classes=n_classes, dropout=config.dropout)


#: Trainable architectures, by name: over feature windows (``mlp``, ``cnn``) and
#: over per-window musicnn embeddings (``musicnn-finetune``, ``n_frames`` = 1).
REGISTRY: dict[str, Builder] = {"mlp": _mlp, "cnn": _cnn, "musicnn-finetune": _musicnn_finetune}


def build_model(config: ModelConfig, *, n_features: int, n_frames: int, n_classes: int) -> nn.Module:
    """Instantiate the architecture ``config.name`` for inputs ``(n_features, n_frames)``."""
    from genrify.errors import ConfigError

    try:
        builder = REGISTRY[config.name]
    except KeyError:
        raise ConfigError(f"unknown model {config.name!r}; choose one of {', '.join(sorted(REGISTRY))}") from None
    return builder(config, n_features=n_features, n_frames=n_frames, n_classes=n_classes)
