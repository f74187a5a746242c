"""The input of the pretrained musicnn tagger: log-compressed mel patches, exactly as musicnn 0.1.0 makes them.

Pipeline (musicnn's ``batch_data``, re-implemented on :mod:`genrify.features.mel`):

1. audio: mono float32 at 16 kHz (``genrify.audio.load_audio(path, sr=16000)``);
2. power mel spectrogram: n_fft 512, hop 256, 96 mels, periodic Hann window,
   ``center=True`` with zero padding, power 2, Slaney mel scale and area
   normalisation, fmin 0, fmax 8000 (= sr / 2);
3. rounded to float16, then ``log10(10000 · x + 1)`` computed in float32;
4. non-overlapping patches of 187 frames (3 s); trailing frames that do not
   fill a patch are dropped.

Layout: musicnn works on ``(frames, n_mels)`` (time first), not the
``(n_mels, frames)`` of the other genrify features; every function here says
which it takes and returns.

Clips shorter than one patch (< 187 frames, about 2.98 s) are wrap-padded: the
frames are repeated from the start until 187 are filled, giving one patch. This
is the ``repeat-pad`` the checkpoint was trained with (its ``config.json``);
musicnn 0.1.0 itself fails on such clips.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from genrify.errors import InvalidAudioError
from genrify.features.mel import MelSpectrogram
from genrify.features.musicnn_numpy import (  # noqa: F401 (the patch grid's public home is here too)
    FMAX, HOP_LENGTH, N_FFT, N_MELS, PATCH_FRAMES, SR, patch_index, patch_starts)


def log_compress(S: torch.Tensor) -> torch.Tensor:
    """musicnn's compression of a power mel spectrogram: ``log10(10000 · float16(S) + 1)``.

    ``S``: any shape, float32, non-negative. The float16 rounding is part of the
    reference pipeline and is kept on purpose. Returns float32, same shape.
    """
    return torch.log10(S.to(torch.float16).to(torch.float32) * 10000.0 + 1.0)


class MusicnnLogMel(nn.Module):
    """Audio → musicnn log-mel: ``(..., samples)`` float32 at ``sr`` → ``(..., frames, n_mels)``.

    ``frames = 1 + samples // hop_length``. Holds the window and mel filterbank as
    buffers (via :class:`~genrify.features.mel.MelSpectrogram`).
    """

    def __init__(self, *, sr: int = SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH, n_mels: int = N_MELS,
                 fmax: float | None = FMAX):
        super().__init__()
        self.mel = MelSpectrogram(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=0.0, fmax=fmax)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return log_compress(self.mel(y)).transpose(-1, -2)


def musicnn_logmel(*, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = SR, n_fft: int = N_FFT,
                   hop_length: int = HOP_LENGTH, n_mels: int = N_MELS) -> np.ndarray:
    """musicnn's log-mel of audio ``y`` or of a power mel spectrogram ``S``.

    Args:
        y: audio, shape ``(..., samples)``, float32 at ``sr`` (16 kHz for the
            pretrained model).
        S: instead of ``y``, a power mel spectrogram ``(..., n_mels, frames)``
            as :func:`genrify.features.mel.melspectrogram` returns it.
        sr, n_fft, hop_length, n_mels: STFT and mel settings (musicnn's defaults).

    Returns:
        ``(..., frames, n_mels)`` float32 with ``frames = 1 + samples // hop_length``.

    Raises:
        InvalidAudioError: ``y`` has no samples.
    """
    if S is None:
        if y is None:
            raise ValueError("musicnn_logmel needs y or S")
        y = np.ascontiguousarray(y, dtype=np.float32)
        if y.shape[-1] == 0:
            raise InvalidAudioError("no audio samples to analyse")
        module = MusicnnLogMel(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmax=sr / 2.0)
        with torch.inference_mode():
            return module(torch.from_numpy(y)).numpy()
    with torch.inference_mode():
        S_t = torch.from_numpy(np.ascontiguousarray(S, dtype=np.float32))
        return log_compress(S_t).transpose(-1, -2).numpy()


def musicnn_patches(logmel, *, patch_frames: int = PATCH_FRAMES, max_patches: int | None = None):
    """Cut a log-mel ``(frames, n_mels)`` into model inputs ``(n_patches, patch_frames, n_mels)``.

    Works on a NumPy array or a torch tensor and returns the same kind. Patches
    start at :func:`patch_starts` (musicnn's non-overlapping grid by default, or
    ``max_patches`` spread windows). A log-mel shorter than ``patch_frames`` is
    wrap-padded (its frames repeated from the start) into one patch.
    """
    index = patch_index(logmel.shape[0], patch_frames=patch_frames, max_patches=max_patches)
    if isinstance(logmel, torch.Tensor):
        return logmel[torch.from_numpy(index)]
    return np.ascontiguousarray(logmel[index])
