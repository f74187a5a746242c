"""Frozen configuration dataclasses, one per pipeline stage, composed into :class:`RunConfig`.

Each stage owns its defaults. A :class:`RunConfig` plus the label list is stored
inside every model file (as JSON), so a model file alone rebuilds its pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

from genrify.errors import ConfigError


@dataclass(frozen=True)
class AudioConfig:
    """How audio is decoded before any feature is computed.

    ``max_duration`` caps how many seconds of a file are analysed (bounded time
    and memory on hour-long or hostile inputs); ``min_duration`` is the shortest
    clip accepted for prediction.
    """

    sr: int = 44100
    max_duration: float | None = 600.0
    min_duration: float = 1.0


@dataclass(frozen=True)
class FeatureConfig:
    """The time-frequency "image" a model sees, shape ``(n_features, frames)``.

    ``kind`` is ``"mfcc"`` (the original: 10 coefficients at 44.1 kHz, n_fft 2048,
    hop 512 → 10 × 2584 for 30 s) or ``"logmel"``. Both follow librosa's
    conventions (Slaney mel scale and norm, ``power_to_db`` with ``top_db``).
    ``legacy_db_mfcc`` re-applies ``power_to_db`` to the MFCCs as the 2017 system
    did; it clamps every negative coefficient to the floor and is off by default.
    """

    kind: str = "mfcc"
    sr: int = 44100
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 10
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = 80.0
    legacy_db_mfcc: bool = False

    @property
    def n_features(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    def frames_for(self, seconds: float) -> int:
        """Number of STFT frames (``center=True``) covering ``seconds`` of audio."""
        return int(round(seconds * self.sr)) // self.hop_length + 1

    def __post_init__(self):
        if self.kind not in ("mfcc", "logmel"):
            raise ConfigError(f"unknown feature kind {self.kind!r} (expected 'mfcc' or 'logmel')")
        if self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0 or self.sr <= 0:
            raise ConfigError("sr, n_fft, hop_length and n_mels must be positive")


@dataclass(frozen=True)
class WindowConfig:
    """How a feature image is cut into fixed-size model inputs.

    Songs longer than ``seconds`` are cut into windows whose probabilities are
    averaged; shorter clips are repeated (wrapped) to fill one window. Training
    takes windows every ``train_hop_seconds``; prediction every ``hop_seconds``.
    ``max_windows`` (musicnn models) caps the windows per song: that many are
    spread evenly over a longer song, so its cost does not grow with its length.
    """

    seconds: float = 3.0
    hop_seconds: float = 3.0
    train_hop_seconds: float = 1.5
    max_windows: int | None = None


@dataclass(frozen=True)
class ModelConfig:
    """Architecture choice and hyper-parameters; the registry maps ``name`` to a builder.

    ``mlp``/``cnn``: the 2017 networks (``hidden``, ``dropout``, ``column_step``,
    ``channels``, ``dense``). ``musicnn-probe``: a class-balanced logistic
    regression (inverse L2 strength ``C``) over the ``backbone``'s embeddings;
    ``fast`` runs the backbone's timbral convolutions in bfloat16.
    """

    name: str = "cnn"
    hidden: tuple[int, ...] = (600,)
    dropout: float = 0.5
    column_step: int = 20
    channels: tuple[int, ...] = (16, 32, 32)
    dense: int = 250
    backbone: str | None = None
    C: float = 0.005
    fast: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's settings. Every random choice derives from ``seed``."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    seed: int = 0
    val_fraction: float = 0.2
    class_weighting: str = "balanced"
    threads: int | None = None
    #: What stays on one side of every split: ``"artist"`` (the artist when known, else the
    #: track: songs of one artist never train and test each other) or ``"track"``.
    group_by: str = "artist"

    def __post_init__(self):
        if self.group_by not in ("artist", "track"):
            raise ConfigError(f"unknown grouping {self.group_by!r} (expected 'artist' or 'track')")


@dataclass(frozen=True)
class VerdictConfig:
    """When an answer is "unsure" or "not music" instead of a genre.

    ``unsure_below``: calibrated top probability under which the answer is
    "unsure". ``music_threshold``: a model with a music / not-music probe calls
    a song not music when its mean music probability is below this.
    ``silence_dbfs``: whole-clip RMS (dBFS) under which a clip is silence.
    ``noise_flatness``: spectral flatness (0 = pure tones, 1 = white noise) above
    which a steady signal is noise. ``tone_peak_share``: a frame is "one tone"
    when this share of its energy lies within ±2 bins of its peak.
    """

    unsure_below: float = 0.35
    music_threshold: float = 0.5
    silence_dbfs: float = -60.0
    noise_flatness: float = 0.5
    tone_peak_share: float = 0.8


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a pipeline, stored inside every model file."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    verdict: VerdictConfig = field(default_factory=VerdictConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        return cls.from_dict(json.loads(text))


# --------------------------------------------------------------------------- musicnn's input, spelled once

#: musicnn's input: 16 kHz audio, 512-point FFT, hop 256, 96 mel bands (up to sr / 2),
#: log-compressed by the backbone's own transform (so ``top_db`` is off).
MUSICNN_FEATURES = FeatureConfig(kind="logmel", sr=16000, n_fft=512, hop_length=256, n_mels=96, top_db=None)
#: One musicnn window ("patch"): 187 frames = 2.992 s at 16 kHz, hop 256.
MUSICNN_PATCH_FRAMES = 187
#: Windows per song: at most 10 spread windows at full fidelity, 3 in fast mode.
MUSICNN_MAX_WINDOWS = 10
MUSICNN_FAST_WINDOWS = 3
_PATCH_SECONDS = MUSICNN_PATCH_FRAMES * MUSICNN_FEATURES.hop_length / MUSICNN_FEATURES.sr
MUSICNN_WINDOW = WindowConfig(seconds=_PATCH_SECONDS, hop_seconds=_PATCH_SECONDS, train_hop_seconds=_PATCH_SECONDS,
                              max_windows=MUSICNN_MAX_WINDOWS)
#: The pretrained backbone every musicnn model uses, and the width of its per-window
#: embedding (mid-end features max- and mean-pooled over time, 2 × 753).
MUSICNN_BACKBONE = "msd_musicnn"
#: AudioSet's mn04 tagger (genrify.models.mn04): its own 32 kHz front end, 527 classes.
AUDIOSET_BACKBONE = "mn04"
#: The rate mn04's front end hears (genrify.features.audioset.SR).
AUDIOSET_SR = 32000
MUSICNN_EMBEDDING_DIM = 1506
#: The MFCC picture shown for musicnn models (10 MFCCs of the 16 kHz audio).
MUSICNN_DISPLAY_FEATURES = FeatureConfig(sr=MUSICNN_FEATURES.sr, n_fft=1024, hop_length=MUSICNN_FEATURES.hop_length,
                                         n_mels=MUSICNN_FEATURES.n_mels, n_mfcc=10)


def musicnn_run_config(config: RunConfig) -> RunConfig:
    """``config`` for a model over musicnn embeddings: musicnn's audio rate, features and windows
    (the audio duration limits, model and training settings are kept)."""
    return dataclasses.replace(
        config,
        audio=AudioConfig(sr=MUSICNN_FEATURES.sr, max_duration=config.audio.max_duration,
                          min_duration=config.audio.min_duration),
        features=MUSICNN_FEATURES, window=MUSICNN_WINDOW)


def _from_dict(cls, data):
    """Rebuild a (nested) frozen dataclass from plain JSON data; unknown keys are an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = _from_dict(hint, value)
        elif typing.get_origin(hint) is tuple or (
            isinstance(value, list) and tuple in typing.get_args(hint)
        ):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
