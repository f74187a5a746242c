"""musicnn's input with NumPy alone: log-mel and patches for the torch-free inference engine.

The same pipeline as :mod:`genrify.features.musicnn` (whose module docstring
gives musicnn 0.1.0's recipe): periodic Hann window, ``center=True`` zero
padding, power spectrum, Slaney mel filters, float16 rounding, then
``log10(10000 · x + 1)``. Also home of the patch grid both engines share
(:func:`patch_starts`, :func:`patch_index`).
"""

from __future__ import annotations

import numpy as np

from genrify.config import MUSICNN_FEATURES, MUSICNN_PATCH_FRAMES
from genrify.errors import InvalidAudioError
from genrify.features.filters import mel_filterbank

SR = MUSICNN_FEATURES.sr
N_FFT = MUSICNN_FEATURES.n_fft
HOP_LENGTH = MUSICNN_FEATURES.hop_length
N_MELS = MUSICNN_FEATURES.n_mels
FMAX = SR / 2
PATCH_FRAMES = MUSICNN_PATCH_FRAMES  # 3 s at 16 kHz / hop 256 (musicnn: time_to_frames(3) + 1)
#: Frames per FFT block: the windowed frames and their spectrum stay in the CPU cache.
_BLOCK_FRAMES = 256


def patch_starts(n_frames: int, *, patch_frames: int = PATCH_FRAMES, max_patches: int | None = None) -> np.ndarray:
    """First frame of each patch for a log-mel of ``n_frames`` frames, int64 ``(n_patches,)``.

    Default: musicnn's non-overlapping grid ``0, 187, 374, …`` (trailing frames
    dropped). With ``max_patches`` and more grid patches than that, instead
    ``max_patches`` patches spread evenly over the clip, each centred in one of
    ``max_patches`` equal stretches (so a song's intro and outro weigh less and
    the cost no longer grows with its length). Shorter than one patch: ``[0]``.
    """
    if n_frames <= 0:
        raise ValueError("patch_starts: no frames")
    if max_patches is not None and max_patches < 1:
        raise ValueError("max_patches must be at least 1")
    n_grid = n_frames // patch_frames
    if n_grid == 0:
        return np.zeros(1, dtype=np.int64)
    if max_patches is None or n_grid <= max_patches:
        return np.arange(n_grid, dtype=np.int64) * patch_frames
    span = n_frames - patch_frames
    return np.round((np.arange(max_patches) + 0.5) / max_patches * span).astype(np.int64)


def patch_index(n_frames: int, *, patch_frames: int = PATCH_FRAMES, max_patches: int | None = None) -> np.ndarray:
    """Frame indices ``(n_patches, patch_frames)`` of each patch: :func:`patch_starts` onwards, wrapping
    to the start when the log-mel is shorter than one patch (musicnn's repeat-pad)."""
    starts = patch_starts(n_frames, patch_frames=patch_frames, max_patches=max_patches)
    return (starts[:, None] + np.arange(patch_frames)[None, :]) % n_frames


class NumpyLogMel:
    """Audio → musicnn log-mel with NumPy: ``(samples,)`` float32 at ``sr`` → ``(frames, n_mels)``,
    ``frames = 1 + samples // hop_length``. Holds the window and the filterbank."""

    def __init__(self, *, sr: int = SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH, n_mels: int = N_MELS,
                 fmax: float | None = FMAX):
        self.n_fft, self.hop_length = n_fft, hop_length
        n = np.arange(n_fft)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)).astype(np.float32)  # periodic Hann
        self.fb_t = np.ascontiguousarray(mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=fmax).T)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        y = np.ascontiguousarray(y, dtype=np.float32)
        if y.ndim != 1 or y.size == 0:
            raise InvalidAudioError("no audio samples to analyse" if y.size == 0 else "expected mono samples")
        half = self.n_fft // 2
        frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, half), self.n_fft)[:: self.hop_length]
        mel = np.empty((frames.shape[0], self.fb_t.shape[1]), np.float32)
        for t0 in range(0, frames.shape[0], _BLOCK_FRAMES):
            spec = np.fft.rfft(frames[t0 : t0 + _BLOCK_FRAMES] * self.window, axis=-1)  # complex64
            power = spec.real * spec.real + spec.imag * spec.imag
            np.matmul(power, self.fb_t, out=mel[t0 : t0 + len(power)])
        # float16 rounding is part of musicnn's reference pipeline (see features.musicnn.log_compress)
        return np.log10(mel.astype(np.float16).astype(np.float32) * np.float32(10000.0) + np.float32(1.0))
