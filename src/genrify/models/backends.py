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
        state = {k[len("model."):]: torch.from_numpy(np.array(v)) for k, v in t.items() if k.startswith("model.")}
        self.net.load_state_dict(state, strict=True)
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


BACKENDS = {"mlp": WindowNetBackend, "cnn": WindowNetBackend}


def build_backend(model_file: ModelFile):
    """The backend for ``model_file``'s architecture."""
    name = model_file.config.model.name
    if name not in BACKENDS:
        raise ModelFileError(f"model file uses an unknown architecture {name!r}")
    return BACKENDS[name](model_file)
