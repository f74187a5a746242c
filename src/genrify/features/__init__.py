"""Time-frequency features: pure functions for the math, ``torch.nn.Module``s that hold
filterbank / DCT matrices as buffers, so one code path serves a clip, a batch,
training and the web service. Shapes are ``(..., n_features, frames)``.

The names below load :mod:`genrify.features.mel` (and torch) on first use, so the
torch-free modules of this package (:mod:`~genrify.features.filters`,
:mod:`~genrify.features.musicnn_numpy`, :mod:`~genrify.features.audioset`) can be
imported without it."""

__all__ = [
    "MFCC",
    "FeatureExtractor",
    "MelSpectrogram",
    "dct_matrix",
    "mel_filterbank",
    "melspectrogram",
    "mfcc",
    "power_to_db",
]


def __getattr__(name: str):
    if name in __all__:
        from genrify.features import mel

        return getattr(mel, name)
    raise AttributeError(f"module 'genrify.features' has no attribute {name!r}")
