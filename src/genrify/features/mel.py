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
from genrify.features.filters import dct_matrix, hz_to_mel, mel_filterbank, mel_to_hz  # noqa: F401 (public here too)

# --------------------------------------------------------------------------- pure math

def power_to_db(S: torch.Tensor, *, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0) -> torch.Tensor:
    """``10 * log10(max(S, amin) / ref)``, floored at ``top_db`` below each item's maximum.

    The maximum is taken over the last two axes (one spectrogram), so a batch gives
    the same result as its items one by one.
    """
    log_spec = 10.0 * torch.log10(torch.clamp(S, min=amin))
    offset = 10.0 * math.log10(max(amin, ref))
    if offset:  # ref=1 (the default) needs no pass over the data
        log_spec = log_spec - offset
    if top_db is not None:
        peak = log_spec.amax(dim=(-2, -1), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - top_db)
    return log_spec


# --------------------------------------------------------------------------- modules


class MelSpectrogram(nn.Module):
    """Power mel spectrogram: ``(..., samples)`` → ``(..., n_mels, 1 + samples // hop_length)``.

    Same result as ``torch.stft`` (``center=True``, zero padding, periodic Hann)
    followed by ``fb @ |X|²``, computed faster on a CPU:

    * frames are cut with ``unfold`` (a view) and processed in cache-sized
      blocks: windowed in one pass, then ``rfft``;
    * ``|X|²`` is the square of the interleaved real/imaginary parts, and the
      sum ``re² + im²`` is folded into the filterbank product (each weight is
      repeated for the real and the imaginary part);
    * the filterbank is mostly zeros (each FFT bin feeds at most two triangular
      filters), so the product runs per group of :attr:`MEL_GROUP` adjacent
      filters over only the bins that group covers: about 1/8 of the dense
      product's work for 128 mels.
    """

    #: Adjacent mel filters that share one matrix product (fewer, larger products vs. fewer zeros).
    MEL_GROUP = 16
    #: Bytes of windowed frames processed per block (about a core's L2 cache).
    BLOCK_BYTES = 1 << 20

    def __init__(self, *, sr: int, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                 fmin: float = 0.0, fmax: float | None = None):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        fb = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("fb", torch.from_numpy(fb), persistent=False)
        # Banded filterbank: group g covers filters [m0, m1) and interleaved columns [c0, c1).
        self._bands: list[tuple[int, int]] = []
        for g, m0 in enumerate(range(0, n_mels, self.MEL_GROUP)):
            rows = fb[m0 : m0 + self.MEL_GROUP]
            nz = np.flatnonzero(rows.any(axis=0))
            b0, b1 = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)
            weights = np.repeat(rows[:, b0:b1], 2, axis=1)  # (filters, 2 * bins): re² and im² weigh alike
            self.register_buffer(f"band{g}", torch.from_numpy(np.ascontiguousarray(weights)), persistent=False)
            self._bands.append((2 * b0, 2 * b1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        shape = y.shape
        y = y.reshape(-1, shape[-1])
        half = self.n_fft // 2
        frames = nn.functional.pad(y, (half, half)).unfold(-1, self.n_fft, self.hop_length)  # (B, T, n_fft) view
        batch, n_frames = frames.shape[0], frames.shape[1]
        mel = torch.empty(batch, self.fb.shape[0], n_frames, dtype=y.dtype, device=y.device)
        # Blocks of frames small enough that the windowed frames, their spectrum and its
        # square stay in the CPU cache between passes: on a 30 s clip at 44.1 kHz the
        # unblocked passes stream ~50 MB through memory and run several times slower.
        step = max(1, self.BLOCK_BYTES // (4 * self.n_fft * batch))
        for t0 in range(0, n_frames, step):
            block = frames[:, t0 : t0 + step]
            spec = torch.fft.rfft(block * self.window, dim=-1)  # (B, t, bins) complex
            power = torch.view_as_real(spec).square_().flatten(-2)  # (B, t, 2 * bins): re², im² interleaved
            m0 = 0
            for g, (c0, c1) in enumerate(self._bands):
                band = getattr(self, f"band{g}")
                # (filters, cols) @ (B, cols, t); BLAS reads the transposed slice in place.
                mel[:, m0 : m0 + band.shape[0], t0 : t0 + step] = torch.matmul(band, power[..., c0:c1].mT)
                m0 += band.shape[0]
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
