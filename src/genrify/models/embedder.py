"""Embeddings from the pretrained backbones: audio → per-window vectors and tags.

One window is one 3 s musicnn patch; all patches of a song go through the
network as one batch. musicnn's embedding is the mid-end's max- and mean-pooled
features (2 × 753 = 1506 values per window): on GTZAN cross-validation they
beat the 200-unit penultimate layer as input to a linear genre probe (see
docs/results.md).

AudioSet's mn04 (:mod:`genrify.models.mn04`) has its own front end (32 kHz,
Kaldi mels, :mod:`genrify.features.audioset`) and hears the same windows: its
front end and trunk run once over each stretch of the song that holds windows
(with ``AUDIOSET_CONTEXT`` seconds of context either side), and each window
averages the trunk's columns that fall inside it before mn04's head (the same
average over the whole clip is mn04's own output). So its windows line up with
musicnn's, and it costs one pass over the audio analysed
(:func:`audioset_windows`).

Modes: full fidelity embeds every non-overlapping patch (up to ``max_patches``
spread patches for long songs); the fast mode embeds ``FAST_PATCHES`` spread
patches with the timbral convolutions in bfloat16. ``precision="int8"`` runs
the timbral convolutions in int8 instead (either only where this machine runs
it faster than float32, see :mod:`genrify.models.quantize`).

Two engines compute the same embeddings: :class:`MusicnnEmbedder` (PyTorch, every
precision, every backbone) and :class:`NumpyEmbedder` (NumPy alone, float32,
MSD_musicnn and mn04), which spares a process that only predicts the import of
torch (seconds, longer than the analysis itself). :func:`make_embedder` builds
the one :mod:`genrify.predict.runtime` chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genrify.config import AUDIOSET_BACKBONE, MUSICNN_BACKBONE, MUSICNN_EMBEDDING_DIM
from genrify.features.musicnn_numpy import HOP_LENGTH, PATCH_FRAMES, SR, NumpyLogMel, patch_index, patch_starts

EMBEDDING_DIM = MUSICNN_EMBEDDING_DIM
#: Seconds of audio either side of a stretch of windows that mn04's trunk also hears (its receptive field).
AUDIOSET_CONTEXT = 1.0
#: One column of mn04's trunk is this many mel frames (five stride-2 stages).
AUDIOSET_COLUMN_FRAMES = 32


@dataclass(frozen=True)
class Embedded:
    """Per-window outputs for one song: ``embeddings (n, 1506)`` and ``taggram (n, 50)`` of MSD_musicnn
    (``(n, 0)`` when it was not computed), ``starts (n,)`` seconds, ``taggrams``: every computed
    backbone's tag (class) probabilities by name, and ``embeddings_of``: every computed backbone's
    embedding by name."""

    embeddings: np.ndarray
    taggram: np.ndarray
    starts: np.ndarray
    taggrams: dict = field(default_factory=dict)
    embeddings_of: dict = field(default_factory=dict)


def window_starts(n_samples: int, *, sr: int, max_patches: int | None) -> np.ndarray:
    """Start (s) of each analysis window of ``n_samples`` samples at ``sr``: musicnn's patch grid."""
    n_frames = 1 + int(round(n_samples * SR / sr)) // HOP_LENGTH
    return patch_starts(n_frames, patch_frames=PATCH_FRAMES, max_patches=max_patches) * HOP_LENGTH / SR


def _to_rate(y: np.ndarray, *, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return np.ascontiguousarray(y, dtype=np.float32)
    from genrify.audio import resample

    return resample(np.asarray(y, dtype=np.float32), orig_sr=sr, target_sr=target)


def stretches(starts: np.ndarray, *, seconds: float, duration: float, context: float) -> list[tuple[float, float]]:
    """The stretches of audio ``[a, b)`` (s) that hold the windows ``[start, start + seconds)`` with
    ``context`` either side, overlapping ones merged; clipped to ``[0, duration]``."""
    out: list[list[float]] = []
    for s in np.sort(starts):
        a, b = max(0.0, float(s) - context), min(duration, float(s) + seconds + context)
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, max(b, a)])
    return [(a, b) for a, b in out]


