"""``GenreClassifier``: the one public predictor, used by the CLI and the web app.

It rebuilds the whole pipeline (decode → features → windows → model →
song-level probabilities) from a model file alone. Songs longer than the
model's window are cut into windows whose probabilities are averaged; shorter
clips are wrapped to fill one window; clips under ``AudioConfig.min_duration``
are refused with :class:`~genrify.errors.AudioTooShortError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from genrify.audio import load_audio, resample
from genrify.errors import AudioTooShortError, GenrifyError, ModelFileError
from genrify.models.modelfile import ModelFile, load_model_file

AudioInput = "str | os.PathLike | bytes | np.ndarray"

#: Below this calibrated top probability the answer is "unsure" rather than a genre.
DEFAULT_UNSURE_BELOW = 0.35
#: Audio quieter than this RMS (dBFS) over the whole clip is silence, not music.
SILENCE_DBFS = -60.0


@dataclass(frozen=True)
class Analysis:
    """The result of analysing one song.

    ``probabilities`` are song-level (mean of the windows), ``window_probabilities``
    ``(n_windows, n_labels)`` start at ``window_starts`` seconds. ``verdict`` is
    ``"genre"``, ``"unsure"`` (top probability below the threshold), ``"not_music"``,
    or ``"tags"`` for musicnn's multi-label tagger.
    """

    labels: list[str]
    probabilities: np.ndarray
    top: list[tuple[str, float]]
    window_starts: np.ndarray
    window_probabilities: np.ndarray
    verdict: str
    message: str
    duration: float
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-able view (floats rounded to 4 decimals)."""
        return {
            "verdict": self.verdict,
            "message": self.message,
            "duration": round(float(self.duration), 3),
            "top": [[g, round(float(p), 4)] for g, p in self.top],
            "probabilities": {g: round(float(p), 4) for g, p in zip(self.labels, self.probabilities)},
            "windows": {
                "starts": [round(float(s), 3) for s in self.window_starts],
                "labels": list(self.labels),
                "probabilities": np.round(self.window_probabilities.astype(float), 4).tolist(),
            },
            **({"details": self.details} if self.details else {}),
        }


def default_model_path() -> Path:
    """The model shipped inside the package (see docs/results.md for how it was trained)."""
    return Path(str(resources.files("genrify") / "assets" / "default.genrify"))


