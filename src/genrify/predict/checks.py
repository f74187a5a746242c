"""Is this music at all? Signal checks that stand under the learned music probe.

Pure functions over decoded audio; the thresholds come from the model's
:class:`~genrify.config.VerdictConfig`.

Which rules a model gets (the same for every model that can support them):

* silence, steady noise and one steady tone (:func:`signal_checks`, :func:`verdict`):
  every model, bundled or self-trained, whatever its input;
* a not-music class (:func:`not_music_class`): any model trained with one, e.g. a
  ``not-music`` folder of speech and noise beside the genre folders, says "not
  music" when that class wins;
* the learned music / not-music probe over musicnn embeddings: every model that
  computes those embeddings (the bundled models, ``musicnn-probe``,
  ``musicnn-finetune``; a self-trained one carries the bundled probe). A window
  network (``mlp``, ``cnn``) reads its own MFCC or log-mel windows and never
  computes musicnn embeddings, so it has no probe to ask: running musicnn beside
  it would cost more than the network itself. Speech can get a genre from such a
  model unless it was trained with a not-music class.
"""

from __future__ import annotations

import math

import numpy as np

from genrify.config import VerdictConfig


def rms_dbfs(y: np.ndarray) -> float:
    """Whole-clip RMS level of ``y`` in dBFS."""
    y = np.asarray(y, dtype=np.float32).ravel()
    # A dot product: one pass, no float64 copy of a whole song (float32 sums are ample for a level in dB).
    return 10 * np.log10(float(np.dot(y, y)) / max(1, y.size) + 1e-20)


def signal_checks(y: np.ndarray, *, sr: int, verdict: VerdictConfig = VerdictConfig(),
                  engine: str = "numpy") -> str | None:
    """A safety net under the learned music probe, for signals it may never have seen:
    steady broadband noise and one steady tone. Conservative by design: music with
    a strong bass or a solo instrument changes pitch and timbre over time and passes.

    Works on frames of at least 64 ms (1024 points at 16 kHz, 4096 at 44.1 kHz: the
    same resolution, ≤ 16 Hz, for every model's rate, so "±2 bins of the peak" never
    spans a whole bass line), each with its own mean (DC) removed first: a constant
    offset would otherwise leak into the lowest bins and read as a steady ~16 Hz tone.
    ``engine``: whose FFT computes the spectra ("torch" or "numpy", the analysing engine's).
    Returns the reason, or ``None``.
    """
    n = 1024
    while n * 16000 < 1024 * sr:  # integers: exactly 1024 at 16 kHz
        n *= 2
    if len(y) < 4 * n:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(y, dtype=np.float32), n)[:: n // 2][:2000]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames *= np.hanning(n).astype(np.float32)
    spec = _power_spectrum(frames, engine=engine)[:, 1:] + np.float32(1e-20)
    loud = spec.sum(axis=1) > 1e-6 * spec.sum(axis=1).max()
    spec = spec[loud]
    if len(spec) < 4:
        return None
    # Flatness over 0–8 kHz (all of it at the musicnn models' 16 kHz): noise recorded or
    # resampled at a lower rate leaves the top of a 44.1 kHz spectrum empty, and would not look flat.
    band = spec[:, : max(8, int(8000 * n / sr))]
    frame_flat = np.exp(np.mean(np.log(band), axis=1)) / band.mean(axis=1)
    if np.quantile(frame_flat, 0.1) > verdict.noise_flatness:
        return f"This sounds like noise (spectral flatness {np.median(frame_flat):.2f}), not music; no genre given."
    peaks = spec.argmax(axis=1)
    window = np.stack([np.take_along_axis(spec, np.clip(peaks[:, None] + d, 0, spec.shape[1] - 1), 1)[:, 0]
                       for d in range(-2, 3)], axis=1).sum(axis=1)
    tonal = window / spec.sum(axis=1) > verdict.tone_peak_share
    steady = np.abs(peaks - np.median(peaks)) <= 2
    if np.mean(tonal & steady) > 0.9:
        return f"This sounds like a steady tone (~{(np.median(peaks) + 1) * sr / n:.0f} Hz), not music; no genre given."
    return None


def _power_spectrum(frames: np.ndarray, *, engine: str) -> np.ndarray:
    """``|rfft(frames)|²`` along the last axis, float32 (a song's frames are tens of MB in float64).

    torch's FFT on the torch engine (the window models and musicnn on torch): NumPy's is
    several times slower on these frames. NumPy's on the NumPy engine: importing torch for it
    would cost seconds. Both agree to float32 round-off.
    """
    if engine == "torch":
        import torch

        spectrum = torch.fft.rfft(torch.from_numpy(frames), dim=1)
        return (spectrum.real.square() + spectrum.imag.square()).numpy()
    spectrum = np.fft.rfft(frames, axis=1)
    return spectrum.real * spectrum.real + spectrum.imag * spectrum.imag


#: Genre labels (normalised: lower case, letters and digits only) that name "not music".
NOT_MUSIC_LABELS = frozenset({"notmusic", "nonmusic", "nomusic"})


def not_music_class(labels) -> int | None:
    """The index of the not-music class among a model's ``labels`` ("not-music", "Not music",
    "non_music" …), or ``None`` when the model was trained without one."""
    import re

    for i, label in enumerate(labels):
        if re.sub(r"[^a-z0-9]+", "", str(label).lower()) in NOT_MUSIC_LABELS:
            return i
    return None


def certainty_percent(p: float) -> int:
    """A probability as the whole percent every front door prints (the CLI, the JSON's message, the page).

    Rounded from the 4 decimals the JSON carries, halves up, so it is the page's
    ``Math.round(p * 100)`` of the same answer; the unsure verdict compares these figures, so
    the sentence that states it can never read "only 35% certainty (below 35%)".
    """
    return int(math.floor(round(float(p), 4) * 100 + 0.5))


def verdict(y: np.ndarray, probabilities: np.ndarray, details: dict, *, config: VerdictConfig,
            multi_label: bool = False) -> tuple[str, str]:
    """``(verdict, message)`` for a song: ``"not_music"`` (silence, or a backend's not-music finding),
    ``"tags"`` (a multi-label tagger), ``"unsure"`` (top probability below ``config.unsure_below``,
    both as the whole percents printed: :func:`certainty_percent`) or ``"genre"``."""
    level = rms_dbfs(y - np.float32(np.mean(y, dtype=np.float64)))  # a constant offset is not sound
    if level < config.silence_dbfs:
        return "not_music", f"This sounds like silence ({level:.0f} dBFS), not music."
    if details.get("not_music"):
        return "not_music", details.get("not_music_reason", "This does not sound like music.")
    if multi_label:
        return "tags", "musicnn tags (independent probabilities)"
    top, below = certainty_percent(probabilities.max()), certainty_percent(config.unsure_below)
    if top < below:
        return "unsure", f"Not sure: the most likely genre has only {top}% certainty (below {below}%)."
    return "genre", "ok"
