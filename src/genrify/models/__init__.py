"""Model architectures and the one registry of model names.

Models only hold architecture: ``forward(x)`` takes a batch of normalised feature
windows ``(batch, n_features, frames)`` (or of embeddings ``(batch, n_features)``)
and returns logits ``(batch, n_classes)``.

Every model genrify knows is one :class:`ModelSpec` in :data:`REGISTRY`. Its
``kind`` says how it is trained (:mod:`genrify.train.run`) and scored
(:mod:`genrify.predict.backends`); both look the kind up, so adding an
architecture of an existing kind is one entry here and its builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from genrify.config import AUDIOSET_BACKBONE, MUSICNN_BACKBONE, ModelConfig
from genrify.errors import ConfigError

#: A network over feature windows (MFCC / log-mel images), trained by the training loop.
WINDOW_NET = "window-net"
#: A linear probe (logistic regression) over musicnn embeddings.
EMBEDDING_PROBE = "embedding-probe"
#: A network over musicnn embeddings, trained by the training loop.
EMBEDDING_NET = "embedding-net"
#: A pretrained tagger's own classes (musicnn's, AudioSet's): nothing to train.
TAGGER = "tagger"
#: genrify's genre taxonomy over the pretrained taggers' tags (trained by tools/train_taxonomy_model.py).
TAXONOMY_HEAD = "taxonomy-head"


@dataclass(frozen=True)
class ModelSpec:
    """One model genrify knows: how to build it and which kind of training and scoring it takes.

    ``builder(config, n_features=, n_frames=, n_classes=)`` returns the ``nn.Module``
    (``None`` for models without a trainable network); ``backbone`` names the
    pretrained network its inputs come from; ``summary`` is its one-line help.
    """

    name: str
    kind: str
    summary: str
    builder: Callable | None = None
    backbone: str | None = None

    @property
    def trainable(self) -> bool:
        return self.kind not in (TAGGER, TAXONOMY_HEAD)


def _mlp(config: ModelConfig, *, n_features: int, n_frames: int, n_classes: int):
    from genrify.models.mlp import ColumnMLP

    return ColumnMLP(n_features=n_features, n_frames=n_frames, n_classes=n_classes,
                     hidden=config.hidden, dropout=config.dropout, column_step=config.column_step)


def _cnn(config: ModelConfig, *, n_features: int, n_frames: int, n_classes: int):
    from genrify.models.cnn import MfccCNN

    return MfccCNN(n_features=n_features, n_frames=n_frames, n_classes=n_classes,
                   channels=config.channels, dense=config.dense, dropout=config.dropout)


def _musicnn_finetune(config: ModelConfig, *, n_features: int, n_frames: int, n_classes: int):
    from genrify.models.embedder import EMBEDDING_DIM
    from genrify.models.musicnn import MusicnnBackEnd

    if n_features != EMBEDDING_DIM:
        raise ConfigError(f"musicnn-finetune takes {EMBEDDING_DIM}-value musicnn embeddings, got {n_features}")
    return MusicnnBackEnd(n_classes=n_classes, dropout=config.dropout)


#: Every model by name, in help order.
REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("cnn", WINDOW_NET, "the 2017 CNN over MFCC windows (3 conv layers 16/32/32, dense 250)", _cnn),
    ModelSpec("mlp", WINDOW_NET, "the 2017 multilayer perceptron over every 20th MFCC column", _mlp),
    ModelSpec("musicnn-probe", EMBEDDING_PROBE,
              "few-shot linear head over pretrained musicnn embeddings", backbone=MUSICNN_BACKBONE),
    ModelSpec("musicnn-finetune", EMBEDDING_NET,
              "fine-tunes musicnn's last dense layer with a new genre layer; for a few dozen songs per genre "
              "and more", _musicnn_finetune, backbone=MUSICNN_BACKBONE),
    ModelSpec("taxonomy", TAXONOMY_HEAD,
              "top-level genres and their styles from musicnn and AudioSet's mn04, trained on labelled music of "
              "every genre (the bundled default)", backbone=MUSICNN_BACKBONE),
    ModelSpec("musicnn", TAGGER, "musicnn's own 50 Million-Song-Dataset tags, no training",
              backbone=MUSICNN_BACKBONE),
    ModelSpec("audioset", TAGGER, "AudioSet's 527 sound and music classes (EfficientAT mn04), no training",
              backbone=AUDIOSET_BACKBONE),
)}


def model_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name is a :class:`~genrify.errors.ConfigError`."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(REGISTRY)}") from None


def trainable_models() -> list[str]:
    """Names of the models ``genrify train`` can fit, in help order."""
    return [name for name, spec in REGISTRY.items() if spec.trainable]


def build_model(config: ModelConfig, *, n_features: int, n_frames: int, n_classes: int):
    """Instantiate the network of ``config.name`` for inputs ``(n_features, n_frames)``."""
    spec = model_spec(config.name)
    if spec.builder is None:
        raise ConfigError(f"model {config.name!r} has no trainable network")
    return spec.builder(config, n_features=n_features, n_frames=n_frames, n_classes=n_classes)