def audioset_windows(trunk, head, *, starts: np.ndarray, seconds: float, duration: float, frame_rate: float,
                     context: float = AUDIOSET_CONTEXT) -> tuple[np.ndarray, np.ndarray]:
    """mn04's class logits ``(n, 527)`` and embeddings ``(n, 384)`` of the windows at ``starts`` (s).

    ``trunk(a, b)`` → the trunk's columns ``(384, n_columns)`` (its feature map averaged over
    frequency) of the audio from ``a`` to ``b`` seconds, whose front end runs at ``frame_rate``
    frames per second; ``head(embeddings (n, 384))`` → logits. Each window averages the columns
    of its stretch (:func:`stretches`) whose centre lies inside it (the nearest column when none
    does: a clip shorter than one column)."""
    rows: dict[int, np.ndarray] = {}
    for a, b in stretches(starts, seconds=seconds, duration=duration, context=context):
        cols = trunk(a, b)
        edges = a + np.arange(cols.shape[1] + 1) * AUDIOSET_COLUMN_FRAMES / frame_rate
        centres = (edges[:-1] + np.minimum(edges[1:], b)) / 2  # the last column may cover less audio
        for i, s in enumerate(starts):
            if i in rows or not a <= s < b:
                continue
            inside = (centres >= s) & (centres < s + seconds)
            if not inside.any():
                inside = np.zeros(len(centres), bool)
                inside[int(np.argmin(np.abs(centres - (s + seconds / 2))))] = True
            rows[i] = cols[:, inside].mean(axis=1)
    emb = np.stack([rows[i] for i in range(len(starts))]).astype(np.float32)
    return head(emb).astype(np.float32), emb


