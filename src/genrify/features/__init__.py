"""Time-frequency features: pure functions for the math, ``torch.nn.Module``s that hold
filterbank / DCT matrices as buffers, so one code path serves a clip, a batch,
training and the web service. Shapes are ``(..., n_features, frames)``."""

from genrify.features.mel import (
    MFCC,
    FeatureExtractor,
    MelSpectrogram,
    dct_matrix,
    mel_filterbank,
    melspectrogram,
    mfcc,
    power_to_db,
)

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
