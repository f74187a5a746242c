"""What a classifier's network is given, as an image to show: the model's input for a song.

musicnn-based models (the default) listen to musicnn's log-compressed mel
spectrogram (96 bands at 16 kHz, ``log10(1 + 10⁴·power)``); the 2017 window
networks to their own features (10 MFCCs, or a log-mel in dB). Each kind of input
comes with a fixed range of values (:class:`InputView`), the same for every song,
so that two songs' pictures can be compared and one loud coefficient cannot wash
the rest out. :func:`genrify.report.feature_image_png` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InputView:
    """How one kind of model input is shown: its title, its axis and colour-bar labels and its fixed range."""

    title: str  #: what the image is (a page uses it as the caption too)
    ylabel: str  #: the rows: mel bands or coefficients, lowest at the bottom
    unit: str  #: what a value measures (the colour bar's label)
    vmin: float  #: values at or below this get the lowest colour
    vmax: float  #: values at or above this get the highest colour


#: musicnn's log-mel: 0 is silence, 4 is a mel band at full scale (10⁴ · power 1).
MUSICNN_LOGMEL = InputView("Log-mel spectrogram: what the model listens to", "mel band (low → high)",
                           "log10(1 + 10⁴·power)", 0.0, 4.0)
#: The 2017 networks' MFCCs: ±60 shows coefficients 1–9; coefficient 0 (loudness, far below) saturates.
WINDOW_MFCC = InputView("MFCC image: what the model looks at", "coefficient", "MFCC value", -60.0, 60.0)
#: A window network's log-mel in dB (librosa's power_to_db, reference 1).
WINDOW_LOGMEL = InputView("Log-mel spectrogram (dB): what the model looks at", "mel band (low → high)", "dB",
                          -60.0, 40.0)


@dataclass(frozen=True)
class ModelInput:
    """A model's input for one song: ``image`` ``(n_features, frames)`` float32, frame ``t`` at
    ``t * hop_length / sr`` seconds, shown as ``view`` says."""

    image: np.ndarray
    sr: int  #: Hz, the rate of the audio the features were computed from
    hop_length: int  #: samples between frames
    view: InputView


def model_input(clf, *, y: np.ndarray) -> ModelInput:
    """The input ``clf`` (a :class:`~genrify.predict.GenreClassifier`) computes from ``y``.

    ``y``: mono float32 samples at ``clf.sr``, as ``clf.load`` returns them. A window model's
    image is its own features (at its features' rate, which is ``clf.sr``); a musicnn model's is
    musicnn's log-mel of ``y`` resampled to 16 kHz, ``(96, frames)`` at hop 256.
    """
    if clf.backend.kind == "window":
        from genrify.features import FeatureExtractor

        fc = clf.config.features
        image = FeatureExtractor(fc).transform(y)
        return ModelInput(image, fc.sr, fc.hop_length, WINDOW_MFCC if fc.kind == "mfcc" else WINDOW_LOGMEL)
    from genrify.audio import resample
    from genrify.config import MUSICNN_FEATURES

    fc = MUSICNN_FEATURES
    y = resample(y, orig_sr=clf.sr, target_sr=fc.sr) if clf.sr != fc.sr else y
    if clf.runtime.engine == "numpy":  # the same log-mel without importing torch
        from genrify.features.musicnn_numpy import NumpyLogMel

        logmel = NumpyLogMel()(np.ascontiguousarray(y, dtype=np.float32))
    else:
        from genrify.features.musicnn import musicnn_logmel

        logmel = musicnn_logmel(y=y)
    return ModelInput(np.asarray(logmel).T, fc.sr, fc.hop_length, MUSICNN_LOGMEL)
