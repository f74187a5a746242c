"""The pretrained backbones by name: musicnn's four taggers, ported to PyTorch.

musicnn 0.1.0 ships four checkpoints, all over the same input (log-mel patches
``(batch, 187, 96)`` from :mod:`genrify.features.musicnn`) and all with 50 tags:

=============  =============================  ===========================
name           architecture                   trained on (tags)
=============  =============================  ===========================
msd_musicnn    :class:`~.musicnn.MusiCNN`     Million Song Dataset
mtt_musicnn    :class:`~.musicnn.MusiCNN`     MagnaTagATune
msd_vgg        :class:`~.vgg.VGG`             Million Song Dataset
mtt_vgg        :class:`~.vgg.VGG`             MagnaTagATune
mn04           :class:`~.mn04.MN04`           AudioSet (527 classes)
=============  =============================  ===========================

mn04 has its own input (32 kHz Kaldi mels, :mod:`genrify.features.audioset`,
``Backbone.input == "audioset"``); the embedder lines its windows up with
musicnn's (:func:`genrify.models.embedder.audioset_windows`).

Each loaded backbone has ``forward(patches)`` → tag logits,
``forward_features(patches)`` → a dict with ``taggram`` (tag probabilities),
``penultimate`` and its other named layers, and ``tags``.
:meth:`Backbone.embed` turns that dict into the backbone's embedding per patch.
Adding a backbone over musicnn's input is one :class:`Backbone` in :data:`BACKBONES`
and its weights file (``tools/convert_musicnn.py``); one with its own front end
also needs the embedder to compute that input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genrify.config import AUDIOSET_BACKBONE, MUSICNN_EMBEDDING_DIM
from genrify.errors import ConfigError, ModelFileError
from genrify.models.mn04 import MN04, MN04_EMBEDDING_DIM, audioset_labels, load_mn04
from genrify.models.musicnn import MusiCNN, load_musicnn
from genrify.models.vgg import VGG, load_vgg

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: ``MSD_LABELS`` of musicnn/configuration.py: Last.fm tags of the Million Song Dataset, in output order.
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
)
#: ``MTT_LABELS`` of musicnn/configuration.py: the 50 most frequent MagnaTagATune tags, in output order.
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo",
    "man", "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)

#: Embedding of the musicnn backbones: the mid-end features max- and mean-pooled over time
#: (what genrify.models.embedder uses; on GTZAN they beat the 200-unit penultimate layer).
_MUSICNN_EMBEDDING = ("max_pool", "mean_pool")
#: Embedding of the vgg backbones: flattened pool5, the input of the output layer.
_VGG_EMBEDDING = ("penultimate",)


@dataclass(frozen=True)
class Backbone:
    """One pretrained backbone: where its weights are, its class, tags and embedding.

    ``embedding`` names the keys of ``forward_features``'s dict that, concatenated
    in this order, make the ``embedding_dim``-wide embedding per patch.
    """

    name: str
    architecture: type[nn.Module]
    weights: str
    tags: tuple[str, ...]
    embedding: tuple[str, ...]
    embedding_dim: int
    summary: str
    #: The backbone under whose name the taxonomy lists this one's tags: a tagger with the same
    #: vocabulary (MSD's or MagnaTagATune's 50 tags) shares its evidence.
    evidence_key: str = ""
    #: What the network hears: "musicnn" (16 kHz log-mel patches) or "audioset" (32 kHz Kaldi mels).
    input: str = "musicnn"

    @property
    def taxonomy_key(self) -> str:
        """The name the taxonomy's evidence for this backbone's tags is listed under."""
        return self.evidence_key or self.name

    @property
    def weights_path(self) -> Path:
        """The ``.safetensors`` file shipped with genrify."""
        return WEIGHTS_DIR / self.weights

    def load(self, *, fast: bool = False) -> nn.Module:
        """The network with its pretrained weights, in eval mode (see :func:`load_backbone`)."""
        if self.architecture is MN04:  # no reduced-precision path: `fast` changes nothing
            model = load_mn04(weights=self.weights_path)
        elif self.architecture is MusiCNN:
            model = load_musicnn(weights=self.weights_path, fast=fast)
        else:
            model = load_vgg(weights=self.weights_path)  # no reduced-precision path: `fast` changes nothing
        if tuple(model.tags) != self.tags:
            raise ModelFileError(f"{self.weights_path}: its tag names are not those of {self.name}")
        return model

    def embed(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The embedding ``(B, embedding_dim)`` from the dict ``forward_features`` returned."""
        return torch.cat([features[key] for key in self.embedding], dim=1)


#: Every backbone by name.
BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("msd_musicnn", MusiCNN, "msd_musicnn.safetensors", MSD_TAGS, _MUSICNN_EMBEDDING, MUSICNN_EMBEDDING_DIM,
             "musicnn trained on the Million Song Dataset (genrify's default backbone)"),
    Backbone("mtt_musicnn", MusiCNN, "mtt_musicnn.safetensors", MTT_TAGS, _MUSICNN_EMBEDDING, MUSICNN_EMBEDDING_DIM,
             "musicnn trained on MagnaTagATune (classical, techno, opera, indian, metal, …)"),
    Backbone("msd_vgg", VGG, "msd_vgg.safetensors", MSD_TAGS, _VGG_EMBEDDING, 256,
             "5-layer VGG-style CNN trained on the Million Song Dataset", "msd_musicnn"),
    Backbone("mtt_vgg", VGG, "mtt_vgg.safetensors", MTT_TAGS, _VGG_EMBEDDING, 256,
             "5-layer VGG-style CNN trained on MagnaTagATune", "mtt_musicnn"),
    Backbone(AUDIOSET_BACKBONE, MN04, "mn04_as.safetensors", audioset_labels(), ("embedding",),
             MN04_EMBEDDING_DIM, "EfficientAT's mn04 trained on AudioSet: 527 classes, ~50 of them genres and "
             "styles, the rest sounds that are not music", input="audioset"),
)}


def get_backbone(name: str) -> Backbone:
    """The :class:`Backbone` called ``name``; raises :class:`ConfigError` for an unknown name."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}") from None


def load_backbone(name: str, *, fast: bool = False) -> nn.Module:
    """The pretrained backbone ``name`` (a key of :data:`BACKBONES`), in eval mode.

    Args:
        name: ``"msd_musicnn"``, ``"mtt_musicnn"``, ``"msd_vgg"``, ``"mtt_vgg"`` or ``"mn04"``.
        fast: musicnn backbones compute their timbral convs in bfloat16 (see
            :meth:`MusiCNN.use_bfloat16`); the vgg backbones have no fast path
            and ignore it.

    Returns:
        the network: ``forward(patches (B, 187, 96))`` → logits ``(B, 50)``,
        ``forward_features`` → dict (``taggram``, ``penultimate``, …), ``tags``.

    Raises:
        ConfigError: unknown name. ModelFileError: the weights file is missing or wrong.
    """
    return get_backbone(name).load(fast=fast)

