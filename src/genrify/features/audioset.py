"""The input of EfficientAT's AudioSet taggers (:mod:`genrify.models.mn04`): a Kaldi-style log-mel spectrogram.

Mono audio at 32 kHz → pre-emphasis ``y[t] - 0.97·y[t-1]`` (one sample shorter)
→ STFT (``n_fft`` 1024, a symmetric 800-sample Hann window centred in the FFT
frame, hop 320, ``center=True`` with reflect padding) → power spectrum →
128 Kaldi triangular mel bands from 0 to 15 kHz → ``log(mel + 1e-5)`` →
``(x + 4.5) / 5``. Output ``(..., 128, frames)``, ``frames = 1 + (samples - 1) // 320``
(100 a second). This is EfficientAT's ``AugmentMelSTFT`` in eval mode (no
masking, no random band edges), whose upper band edge at eval is
``sr // 2 - 1000`` = 15 kHz.

Two engines: :class:`AudioSetMel` (torch; the original's float32 STFT and
arithmetic, so its output matches the original's to float32 rounding) and :func:`audioset_logmel`
(NumPy only, for pages and tools that run without torch). torch is imported
only when an :class:`AudioSetMel` is built, so this module loads without it.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

SR = 32000
N_FFT = 1024
WIN_LENGTH = 800
HOP_LENGTH = 320
N_MELS = 128
FMIN = 0.0
FMAX = 15000
PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
# EfficientAT's "fast normalisation": a fixed shift and scale, no per-clip statistics.
NORM_SHIFT = 4.5
NORM_SCALE = 5.0


def kaldi_mel_filters(*, sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN,
                      fmax: float = FMAX) -> np.ndarray:
    """Kaldi's triangular mel filterbank, float32 ``(n_mels, n_fft // 2 + 1)``.

    Band edges are equally spaced on the mel scale ``1127·ln(1 + f/700)`` from
    ``fmin`` to ``fmax`` Hz (``fmax <= 0`` counts down from Nyquist, as in Kaldi);
    each triangle rises from its left edge to its centre and falls to its right
    edge, measured in mel, peak 1, no area normalisation. Kaldi builds them for
    the ``n_fft // 2`` bins below Nyquist only; the Nyquist column is zero. No
    VTLN warping (warp factor 1). Same construction as
    ``torchaudio.compliance.kaldi.get_mel_banks``, evaluated in float64 and
    rounded once: torchaudio's float32 evaluation loses up to 2e-5 per weight
    (differences of nearby mel values, a log whose last bit depends on the
    CPU), and the reference outputs of EfficientAT's own front end agree with
    the correctly rounded weights (to 2.4e-7 at the output), not with those.
    """
    if n_mels <= 3 or n_fft % 2:
        raise ValueError(f"need more than 3 mel bands and an even n_fft, got n_mels={n_mels}, n_fft={n_fft}")
    nyquist = 0.5 * sr
    fmax = fmax + nyquist if fmax <= 0.0 else float(fmax)
    if not (0.0 <= fmin < nyquist and 0.0 < fmax <= nyquist and fmin < fmax):
        raise ValueError(f"need 0 <= fmin < fmax <= {nyquist} Hz, got fmin={fmin}, fmax={fmax}")
    mel_low = 1127.0 * math.log(1.0 + fmin / 700.0)
    mel_high = 1127.0 * math.log(1.0 + fmax / 700.0)
    # n_mels + 2 equally spaced edges: band b spans edges b..b+2 and peaks at edge b+1.
    edges = mel_low + np.arange(n_mels + 2, dtype=np.float64) * ((mel_high - mel_low) / (n_mels + 1))
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bins = 1127.0 * np.log(1.0 + sr / n_fft * np.arange(n_fft // 2, dtype=np.float64) / 700.0)
    filters = np.maximum(0.0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return np.pad(filters, ((0, 0), (0, 1))).astype(np.float32, copy=False)


@lru_cache(maxsize=1)
def _default_filters() -> np.ndarray:
    filters = kaldi_mel_filters()
    filters.setflags(write=False)   # shared between calls
    return filters


@lru_cache(maxsize=1)
def _centred_window() -> np.ndarray:
    """The symmetric 800-sample Hann window, zero-padded to the centre of a 1024-sample frame (float32)."""
    n = np.arange(WIN_LENGTH, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (WIN_LENGTH - 1))
    left = (N_FFT - WIN_LENGTH) // 2
    window = np.pad(hann, (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)
    window.setflags(write=False)
    return window


def audioset_logmel(y: np.ndarray) -> np.ndarray:
    """The normalised log-mel of mono 32 kHz audio ``y`` (samples,), float32 ``(128, frames)``; NumPy only.

    Same steps as :class:`AudioSetMel` with NumPy's float32 FFT.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"audioset_logmel takes mono audio (samples,) of at least 2 samples, got {y.shape}")
    y = y[1:] - np.float32(PREEMPHASIS) * y[:-1]
    pad = N_FFT // 2
    if y.size <= pad:
        raise ValueError(f"reflect padding needs more than {pad + 1} samples, got {y.size + 1}")
    y = np.pad(y, pad, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP_LENGTH]   # (frames, n_fft)
    spectrum = np.fft.rfft(frames * _centred_window(), axis=-1)
    power = spectrum.real ** 2 + spectrum.imag ** 2                              # (frames, n_fft//2+1)
    mel = _default_filters() @ power.T                                          # (n_mels, frames)
    return ((np.log(mel + np.float32(LOG_OFFSET)) + np.float32(NORM_SHIFT)) / np.float32(NORM_SCALE)).astype(
        np.float32, copy=False)


class AudioSetMel:
    """EfficientAT's eval-mode front end in torch: ``AudioSetMel()(y)`` → ``(..., 128, frames)`` float32.

    ``y`` is a float32 tensor of mono 32 kHz audio, ``(samples,)`` or ``(B, samples)``,
    with more than ``N_FFT // 2 + 1`` samples (reflect padding needs them). The
    filterbank and window are built once, on ``device``.
    """

    def __init__(self, *, device: str = "cpu"):
        import torch

        self._torch = torch
        self.window = torch.hann_window(WIN_LENGTH, periodic=False, device=device)
        self.mel_filters = torch.from_numpy(kaldi_mel_filters()).to(device)   # (128, 513)

    def __call__(self, y):
        torch = self._torch
        single = y.dim() == 1
        if single:
            y = y.unsqueeze(0)
        if y.dim() != 2 or y.shape[-1] <= N_FFT // 2 + 1:
            raise ValueError(f"AudioSetMel takes (samples,) or (B, samples) with more than {N_FFT // 2 + 1} "
                             f"samples, got {tuple(y.shape)}")
        # Elementwise rather than the original 2-tap conv1d: the same float32 products and sums, 10x faster.
        x = y[..., 1:] - PREEMPHASIS * y[..., :-1]
        spec = torch.stft(x, N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=self.window,
                          center=True, pad_mode="reflect", normalized=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()                     # (B, 513, frames)
        mel = torch.matmul(self.mel_filters, power)                         # (B, 128, frames)
        out = (torch.log(mel + LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE
        return out[0] if single else out
