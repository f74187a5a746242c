"""Inference backends: turn decoded audio into per-window class probabilities.

A backend is chosen by the registry kind of the model file's ``config.model.name``
(:mod:`genrify.models`); the :class:`~genrify.predict.GenreClassifier` never
branches on the architecture. Every other place that scores songs — evaluation,
cross-validation, the held-out report after training — scores through these
backends, so figures describe exactly what ships.

Each backend is built from a model file and the :class:`~genrify.predict.runtime.Runtime`
the loader planned for it (engine, mode, precision); :func:`plan_for` makes that
plan from the backbones the backend's kind listens through.
"""

from __future__ import annotations

import numpy as np

from genrify.config import AUDIOSET_BACKBONE, MUSICNN_BACKBONE, MUSICNN_FAST_WINDOWS
from genrify.dataset.windows import cut_windows, window_frames
from genrify.errors import ConfigError, ModelFileError
from genrify.models.modelfile import ModelFile
from genrify.predict.checks import not_music_class, signal_checks
from genrify.predict.heads import genre_logits_function, probe_logits, sigmoid, window_softmax
from genrify.predict.runtime import Runtime, plan_runtime
from genrify.predict.taxonomy import genre_window_probabilities, head_inputs, song_pool, style_shares


def _temperature(tensors: dict) -> float:
    return float(tensors["calibration.temperature"][0]) if "calibration.temperature" in tensors else 1.0


class Backend:
    """What every backend has: ``labels``, ``multi_label`` (independent tags rather than one genre),
    ``backbones(model_file)`` (the pretrained networks it listens through, which the runtime plan
    needs before it is built) and the song's probabilities from its windows' (their mean, unless
    the backend pools its own way)."""

    kind = "window"
    multi_label = False
    labels: list[str]

    @staticmethod
    def backbones(model_file: ModelFile) -> tuple[str, ...]:
        return ()

    @staticmethod
    def song_probabilities(window_probabilities: np.ndarray) -> np.ndarray:
        return window_probabilities.mean(axis=0)


