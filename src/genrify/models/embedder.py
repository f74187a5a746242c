"""Embeddings from the pretrained musicnn backbone: audio → per-window vectors.

One window is one 3 s musicnn patch; all patches of a song go through the
network as one batch. The embedding is the mid-end's max- and mean-pooled
features (2 × 753 = 1506 values per window): on GTZAN cross-validation they
beat the 200-unit penultimate layer as input to a linear genre probe (see
docs/results.md).

Modes: full fidelity embeds every non-overlapping patch (up to ``max_patches``
spread patches for long songs); the fast mode embeds ``FAST_PATCHES`` spread
patches with the timbral convolutions in bfloat16. ``precision="int8"`` runs
the timbral convolutions in int8 instead (either only where this machine runs
it faster than float32, see :mod:`genrify.models.quantize`).

Two engines compute the same embeddings: :class:`MusicnnEmbedder` (PyTorch, every
precision, every backbone) and :class:`NumpyEmbedder` (NumPy alone, float32,
musicnn only), which spares a process that only predicts the import of torch
(seconds, longer than the analysis itself) but analyses each song a little
slower (``benchmarks/bench_engines.py``). :func:`make_embedder` builds the one
:mod:`genrify.predict.runtime` chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genrify.config import MUSICNN_BACKBONE, MUSICNN_EMBEDDING_DIM
from genrify.features.musicnn_numpy import HOP_LENGTH, PATCH_FRAMES, SR, NumpyLogMel, patch_index, patch_starts

EMBEDDING_DIM = MUSICNN_EMBEDDING_DIM


@dataclass(frozen=True)
class Embedded:
    """Per-window outputs for one song: ``embeddings (n, 1506)``, ``taggram (n, 50)``, ``starts (n,)`` seconds,
    and ``taggrams``: every backbone's tag probabilities ``(n, 50)`` by name (``msd_musicnn`` included)."""

    embeddings: np.ndarray
    taggram: np.ndarray
    starts: np.ndarray
    taggrams: dict = field(default_factory=dict)


class MusicnnEmbedder:
    """Holds the backbone and its input transform; ``embed(y)`` takes 16 kHz mono audio.

    ``max_patches``: at most this many patches per song, spread evenly (``None``: all).
    ``fast``: bfloat16 timbral convolutions (where the CPU runs bfloat16 faster, measured).
    ``precision``: overrides ``fast``'s arithmetic ("float32", "bfloat16", "int8",
    "fastest"; each only where measured faster, see :meth:`MusiCNN.use_precision`).
    ``also``: other backbones (:mod:`genrify.models.backbones`) whose tags are
    computed on the same patches, into :attr:`Embedded.taggrams`.
    """

    engine = "torch"

    def __init__(self, *, max_patches: int | None = None, fast: bool = False, also: tuple[str, ...] = (),
                 precision: str | None = None):
        from genrify.features.musicnn import MusicnnLogMel
        from genrify.models.backbones import load_backbone
        from genrify.models.musicnn import load_musicnn

        self.max_patches = max_patches
        self.model = load_musicnn(fast=fast, precision=precision)
        self.others = {name: load_backbone(name, fast=fast) for name in also if name != "msd_musicnn"}
        if precision is not None:
            for net in self.others.values():
                if hasattr(net, "use_precision"):  # the vgg backbones have no reduced-precision path
                    net.use_precision(precision)
        self.tags = list(self.model.tags)
        self.logmel = MusicnnLogMel()

    def embed(self, y: np.ndarray) -> Embedded:
        """``y``: ``(samples,)`` float32 at 16 kHz → per-patch embeddings, tags and start times."""
        import torch

        from genrify.features.musicnn import musicnn_patches

        with torch.inference_mode():
            mel = self.logmel(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)))  # (frames, 96)
            patches = musicnn_patches(mel, max_patches=self.max_patches)
            features = self.model.forward_features(patches)
            out = {k: features[k].numpy() for k in ("max_pool", "mean_pool", "taggram")}
            taggrams = {name: net.forward_features(patches)["taggram"].numpy() for name, net in self.others.items()}
        return _embedded(out, n_frames=mel.shape[0], max_patches=self.max_patches, others=taggrams)


class NumpyEmbedder:
    """:class:`MusicnnEmbedder`'s float32 embeddings of MSD_musicnn, computed with NumPy alone
    (:mod:`genrify.models.musicnn_numpy`, :mod:`genrify.features.musicnn_numpy`): the same
    ``embed(y)``, without importing torch. ``max_patches`` as there."""

    engine = "numpy"

    def __init__(self, *, max_patches: int | None = None):
        from genrify.models.musicnn_numpy import load_numpy_musicnn

        self.max_patches = max_patches
        self.model = load_numpy_musicnn()
        self.others: dict = {}
        self.tags = list(self.model.tags)
        self.logmel = NumpyLogMel()

    def embed(self, y: np.ndarray) -> Embedded:
        """``y``: ``(samples,)`` float32 at 16 kHz → per-patch embeddings, tags and start times."""
        mel = self.logmel(y)
        out = self.model.forward_features(mel[patch_index(mel.shape[0], max_patches=self.max_patches)])
        return _embedded(out, n_frames=mel.shape[0], max_patches=self.max_patches, others={})


def _embedded(out: dict, *, n_frames: int, max_patches: int | None, others: dict) -> Embedded:
    starts = patch_starts(n_frames, patch_frames=PATCH_FRAMES, max_patches=max_patches) * HOP_LENGTH / SR
    taggram = out["taggram"].astype(np.float32)
    emb = np.concatenate([out["max_pool"], out["mean_pool"]], axis=1).astype(np.float32)
    taggrams = {MUSICNN_BACKBONE: taggram, **{k: v.astype(np.float32) for k, v in others.items()}}
    return Embedded(embeddings=emb, taggram=taggram, starts=starts.astype(np.float64), taggrams=taggrams)


def make_embedder(*, engine: str, max_patches: int | None = None, fast: bool = False, also: tuple[str, ...] = (),
                  precision: str | None = None):
    """A :class:`NumpyEmbedder` (``engine="numpy"``) or a :class:`MusicnnEmbedder` (``"torch"``).

    The engine is decided by the caller (:func:`genrify.predict.runtime.plan_runtime`);
    ``also`` may name ``msd_musicnn`` itself, which every embedder computes."""
    if engine == "numpy":
        return NumpyEmbedder(max_patches=max_patches)
    return MusicnnEmbedder(max_patches=max_patches, fast=fast, also=also, precision=precision)