class GenreClassifier:
    """Predict genres with a trained genrify model.

    >>> clf = GenreClassifier.from_file("cnn.genrify")   # doctest: +SKIP
    >>> clf.predict("song.mp3")                           # doctest: +SKIP
    [('metal', 0.93), ('rock', 0.05)]
    """

    def __init__(self, model: ModelFile, *, source: str = "<memory>", fast: bool | None = None, backend=None):
        from genrify.models.backends import build_backend

        self.model_file = model
        self.config = model.config
        self.labels: list[str] = list(model.labels)
        self.source = source
        self.backend = backend or build_backend(model, fast=fast)
        self.multi_label = bool(getattr(self.backend, "tags", None))
        self.unsure_below = float(model.extra.get("unsure_below", DEFAULT_UNSURE_BELOW))

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, fast: bool | None = None) -> "GenreClassifier":
        """Load a ``.genrify`` model file (never executes code from it).

        ``"musicnn"`` names musicnn's own 50-tag tagger (no file needed).
        ``fast`` overrides a musicnn model's mode (3 spread windows, bfloat16).
        """
        if str(path) == "musicnn":
            return cls.musicnn_tagger(fast=fast)
        model = load_model_file(path)
        try:
            return cls(model, source=str(path), fast=fast)
        except (KeyError, RuntimeError, ValueError, IndexError) as exc:
            raise ModelFileError(f"{path}: model file does not match its architecture ({str(exc)[:160]})") from None

    @classmethod
    def default(cls, *, fast: bool | None = None) -> "GenreClassifier":
        """The bundled default model: a genre probe over musicnn (see docs/results.md)."""
        path = default_model_path()
        if not path.is_file():
            raise ModelFileError(f"{path}: the bundled default model is missing from this installation")
        return cls.from_file(path, fast=fast)

    @classmethod
    def musicnn_tagger(cls, *, fast: bool | None = None) -> "GenreClassifier":
        """musicnn's Million Song Dataset tagger as a classifier over its 50 tags."""
        from genrify.config import AudioConfig, ModelConfig, RunConfig
        from genrify.models.backends import MusicnnTaggerBackend

        backend = MusicnnTaggerBackend(fast=fast)
        config = RunConfig(audio=AudioConfig(sr=16000), model=ModelConfig(name="musicnn", backbone="msd_musicnn"))
        mf = ModelFile(config=config, labels=backend.tags, tensors={}, extra={"unsure_below": 0.0})
        return cls(mf, source="musicnn", backend=backend)

    # ------------------------------------------------------------------ public
    @property
    def sr(self) -> int:
        return self.backend.sr

    def load(self, audio, *, sr: int | None = None, name: str | None = None) -> np.ndarray:
        """Decode / resample ``audio`` to the model's rate: ``(samples,)`` float32."""
        cap = self.config.audio.max_duration
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise GenrifyError("an array of samples needs its sample rate (sr=...)")
            y = np.asarray(audio, dtype=np.float32)
            y = y.mean(axis=0) if y.ndim == 2 else y
            if not np.isfinite(y).all():
                from genrify.errors import InvalidAudioError

                raise InvalidAudioError(f"{name or '<array>'}: audio contains NaN or infinite samples")
            if cap is not None:
                y = y[: int(cap * sr)]
            return resample(y, orig_sr=sr, target_sr=self.sr)
        y, _ = load_audio(audio, sr=self.sr, max_duration=cap, name=name)
        return y

    def analyse(self, audio, *, sr: int | None = None, top_k: int = 2, name: str | None = None) -> Analysis:
        """Full analysis of one song: song-level and per-window probabilities and a verdict."""
        y = self.load(audio, sr=sr, name=name)
        duration = len(y) / self.sr
        min_d = self.config.audio.min_duration
        if duration < min_d:
            label = name or (str(audio) if isinstance(audio, (str, os.PathLike)) else "audio")
            raise AudioTooShortError(f"{label}: too short ({duration:.2f} s; at least {min_d:g} s needed)")
        window_probs, starts, details = self.backend.window_probabilities(y)
        probs = window_probs.mean(axis=0)
        if self.multi_label:
            details = {**details, "multi_label": True}
        order = np.argsort(-probs)[: max(1, top_k)]
        top = [(self.labels[i], float(probs[i])) for i in order]
        verdict, message = self._verdict(y, probs, details)
        return Analysis(labels=self.labels, probabilities=probs, top=top, window_starts=starts,
                        window_probabilities=window_probs, verdict=verdict, message=message, duration=duration,
                        details=details)

    def predict_proba(self, audio, *, sr: int | None = None) -> np.ndarray:
        """Song-level probabilities ``(n_labels,)`` in the order of ``self.labels``."""
        return self.analyse(audio, sr=sr).probabilities

    def predict(self, audio, *, sr: int | None = None, top_k: int = 2) -> list[tuple[str, float]]:
        """The ``top_k`` most likely genres with their probabilities, best first."""
        return self.analyse(audio, sr=sr, top_k=top_k).top

    def feature_image(self, audio, *, sr: int | None = None) -> tuple[np.ndarray, int, int]:
        """The MFCC image of ``audio`` for display: ``(image (n_features, frames), sr, hop_length)``.

        Window models show their own input; musicnn models show 10 MFCCs of the 16 kHz audio.
        """
        from genrify.config import FeatureConfig
        from genrify.features import FeatureExtractor

        if self.backend.kind == "window":
            fc = self.config.features
        else:
            fc = FeatureConfig(sr=self.sr, n_fft=1024, hop_length=256, n_mels=96, n_mfcc=10)
        y = self.load(audio, sr=sr)
        return FeatureExtractor(fc).transform(y), fc.sr, fc.hop_length

    # ------------------------------------------------------------------ verdict
    def _verdict(self, y: np.ndarray, probs: np.ndarray, details: dict) -> tuple[str, str]:
        rms_db = 10 * np.log10(float(np.mean(np.square(y, dtype=np.float64))) + 1e-20)
        if rms_db < SILENCE_DBFS:
            return "not_music", f"This sounds like silence ({rms_db:.0f} dBFS), not music."
        if details.get("not_music"):
            return "not_music", details.get("not_music_reason", "This does not sound like music.")
        if self.multi_label:
            return "tags", "musicnn tags (independent probabilities)"
        top = float(probs.max())
        if top < self.unsure_below:
            return "unsure", (f"Not sure: the most likely genre has only {top:.0%} certainty "
                              f"(below {self.unsure_below:.0%}).")
        return "genre", "ok"


# --------------------------------------------------------------------------- many files


@dataclass(frozen=True)
class FileResult:
    """One file of :func:`analyse_many`: its analysis, or the one-line reason it failed."""

    path: str
    analysis: Analysis | None
    error: str | None = None


def analyse_many(paths, *, model: str | os.PathLike | None = None, fast: bool | None = None, top_k: int = 2,
                 workers: int = 1):
    """Analyse many files; yields a :class:`FileResult` per path, in the order given.

    ``model``: a model file, ``"musicnn"``, or ``None`` for the bundled default.
    With ``workers > 1`` the files are spread over that many processes, each
    holding its own classifier and one torch thread; at most a few files per
    worker are in flight, so memory stays flat however long the list is.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    paths = [str(p) for p in paths]
    if workers <= 1 or len(paths) <= 1:
        clf = _load_classifier(model, fast)
        for path in paths:
            yield _analyse_file(clf, path, top_k)
        return
    if model is not None and str(model) != "musicnn":
        load_model_file(model)  # a bad model file fails here, with its reason, not in every worker
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(paths)), mp_context=ctx, initializer=_init_worker,
                             initargs=(None if model is None else str(model), fast)) as pool:
        pending = deque()
        todo = iter(paths)
        for path in todo:
            pending.append(pool.submit(_worker_analyse, path, top_k))
            if len(pending) >= 4 * workers:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_worker_analyse, nxt, top_k))
            yield result


def _load_classifier(model, fast) -> GenreClassifier:
    return GenreClassifier.default(fast=fast) if model is None else GenreClassifier.from_file(model, fast=fast)


def _analyse_file(clf: GenreClassifier, path: str, top_k: int) -> FileResult:
    try:
        return FileResult(path, clf.analyse(path, top_k=top_k))
    except GenrifyError as exc:
        return FileResult(path, None, str(exc))


_WORKER: dict = {}


def _init_worker(model, fast) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core: intra-op threads would only contend
    _WORKER["clf"] = _load_classifier(model, fast)


def _worker_analyse(path: str, top_k: int) -> FileResult:
    return _analyse_file(_WORKER["clf"], path, top_k)