class WindowNetBackend(Backend):
    """A network trained by genrify on feature windows (``mlp``, ``cnn``)."""

    def __init__(self, model_file: ModelFile, *, runtime: Runtime):
        from genrify.features import FeatureExtractor
        from genrify.models import build_model

        cfg = model_file.config
        self.config = cfg
        self.runtime = runtime
        self.sr = cfg.features.sr
        self.size, _, self.hop = window_frames(cfg)
        t = model_file.tensors
        self.mean, self.std = t["norm.mean"], t["norm.std"]
        self.temperature = _temperature(t)
        self.extractor = FeatureExtractor(cfg.features)
        self.labels = list(model_file.labels)
        self.net = build_model(cfg.model, n_features=cfg.features.n_features, n_frames=self.size,
                               n_classes=len(model_file.labels))
        self.net.load_state_dict(model_file.network_state(), strict=True)
        self.net.eval()

    def image_probabilities(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-window probabilities ``(n_windows, L)`` and window starts (frames) of a feature
        image ``(n_features, frames)`` computed with this model's ``FeatureConfig``."""
        import torch

        image = (np.asarray(image) - self.mean[:, None]) / self.std[:, None]
        windows, starts = cut_windows(image, size=self.size, hop=self.hop)
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(windows.astype(np.float32)))
            return torch.softmax(logits / self.temperature, dim=1).numpy(), starts

    def window_probabilities(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """Per-window probabilities, window starts (s) and details for audio ``y`` at ``self.sr``.

        The verdict rules of a model without musicnn embeddings: its not-music class, if
        trained with one, and the signal checks (see :mod:`genrify.predict.checks`)."""
        probs, starts = self.image_probabilities(self.extractor.transform(y))
        details: dict = {}
        _not_music_details(details, self.labels, probs, y, sr=self.sr, config=self.config, engine=self.runtime.engine)
        return probs, starts * self.config.features.hop_length / self.sr, details


class MusicnnHeadBackend(Backend):
    """A genre head over musicnn embeddings, with an optional music / not-music probe over
    the same embeddings and a calibration temperature. The head is a linear probe
    (``musicnn-probe``) or musicnn's fine-tuned back end (``musicnn-finetune``)."""

    kind = "musicnn"

    @staticmethod
    def backbones(model_file: ModelFile) -> tuple[str, ...]:
        return (MUSICNN_BACKBONE,)

    def __init__(self, model_file: ModelFile, *, runtime: Runtime):
        _set_up_musicnn(self, model_file, runtime=runtime)
        self.temperature = _temperature(self.tensors)
        self._genre_logits = genre_logits_function(model_file)

    def embedding_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated per-window genre probabilities ``(n_windows, L)`` of embeddings ``(n_windows, 1506)``."""
        return window_softmax(self._genre_logits(embeddings), self.temperature).astype(np.float32)

    def window_probabilities(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        emb = self.embedder.embed(y, sr=self.sr)
        probs = self.embedding_probabilities(emb.embeddings)
        return probs, emb.starts, _music_details(self, emb.embeddings, y, probs)


def _set_up_musicnn(backend, model_file: ModelFile, *, runtime: Runtime) -> None:
    """What every backend over musicnn holds: config, rate, the runtime, the embedder (with every
    backbone of ``runtime``, on its engine and precision), the model file's tensors and whether it
    has a music probe."""
    from genrify.models.embedder import make_embedder

    cfg = model_file.config
    backend.config = cfg
    backend.runtime = runtime
    backend.sr = cfg.audio.sr
    backend.fast = runtime.fast
    backend.embedder = make_embedder(engine=runtime.engine, max_patches=runtime.max_windows, fast=runtime.fast,
                                     also=runtime.backbones, precision=runtime.precision)
    backend.tensors = model_file.tensors
    backend.labels = list(model_file.labels)
    backend.has_music_probe = "music.coef" in backend.tensors


def _music_details(backend, embeddings: np.ndarray | None, y: np.ndarray, probs: np.ndarray | None = None, *,
                   p_music: np.ndarray | None = None, judge: str = "music probability") -> dict:
    """The mode, the music / not-music verdict, the not-music class in the window probabilities
    ``probs`` (when given) and the signal checks on ``y``. The verdict reads ``p_music`` (per-window
    probabilities that this is music, named ``judge`` in the reason) or else the model's music
    probe over its per-window inputs ``embeddings``."""
    details: dict = {"mode": "fast" if backend.fast else "full"}
    if p_music is None and backend.has_music_probe and embeddings is not None:
        p_music = sigmoid(probe_logits(backend.tensors, embeddings, prefix="music")[:, 0])
    if p_music is not None:
        details["music_probability"] = round(float(p_music.mean()), 4)
        if p_music.mean() < backend.config.verdict.music_threshold:
            details["not_music"] = True
            details["not_music_reason"] = (f"This does not sound like music ({judge} "
                                           f"{p_music.mean():.0%}); no genre given.")
    _not_music_details(details, backend.labels if probs is not None else [], probs, y, sr=backend.sr,
                       config=backend.config, engine=backend.runtime.engine)
    return details


def _not_music_details(details: dict, labels: list[str], probs: np.ndarray | None, y: np.ndarray, *, sr: int,
                       config, engine: str) -> None:
    """Add to ``details`` the verdict rules every model supports: a not-music class among
    ``labels`` that wins the song (mean of the window probabilities ``probs``), then the
    signal checks on ``y`` (whose reason is the most specific, so it is the one given)."""
    k = not_music_class(labels)
    if k is not None and int(np.argmax(probs.mean(axis=0))) == k:
        details["not_music"] = True
        details["not_music_reason"] = (f"This sounds like the model's {labels[k]!r} examples "
                                       f"({float(probs.mean(axis=0)[k]):.0%}), not music; no genre given.")
    signal = signal_checks(y, sr=sr, verdict=config.verdict, engine=engine)
    if signal:
        details["not_music"] = True
        details["not_music_reason"] = signal


class TaxonomyBackend(Backend):
    """genrify's taxonomy (``taxonomy``): top-level genres from a calibrated linear head over the
    backbones' outputs, styles from their tags' evidence (:mod:`genrify.predict.taxonomy`), and
    music / not music from AudioSet's own "Music" class (``music_class``), averaged over the windows,
    against ``verdict.music_threshold``, with the signal checks. The fast mode runs the same head on
    fewer windows."""

    kind = "musicnn"

    @staticmethod
    def backbones(model_file: ModelFile) -> tuple[str, ...]:
        from genrify.predict.taxonomy import backbones_of

        try:
            inputs = [str(i) for i in model_file.extra["inputs"]]
            music = [AUDIOSET_BACKBONE] if model_file.extra.get("music_class") else []
        except (KeyError, TypeError):
            raise ModelFileError("taxonomy model file lacks its inputs: it was written by an older genrify; "
                                 "retrain it with tools/train_taxonomy_model.py") from None
        return tuple(dict.fromkeys(backbones_of(inputs) + music))

    def __init__(self, model_file: ModelFile, *, runtime: Runtime):
        from genrify.models.mn04_numpy import audioset_labels
        from genrify.taxonomy import parse_taxonomy

        try:
            taxonomy = parse_taxonomy(str(model_file.extra["taxonomy"]))
            self.inputs = [str(i) for i in model_file.extra["inputs"]]
            music = model_file.extra.get("music_class")
            self.music_column = None if music is None else list(audioset_labels()).index(str(music))
        except (KeyError, TypeError, ValueError, ConfigError):
            raise ModelFileError("taxonomy model file lacks its inputs or its taxonomy") from None
        # The styles, in the order of the fitted tensors, come from the taxonomy saved with the model.
        self.styles = [(style.name, genre.name) for genre, style in taxonomy.styles()]
        _set_up_musicnn(self, model_file, runtime=runtime)

    def window_probabilities(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        emb = self.embedder.embed(y, sr=self.sr)
        x = head_inputs(emb.taggrams, emb.embeddings_of, self.inputs)
        probs = genre_window_probabilities(x, self.tensors).astype(np.float32)
        song = song_pool(probs)
        shares = style_shares(emb.taggrams, self.tensors, list(self.runtime.backbones))
        parent = self.tensors["styles.parent"].astype(np.int64)
        music = emb.taggrams[AUDIOSET_BACKBONE][:, self.music_column] if self.music_column is not None else None
        details = _music_details(self, None, y, p_music=music, judge="AudioSet's music class")
        details["styles"] = [[name, genre, round(float(song[g] * q), 4)]
                             for (name, genre), g, q in zip(self.styles, parent, shares)]
        return probs, emb.starts, details

    @staticmethod
    def song_probabilities(window_probabilities: np.ndarray) -> np.ndarray:
        """The song's genre probabilities from its windows' (see :func:`~genrify.predict.taxonomy.song_pool`)."""
        return song_pool(window_probabilities).astype(np.float32)


class TaggerBackend(Backend):
    """A pretrained tagger's own classes, no training: musicnn's 50 Million-Song-Dataset tags
    (``--model musicnn``) or AudioSet's 527 classes (``--model audioset``), by the registry
    entry's backbone.

    Tags are independent (sigmoid), so probabilities do not sum to one.
    """

    kind = "musicnn"
    multi_label = True

    @staticmethod
    def backbones(model_file: ModelFile) -> tuple[str, ...]:
        from genrify.models import model_spec

        return (model_spec(model_file.config.model.name).backbone or MUSICNN_BACKBONE,)

    def __init__(self, model_file: ModelFile, *, runtime: Runtime):
        from genrify.models.embedder import make_embedder
        from genrify.models.mn04_numpy import audioset_labels

        self.config = model_file.config
        self.runtime = runtime
        self.sr = model_file.config.audio.sr
        self.fast = runtime.fast
        (self.backbone,) = self.backbones(model_file)
        self.embedder = make_embedder(engine=runtime.engine, max_patches=runtime.max_windows, fast=runtime.fast,
                                      also=runtime.backbones, precision=runtime.precision)
        self.labels = list(audioset_labels()) if self.backbone == AUDIOSET_BACKBONE else list(self.embedder.tags)

    def window_probabilities(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        emb = self.embedder.embed(y, sr=self.sr)
        return emb.taggrams[self.backbone], emb.starts, {"multi_label": True, "mode": "fast" if self.fast else "full"}


def _backends() -> dict:
    from genrify.models import EMBEDDING_NET, EMBEDDING_PROBE, TAGGER, TAXONOMY_HEAD, WINDOW_NET

    return {WINDOW_NET: WindowNetBackend, EMBEDDING_PROBE: MusicnnHeadBackend, EMBEDDING_NET: MusicnnHeadBackend,
            TAXONOMY_HEAD: TaxonomyBackend, TAGGER: TaggerBackend}


def backend_class(model_file: ModelFile):
    """The backend class for ``model_file``'s architecture, by its registry kind."""
    from genrify.models import model_spec

    name = model_file.config.model.name
    try:
        backend = _backends().get(model_spec(name).kind)
    except ConfigError:
        backend = None
    if backend is None:
        raise ModelFileError(f"model file uses an unknown architecture {name!r}")
    return backend


def plan_for(model_file: ModelFile, *, fast: bool | None = None, songs: int | None = None,
             threads: int | None = None) -> Runtime:
    """The :class:`~genrify.predict.runtime.Runtime` of ``model_file`` in this process.

    ``fast``: musicnn models' fast mode (``None``: as the model file says); ``songs``
    and ``threads``: see :func:`~genrify.predict.runtime.plan_runtime`."""
    cfg = model_file.config
    fast = bool(cfg.model.fast if fast is None else fast)
    return plan_runtime(backbones=backend_class(model_file).backbones(model_file), fast=fast,
                        max_windows=MUSICNN_FAST_WINDOWS if fast else cfg.window.max_windows, songs=songs,
                        threads=threads)


def build_backend(model_file: ModelFile, *, runtime: Runtime):
    """The backend for ``model_file``'s architecture, run as ``runtime`` says (see :func:`plan_for`)."""
    return backend_class(model_file)(model_file, runtime=runtime)