class MusicnnEmbedder:
    """Holds the backbones and their input transforms; ``embed(y, sr=)`` takes mono audio.

    ``max_patches``: at most this many windows per song, spread evenly (``None``: all).
    ``fast``: bfloat16 timbral convolutions (where the CPU runs bfloat16 faster, measured).
    ``precision``: overrides ``fast``'s arithmetic ("float32", "bfloat16", "int8",
    "fastest"; each only where measured faster, see :meth:`MusiCNN.use_precision`).
    ``also``: other backbones (:mod:`genrify.models.backbones`) computed on the same
    windows, into :attr:`Embedded.taggrams` (and ``embeddings_of``); ``musicnn=False``
    leaves MSD_musicnn out (a model that listens through mn04 alone).
    """

    engine = "torch"

    def __init__(self, *, max_patches: int | None = None, fast: bool = False, also: tuple[str, ...] = (),
                 precision: str | None = None, musicnn: bool = True):
        from genrify.features.musicnn import MusicnnLogMel
        from genrify.models.backbones import load_backbone
        from genrify.models.musicnn import load_musicnn

        self.max_patches = max_patches
        self.model = load_musicnn(fast=fast, precision=precision) if musicnn else None
        self.audioset = load_backbone(AUDIOSET_BACKBONE) if AUDIOSET_BACKBONE in also else None
        self.others = {name: load_backbone(name, fast=fast) for name in also
                       if name not in (MUSICNN_BACKBONE, AUDIOSET_BACKBONE)}
        if precision is not None:
            for net in self.others.values():
                if hasattr(net, "use_precision"):  # the vgg backbones have no reduced-precision path
                    net.use_precision(precision)
        self.tags = list(self.model.tags) if self.model is not None else []
        self.logmel = MusicnnLogMel()

    def embed(self, y: np.ndarray, *, sr: int = SR) -> Embedded:
        """``y``: ``(samples,)`` float32 at ``sr`` → per-window embeddings, tags and start times."""
        import torch

        from genrify.features.musicnn import musicnn_patches

        out: dict = {}
        taggrams: dict = {}
        starts = window_starts(len(y), sr=sr, max_patches=self.max_patches)
        if self.model is not None or self.others:
            y16 = _to_rate(y, sr=sr, target=SR)
            with torch.inference_mode():
                mel = self.logmel(torch.from_numpy(y16))  # (frames, 96)
                patches = musicnn_patches(mel, max_patches=self.max_patches)
                starts = patch_starts(mel.shape[0], patch_frames=PATCH_FRAMES,
                                      max_patches=self.max_patches) * HOP_LENGTH / SR
                if self.model is not None:
                    features = self.model.forward_features(patches)
                    out = {k: features[k].numpy() for k in ("max_pool", "mean_pool", "taggram")}
                taggrams = {name: net.forward_features(patches)["taggram"].numpy()
                            for name, net in self.others.items()}
        embeddings = {}
        if self.audioset is not None:
            taggrams[AUDIOSET_BACKBONE], embeddings[AUDIOSET_BACKBONE] = self._audioset(y, sr=sr, starts=starts)
        return _embedded(out, starts=starts, others=taggrams, embeddings=embeddings)

    def _audioset(self, y: np.ndarray, *, sr: int, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from genrify.features.audioset import AudioSetMel

        front, net = AudioSetMel(), self.audioset

        def trunk(piece: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return net.trunk(front(torch.from_numpy(piece))[None]).numpy()[0]

        def head(e: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return net.head(torch.from_numpy(e)).numpy()

        return _audioset_outputs(y, sr=sr, starts=starts, trunk=trunk, head=head)


def _audioset_outputs(y: np.ndarray, *, sr: int, starts: np.ndarray, trunk, head) -> tuple[np.ndarray, np.ndarray]:
    """mn04's class probabilities and embeddings of the windows at ``starts``: ``trunk(samples at 32 kHz)``
    → columns (front end included), ``head(embeddings)`` → logits (see :func:`audioset_windows`)."""
    from genrify.features.audioset import HOP_LENGTH as AS_HOP
    from genrify.features.audioset import N_FFT as AS_N_FFT
    from genrify.features.audioset import SR as AS_SR

    y32 = _to_rate(y, sr=sr, target=AS_SR)

    def stretch(a: float, b: float) -> np.ndarray:
        i0 = int(round(a * AS_SR))
        piece = y32[i0:max(int(round(b * AS_SR)), i0 + AS_HOP)]
        # The front end needs more than half an FFT frame; a shorter clip repeats itself (as musicnn pads).
        return trunk(np.ascontiguousarray(np.resize(piece, max(len(piece), AS_N_FFT)) if len(piece) else piece))

    logits, emb = audioset_windows(stretch, head, starts=starts, seconds=PATCH_FRAMES * HOP_LENGTH / SR,
                                   duration=len(y32) / AS_SR, frame_rate=AS_SR / AS_HOP)
    return 1.0 / (1.0 + np.exp(-logits)), emb


class NumpyEmbedder:
    """:class:`MusicnnEmbedder`'s float32 outputs of MSD_musicnn and mn04, computed with NumPy alone
    (:mod:`genrify.models.musicnn_numpy`, :mod:`genrify.models.mn04_numpy` and their front ends):
    the same ``embed(y, sr=)``, without importing torch. ``max_patches``, ``also`` and ``musicnn``
    as there (``also`` may name mn04 only)."""

    engine = "numpy"

    def __init__(self, *, max_patches: int | None = None, also: tuple[str, ...] = (), musicnn: bool = True):
        from genrify.models.mn04_numpy import load_numpy_mn04
        from genrify.models.musicnn_numpy import load_numpy_musicnn

        self.max_patches = max_patches
        self.model = load_numpy_musicnn() if musicnn else None
        self.audioset = load_numpy_mn04() if AUDIOSET_BACKBONE in also else None
        self.others: dict = {}
        self.tags = list(self.model.tags) if self.model is not None else []
        self.logmel = NumpyLogMel()

    def embed(self, y: np.ndarray, *, sr: int = SR) -> Embedded:
        """``y``: ``(samples,)`` float32 at ``sr`` → per-window embeddings, tags and start times."""
        out: dict = {}
        starts = window_starts(len(y), sr=sr, max_patches=self.max_patches)
        if self.model is not None:
            mel = self.logmel(_to_rate(y, sr=sr, target=SR))
            out = self.model.forward_features(mel[patch_index(mel.shape[0], max_patches=self.max_patches)])
            starts = patch_starts(mel.shape[0], patch_frames=PATCH_FRAMES, max_patches=self.max_patches) \
                * HOP_LENGTH / SR
        taggrams, embeddings = {}, {}
        if self.audioset is not None:
            from genrify.features.audioset import audioset_logmel

            net = self.audioset
            taggrams[AUDIOSET_BACKBONE], embeddings[AUDIOSET_BACKBONE] = _audioset_outputs(
                y, sr=sr, starts=starts, trunk=lambda piece: net.trunk(audioset_logmel(piece)), head=net.head)
        return _embedded(out, starts=starts, others=taggrams, embeddings=embeddings)


def _embedded(out: dict, *, starts: np.ndarray, others: dict, embeddings: dict) -> Embedded:
    n = len(starts)
    taggram = out["taggram"].astype(np.float32) if out else np.zeros((n, 0), np.float32)
    emb = (np.concatenate([out["max_pool"], out["mean_pool"]], axis=1).astype(np.float32) if out
           else np.zeros((n, 0), np.float32))
    taggrams = {**({MUSICNN_BACKBONE: taggram} if out else {}), **{k: v.astype(np.float32) for k, v in others.items()}}
    embeddings_of = {**({MUSICNN_BACKBONE: emb} if out else {}), **embeddings}
    return Embedded(embeddings=emb, taggram=taggram, starts=np.asarray(starts, np.float64), taggrams=taggrams,
                    embeddings_of=embeddings_of)


def make_embedder(*, engine: str, max_patches: int | None = None, fast: bool = False, also: tuple[str, ...] = (),
                  precision: str | None = None):
    """A :class:`NumpyEmbedder` (``engine="numpy"``) or a :class:`MusicnnEmbedder` (``"torch"``).

    The engine is decided by the caller (:func:`genrify.predict.runtime.plan_runtime`);
    ``also`` names the backbones to compute. MSD_musicnn is always computed, except for a
    model that names mn04 alone."""
    musicnn = set(also) != {AUDIOSET_BACKBONE}
    if engine == "numpy":
        return NumpyEmbedder(max_patches=max_patches, also=also, musicnn=musicnn)
    return MusicnnEmbedder(max_patches=max_patches, fast=fast, also=also, precision=precision, musicnn=musicnn)
