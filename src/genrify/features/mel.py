"""Mel spectrogram and MFCC, numerically matching librosa's conventions.

Conventions (librosa 0.10+ defaults): periodic Hann window, ``center=True`` with
zero padding, power spectrum, Slaney mel scale with Slaney area normalisation,
``power_to_db(ref=1, amin=1e-10, top_db=80)`` and an orthonormal DCT-II.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from genrify.config import FeatureConfig

# --------------------------------------------------------------------------- pure math


def hz_to_mel(freqs: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    freqs = np.asanyarray(freqs, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    log_t = freqs >= min_log_hz
    return np.where(log_t, min_log_mel + np.log(np.maximum(freqs, min_log_hz) / min_log_hz) / logstep, mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asanyarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    return np.where(log_t, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def mel_filterbank(*, sr: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular Slaney-normalised mel filters, shape ``(n_mels, 1 + n_fft // 2)``, float32.

    ``fmax`` defaults to ``sr / 2``. Same construction as ``librosa.filters.mel``.
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, None]
    return weights.astype(np.float32)


def dct_matrix(*, n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II basis, shape ``(n_mfcc, n_mels)``, float32 (scipy's ``dct(norm='ortho')``)."""
    n = np.arange(n_mels, dtype=np.float64)
    k = np.arange(n_mfcc, dtype=np.float64)[:, None]
    basis = np.cos(np.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis.astype(np.float32)


def power_to_db(S: torch.Tensor, *, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0) -> torch.Tensor:
    """``10 * log10(max(S, amin) / ref)``, floored at ``top_db`` below each item's maximum.

    The maximum is taken over the last two axes (one spectrogram), so a batch gives
    the same result as its items one by one.
    """
    log_spec = 10.0 * torch.log10(torch.clamp(S, min=amin))
    log_spec = log_spec - 10.0 * math.log10(max(amin, ref))
    if top_db is not None:
        peak = log_spec.amax(dim=(-2, -1), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - top_db)
    return log_spec


# --------------------------------------------------------------------------- modules


class MelSpectrogram(nn.Module):
    """Power mel spectrogram: ``(..., samples)`` → ``(..., n_mels, 1 + samples // hop_length)``."""

    def __init__(self, *, sr: int, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                 fmin: float = 0.0, fmax: float | None = None):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        fb = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("fb", torch.from_numpy(fb), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        shape = y.shape
        y = y.reshape(-1, shape[-1])
        if y.shape[-1] <= self.n_fft // 2:
            # torch's reflect-free zero padding still needs >= 1 sample per side; pad explicitly.
            y = nn.functional.pad(y, (0, self.n_fft // 2 + 1 - y.shape[-1]))
        spec = torch.stft(y, n_fft=self.n_fft, hop_length=self.hop_length, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (B, bins, frames)
        mel = torch.matmul(self.fb, power)
        return mel.reshape(*shape[:-1], mel.shape[-2], mel.shape[-1])


class MFCC(nn.Module):
    """MFCCs from a power mel spectrogram (``S``) or from audio (``y``).

    ``(..., n_mels, frames)`` → ``(..., n_mfcc, frames)``. ``legacy_db`` re-applies
    ``power_to_db`` to the coefficients, as the 2017 system did (clamping every
    negative coefficient to a floor); keep it off unless reproducing that system.
    """

    def __init__(self, *, n_mfcc: int = 20, n_mels: int = 128, top_db: float | None = 80.0,
                 legacy_db: bool = False):
        super().__init__()
        self.top_db = top_db
        self.legacy_db = legacy_db
        self.register_buffer("dct", torch.from_numpy(dct_matrix(n_mfcc=n_mfcc, n_mels=n_mels)), persistent=False)

    def forward(self, S: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(self.dct, power_to_db(S, top_db=self.top_db))
        if self.legacy_db:
            out = power_to_db(out, top_db=self.top_db)
        return out


class FeatureExtractor(nn.Module):
    """The feature image a :class:`~genrify.config.FeatureConfig` describes.

    ``(..., samples)`` float32 at ``config.sr`` → ``(..., n_features, frames)``.
    """

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.mel = MelSpectrogram(sr=config.sr, n_fft=config.n_fft, hop_length=config.hop_length,
                                  n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
        self.mfcc = (MFCC(n_mfcc=config.n_mfcc, n_mels=config.n_mels, top_db=config.top_db,
                          legacy_db=config.legacy_db_mfcc) if config.kind == "mfcc" else None)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        S = self.mel(y)
        if self.mfcc is not None:
            return self.mfcc(S)
        return power_to_db(S, top_db=self.config.top_db)

    @torch.inference_mode()
    def transform(self, y: np.ndarray) -> np.ndarray:
        """NumPy convenience: ``(..., samples)`` → ``(..., n_features, frames)`` float32."""
        return self(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))).numpy()


# --------------------------------------------------------------------------- functional API


def melspectrogram(*, y: np.ndarray, sr: int, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                   fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Power mel spectrogram of ``y`` (``(..., samples)``) → ``(..., n_mels, frames)``, like librosa's."""
    module = MelSpectrogram(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax)
    with torch.inference_mode():
        return module(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))).numpy()


def mfcc(*, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = 44100, n_mfcc: int = 20,
         n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128, top_db: float | None = 80.0) -> np.ndarray:
    """MFCCs from audio ``y`` or a power mel spectrogram ``S`` → ``(..., n_mfcc, frames)``, like librosa's."""
    if S is None:
        if y is None:
            raise ValueError("mfcc needs y or S")
        S = melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    module = MFCC(n_mfcc=n_mfcc, n_mels=S.shape[-2], top_db=top_db)
    with torch.inference_mode():
        return module(torch.from_numpy(np.ascontiguousarray(S, dtype=np.float32))).numpy()
