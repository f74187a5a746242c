"""The page's picture of a song: the model's actual input, on a colour scale that never moves.

musicnn-based models (the default) listen to musicnn's log-compressed mel
spectrogram (96 bands at 16 kHz, ``log10(1 + 10⁴·power)``); the 2017 window
networks to their own features (10 MFCCs, or a log-mel in dB). Each kind is drawn
on a fixed range, the same for every song, so two songs' pictures can be
compared and one loud coefficient cannot wash the rest out: values outside the
range are drawn in the end colours. The 2017 widget's route keeps its MFCC image
(:meth:`genrify.predict.GenreClassifier.feature_image`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Picture:
    """What one kind of model input looks like on the page."""

    title: str  #: drawn above the image and used as the page's caption
    ylabel: str
    unit: str  #: the colour bar's label
    vmin: float
    vmax: float


#: musicnn's log-mel: 0 is silence, 4 is a mel band at full scale (10⁴ · power 1).
MUSICNN_PICTURE = Picture("Log-mel spectrogram: what the model listens to", "mel band (low → high)",
                          "log10(1 + 10⁴·power)", 0.0, 4.0)
#: The 2017 networks' MFCCs: ±60 shows coefficients 1–9; coefficient 0 (loudness, far below) saturates.
MFCC_PICTURE = Picture("MFCC image: what the model looks at", "coefficient", "MFCC value", -60.0, 60.0)
#: A window network's log-mel in dB (librosa's power_to_db, reference 1).
LOGMEL_PICTURE = Picture("Log-mel spectrogram (dB): what the model looks at", "mel band (low → high)", "dB",
                         -60.0, 40.0)


def model_input(clf, y: np.ndarray) -> tuple[np.ndarray, int, int, Picture]:
    """The input ``clf`` computes from ``y`` (mono float32 at ``clf.sr``), for display.

    Returns ``(image (n_features, frames), sr, hop_length, picture)``.
    """
    if getattr(clf.backend, "kind", "window") == "window":
        from genrify.features import FeatureExtractor

        fc = clf.config.features  # a window model's rate is its features' rate
        image = FeatureExtractor(fc).transform(y)
        return image, fc.sr, fc.hop_length, (MFCC_PICTURE if fc.kind == "mfcc" else LOGMEL_PICTURE)
    from genrify.audio import resample
    from genrify.config import MUSICNN_FEATURES
    from genrify.features.musicnn import musicnn_logmel

    fc = MUSICNN_FEATURES
    logmel = musicnn_logmel(y=resample(y, orig_sr=clf.sr, target_sr=fc.sr) if clf.sr != fc.sr else y)
    return logmel.T, fc.sr, fc.hop_length, MUSICNN_PICTURE


def picture_png(image: np.ndarray, *, sr: int, hop_length: int, picture: Picture, width: float = 5.0,
                height: float = 3.0) -> bytes:
    """Render ``image`` (``(n_features, frames)``, row 0 at the bottom) on ``picture``'s fixed range as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.nan_to_num(np.asarray(image, dtype=np.float32))
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"a picture needs a non-empty 2-D image, got shape {image.shape}")
    n_features, frames = image.shape
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    # Fixed margins: constrained layout would triple the rendering time.
    # Narrow, with large text: a phone shows the picture at about two thirds of its width.
    ax = fig.add_axes((0.14, 0.17, 0.66, 0.71))
    cax = fig.add_axes((0.83, 0.17, 0.025, 0.71))
    mesh = ax.imshow(image, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                     vmin=picture.vmin, vmax=picture.vmax,
                     extent=(0.0, frames * hop_length / float(sr), -0.5, n_features - 0.5))
    ax.set_title(picture.title, fontsize=12)
    ax.set_xlabel("time (s)", fontsize=12)
    ax.set_ylabel(picture.ylabel, fontsize=11)
    ax.tick_params(labelsize=11)
    bar = fig.colorbar(mesh, cax=cax, extend="both")
    bar.ax.tick_params(labelsize=10)
    bar.set_label(picture.unit, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
