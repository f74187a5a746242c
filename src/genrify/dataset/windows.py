"""Cutting feature images into fixed-size model windows (one implementation for train and predict)."""

from __future__ import annotations

import numpy as np

from genrify.config import RunConfig


def window_starts(n_frames: int, *, size: int, hop: int) -> np.ndarray:
    """Start frames of the windows covering ``n_frames``: every ``hop`` frames, plus one
    aligned to the end so the tail is not dropped. A clip shorter than ``size`` gets one window at 0."""
    if n_frames <= size:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_frames - size + 1, hop, dtype=np.int64)
    if starts[-1] != n_frames - size:
        starts = np.append(starts, n_frames - size)
    return starts


def cut_windows(image: np.ndarray, *, size: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n_features, frames)`` → ``(windows (n, n_features, size), starts (n,))``.

    An image shorter than ``size`` is repeated (wrapped) to fill one window, which
    keeps its statistics music-like where zero padding would add silence.
    """
    image = np.asarray(image)
    n_frames = image.shape[-1]
    if n_frames < size:
        reps = -(-size // n_frames)
        image = np.tile(image, (1, reps))[:, :size]
        n_frames = size
    starts = window_starts(n_frames, size=size, hop=hop)
    idx = starts[:, None] + np.arange(size)[None, :]
    return np.ascontiguousarray(image[:, idx].transpose(1, 0, 2)), starts


def window_frames(config: RunConfig) -> tuple[int, int, int]:
    """``(window size, training hop, prediction hop)`` in frames of ``config.features``."""
    fc, wc = config.features, config.window
    size = fc.frames_for(wc.seconds)
    return size, _seconds_to_frames(wc.train_hop_seconds, fc), _seconds_to_frames(wc.hop_seconds, fc)


def _seconds_to_frames(seconds: float, fc) -> int:
    return max(1, int(round(seconds * fc.sr / fc.hop_length)))
