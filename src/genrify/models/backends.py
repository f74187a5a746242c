"""Inference backends: turn decoded audio into per-window class probabilities.

A backend is chosen by the model file's ``config.model.name``; the
:class:`~genrify.predict.GenreClassifier` never branches on the architecture.
"""

from __future__ import annotations

import numpy as np
import torch

from genrify.errors import ModelFileError
from genrify.models.modelfile import ModelFile


class WindowNetBackend:
    """A network trained by genrify on feature windows (``mlp``, ``cnn``)."""

    kind = "window"

    def __init__(self, model_file: ModelFile):
        from genrify.features import FeatureExtractor
        from genrify.models import build_model
        from genrify.train import window_frames

        cfg = model_file.config
        self.config = cfg
        self.sr = cfg.features.sr
        self.size, _, self.hop = window_frames(cfg)
        t = model_file.tensors
        self.mean, self.std = t["norm.mean"], t["norm.std"]
        self.temperature = float(t["calibration.temperature"][0]) if "calibration.temperature" in t else 1.0
        self.extractor = FeatureExtractor(cfg.features)
        self.net = build_model(cfg.model, n_features=cfg.features.n_features, n_frames=self.size,
                               n_classes=len(model_file.labels))
        self.net.load_state_dict(model_file.network_state(), strict=True)
        self.net.eval()

    @torch.inference_mode()
    def window_probabilities(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        from genrify.dataset.windows import cut_windows

        image = self.extractor.transform(y)
        image = (image - self.mean[:, None]) / self.std[:, None]
        windows, starts = cut_windows(image, size=self.size, hop=self.hop)
        logits = self.net(torch.from_numpy(windows.astype(np.float32)))
        probs = torch.softmax(logits / self.temperature, dim=1).numpy()
        seconds = starts * self.config.features.hop_length / self.sr
        return probs, seconds, {}


class MusicnnProbeBackend:
    """A genre head over musicnn embeddings, with an optional music / not-music probe over
    the same embeddings and a calibration temperature. The head is a linear probe
    (``musicnn-probe``) or musicnn's fine-tuned back end (``musicnn-finetune``)."""

    kind = "musicnn"

    def __init__(self, model_file: ModelFile, *, fast: bool | None = None):
        from genrify.features.embeddings import MusicnnEmbedder
        from genrify.models.musicnn import FAST_PATCHES

        cfg = model_file.config
        self.config = cfg
        self.sr = cfg.audio.sr
        fast = cfg.model.fast if fast is None else fast
        self.fast = fast
        max_windows = FAST_PATCHES if fast else cfg.window.max_windows
        self.embedder = MusicnnEmbedder(max_patches=max_windows, fast=fast)
        self.tensors = model_file.tensors
        self.temperature = float(self.tensors["calibration.temperature"][0]) if "calibration.temperature" in self.tensors else 1.0
        self.music_threshold = float(model_file.extra.get("music_threshold", 0.5))
        self.has_music_probe = "music.coef" in self.tensors
        if cfg.model.name == "musicnn-finetune":
            from genrify.train import head_logits, load_head

            head = load_head(model_file)
            self._genre_logits = lambda e: head_logits(head, [e])[0]
        else:
            from genrify.train import probe_logits

            self._genre_logits = lambda e: probe_logits(self.tensors, e)

    def window_probabilities(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        from genrify.train import probe_logits

        emb = self.embedder.embed(y)
        z = self._genre_logits(emb.embeddings) / self.temperature
        e = np.exp(z - z.max(axis=1, keepdims=True))
        probs = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        details: dict = {"mode": "fast" if self.fast else "full"}
        if self.has_music_probe:
            p_music = _sigmoid(probe_logits(self.tensors, emb.embeddings, prefix="music")[:, 0])
            details["music_probability"] = round(float(p_music.mean()), 4)
            if p_music.mean() < self.music_threshold:
                details["not_music"] = True
                details["not_music_reason"] = (f"This does not sound like music (music probability "
                                               f"{p_music.mean():.0%}); no genre given.")
        signal = signal_checks(y, sr=self.sr)
        if signal:
            details["not_music"] = True
            details["not_music_reason"] = signal
        return probs, emb.starts, details


class MusicnnTaggerBackend:
    """musicnn's own 50 Million-Song-Dataset tags, no training (``--model musicnn``).

    Tags are independent (sigmoid), so probabilities do not sum to one.
    """

    kind = "musicnn"

    def __init__(self, model_file: ModelFile | None = None, *, fast: bool | None = None):
        from genrify.features.embeddings import MusicnnEmbedder
        from genrify.models.musicnn import FAST_PATCHES

        self.sr = 16000
        self.fast = bool(fast)
        self.embedder = MusicnnEmbedder(max_patches=FAST_PATCHES if fast else 10, fast=self.fast)
        self.tags = self.embedder.tags

    def window_probabilities(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        emb = self.embedder.embed(y)
        return emb.taggram, emb.starts, {"multi_label": True, "mode": "fast" if self.fast else "full"}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


#: Spectral flatness (0 = pure tones, 1 = white noise) above which a steady signal is noise.
NOISE_FLATNESS = 0.5
#: A frame is "one tone" when this share of its energy lies within ±2 bins of its peak.
TONE_PEAK_SHARE = 0.8


def signal_checks(y: np.ndarray, *, sr: int) -> str | None:
    """A safety net under the learned music probe, for signals it may never have seen:
    steady broadband noise and one steady tone. Conservative by design: music with
    a strong bass or a solo instrument changes pitch and timbre over time and passes.

    Works on 1024-point frames; returns the reason, or ``None``.
    """
    n = 1024
    if len(y) < 4 * n:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[:: n // 2][:2000]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1))[:, 1:] ** 2 + 1e-20
    loud = spec.sum(axis=1) > 1e-6 * spec.sum(axis=1).max()
    spec = spec[loud]
    if len(spec) < 4:
        return None
    frame_flat = np.exp(np.mean(np.log(spec), axis=1)) / spec.mean(axis=1)
    if np.quantile(frame_flat, 0.1) > NOISE_FLATNESS:
        return f"This sounds like noise (spectral flatness {np.median(frame_flat):.2f}), not music; no genre given."
    peaks = spec.argmax(axis=1)
    window = np.stack([np.take_along_axis(spec, np.clip(peaks[:, None] + d, 0, spec.shape[1] - 1), 1)[:, 0]
                       for d in range(-2, 3)], axis=1).sum(axis=1)
    tonal = window / spec.sum(axis=1) > TONE_PEAK_SHARE
    steady = np.abs(peaks - np.median(peaks)) <= 2
    if np.mean(tonal & steady) > 0.9:
        return f"This sounds like a steady tone (~{(np.median(peaks) + 1) * sr / n:.0f} Hz), not music; no genre given."
    return None


BACKENDS = {"mlp": WindowNetBackend, "cnn": WindowNetBackend, "musicnn-probe": MusicnnProbeBackend,
            "musicnn-finetune": MusicnnProbeBackend}


def build_backend(model_file: ModelFile, *, fast: bool | None = None):
    """The backend for ``model_file``'s architecture (``fast`` only affects musicnn models)."""
    name = model_file.config.model.name
    if name not in BACKENDS:
        raise ModelFileError(f"model file uses an unknown architecture {name!r}")
    if BACKENDS[name] is WindowNetBackend:
        return WindowNetBackend(model_file)
    return BACKENDS[name](model_file, fast=fast)
