"""Calibration: the temperature that makes held-out song probabilities honest."""

from __future__ import annotations

import numpy as np

from genrify.predict.heads import song_softmax


def fit_temperature(window_logits: list[np.ndarray], y: np.ndarray) -> float:
    """Temperature scaling: the T > 0 minimising the song-level negative log-likelihood
    of held-out predictions (Guo et al. 2017, applied to window-averaged probabilities)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t):
        p = song_softmax(window_logits, float(np.exp(log_t)))
        return -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))
