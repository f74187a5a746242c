"""``GenreClassifier``: the one public predictor, used by the CLI, the web app and evaluation.

It rebuilds the whole pipeline (decode → features → windows → model →
song-level probabilities) from a model file alone. Songs longer than the
model's window are cut into windows whose probabilities are averaged; shorter
clips are wrapped to fill one window; clips under ``AudioConfig.min_duration``
are refused with :class:`~genrify.errors.AudioTooShortError`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np

from genrify.audio import load_audio, resample
from genrify.audio.decode import to_full_scale
from genrify.config import MUSICNN_DISPLAY_FEATURES
from genrify.errors import AudioTooShortError, GenrifyError, InvalidAudioError, ModelFileError
from genrify.models.modelfile import ModelFile
from genrify.predict.checks import verdict
from genrify.predict.resolve import ModelRef, resolve_model
from genrify.predict.runtime import Runtime
from genrify.predict.threads import set_threads
from genrify.taxonomy import canonical_name


#: A style of the top genre is named when its share of that genre (the mean noisy-OR of its tags,
#: :func:`genrify.predict.taxonomy.style_shares`) reaches this; its probability is the genre's × that share.
STYLE_MIN_SHARE = 0.3


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

    @property
    def genre(self) -> str | None:
        """The top-level genre's canonical name (taxonomy spelling), or ``None`` when the verdict is not a genre."""
        if self.verdict != "genre" or not self.top:
            return None
        return canonical_name(self.top[0][0])

    @property
    def genres(self) -> dict[str, float]:
        """Every label's song-level probability, under its canonical name where the taxonomy knows it."""
        if self.verdict == "tags":
            return {}
        names = [canonical_name(g) for g in self.labels]
        if len(set(names)) < len(names):  # two of a model's own labels spell one genre: keep the labels
            names = list(self.labels)
        return {name: round(float(p), 4) for name, p in zip(names, self.probabilities)}

    def styles(self, *, min_share: float = STYLE_MIN_SHARE) -> list[dict]:
        """The styles of the top genre whose share of it is at least ``min_share``, most likely first:
        ``name``, ``probability`` (the genre's × the share) and ``share`` (none unless the verdict is a
        genre and the model speaks the taxonomy)."""
        genre = self.genre
        if genre is None:
            return []
        p_genre = float(self.top[0][1])
        found = [{"name": name, "probability": p, "share": round(min(1.0, p / p_genre), 4)}
                 for name, parent, p in self.details.get("styles", ()) if parent == genre and p_genre > 0]
        return sorted((s for s in found if s["share"] >= min_share), key=lambda s: -s["probability"])

    def to_dict(self, *, top_k: int | None = None) -> dict:
        """The one JSON-able view of an analysis (floats rounded to 4 decimals), for the CLI's
        ``--json``, the web API and library tagging. ``top_k``: list only that many of ``top``.

        ``genre`` is the top-level genre's canonical name (``None`` when unsure or not
        music), ``styles`` the top genre's likely styles, ``genres`` every genre's probability."""
        return {
            "genre": self.genre,
            "styles": self.styles(),
            "genres": self.genres,
            "verdict": self.verdict,
            "message": self.message,
            "duration": round(float(self.duration), 3),
            "top": [[g, round(float(p), 4)] for g, p in self.top[:top_k]],
            "probabilities": {g: round(float(p), 4) for g, p in zip(self.labels, self.probabilities)},
            "windows": {
                "starts": [round(float(s), 3) for s in self.window_starts],
                "labels": list(self.labels),
                "probabilities": np.round(self.window_probabilities.astype(float), 4).tolist(),
            },
            **({"details": self.details} if self.details else {}),
        }


class GenreClassifier:
    """Predict genres with a trained genrify model.

    >>> clf = GenreClassifier.from_file("cnn.genrify")   # doctest: +SKIP
    >>> clf.predict("song.mp3")                           # doctest: +SKIP
    [('metal', 0.93), ('rock', 0.05)]
    """

    def __init__(self, model: ModelFile, *, source: str = "<memory>", runtime: Runtime | None = None, backend=None):
        """A classifier over ``model``, run as ``runtime`` says (``None``: planned for a long-running
        process; :func:`~genrify.predict.load_classifier` plans it for the caller's process)."""
        from genrify.predict.backends import build_backend, plan_for

        self.model_file = model = _with_legacy_thresholds(model)
        self.config = model.config
        self.source = source
        self._runtime = runtime if runtime is not None else plan_for(model)
        self.backend = backend or build_backend(model, runtime=self._runtime)
        self.labels: list[str] = list(self.backend.labels)
        self.multi_label = bool(self.backend.multi_label)
        if self._runtime.threads is not None:  # a grant or a run's share of the cores; else left as they are
            set_threads(self._runtime.threads, engine=self._runtime.engine)

    @property
    def runtime(self) -> Runtime:
        """How this process runs the model: engine, mode, precision, threads (read-only)."""
        return self._runtime

    def set_threads(self, n: int) -> None:
        """Use ``n`` intra-op threads from now on (a server sharing its cores among analyses)."""
        self._runtime = dataclasses.replace(self._runtime, threads=max(1, int(n)))
        set_threads(self._runtime.threads, engine=self._runtime.engine)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, fast: bool | None = None,
                  songs: int | None = None) -> "GenreClassifier":
        """Load a ``.genrify`` model file (never executes code from it), or a built-in model by name
        (``"default"``, ``"gtzan"``, ``"musicnn"``, ``"audioset"``); see :func:`~genrify.predict.load_classifier`."""
        return load_classifier(path, fast=fast, songs=songs)

    @classmethod
    def default(cls, *, fast: bool | None = None, songs: int | None = None) -> "GenreClassifier":
        """The bundled default model: genrify's taxonomy over musicnn (see docs/results.md)."""
        return load_classifier(None, fast=fast, songs=songs)

    # ------------------------------------------------------------------ public
    @property
    def sr(self) -> int:
        return self.backend.sr

    def load(self, audio, *, sr: int | None = None, name: str | None = None) -> np.ndarray:
        """Decode / resample ``audio`` to the model's rate: ``(samples,)`` float32. An array of several
        channels is downmixed to their mean, as ``(channels, samples)`` (librosa's layout) or
        ``(samples, channels)`` (soundfile's): the shorter side is taken for the channels."""
        cap = self.config.audio.max_duration
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise GenrifyError("an array of samples needs its sample rate (sr=...)")
            y = np.asarray(audio, dtype=np.float32)
            if y.ndim == 2:
                y = y.mean(axis=0 if y.shape[0] <= y.shape[1] else 1)
            elif y.ndim != 1:
                raise InvalidAudioError(f"{name or '<array>'}: an array of samples has one or two axes, "
                                        f"not {y.ndim}")
            if not np.isfinite(y).all():
                raise InvalidAudioError(f"{name or '<array>'}: audio contains NaN or infinite samples")
            if cap is not None:
                y = y[: int(cap * sr)]
            return to_full_scale([resample(y, orig_sr=sr, target_sr=self.sr)])[0]
        y, _ = load_audio(audio, sr=self.sr, max_duration=cap, name=name)
        return y

    def analyse(self, audio, *, sr: int | None = None, top_k: int = 2, name: str | None = None) -> Analysis:
        """Full analysis of one song: song-level and per-window probabilities and a verdict."""
        y = self.load(audio, sr=sr, name=name)
        label = name or (str(audio) if isinstance(audio, (str, os.PathLike)) else "audio")
        duration = len(y) / self.sr
        min_d = self.config.audio.min_duration
        if duration < min_d:
            raise AudioTooShortError(f"{label}: too short ({duration:.2f} s; at least {min_d:g} s needed)")
        window_probs, starts, details = self.backend.window_probabilities(y)
        probs = self.backend.song_probabilities(window_probs)
        if not (np.isfinite(probs).all() and np.isfinite(window_probs).all()):
            raise InvalidAudioError(f"{label}: the model gives no finite answer for this audio")
        if self.multi_label:
            details = {**details, "multi_label": True}
        order = np.argsort(-probs)[: max(1, top_k)]
        top = [(self.labels[i], float(probs[i])) for i in order]
        answer, message = verdict(y, probs, details, config=self.config.verdict, multi_label=self.multi_label)
        return Analysis(labels=self.labels, probabilities=probs, top=top, window_starts=starts,
                        window_probabilities=window_probs, verdict=answer, message=message, duration=duration,
                        details=details)

    def predict_proba(self, audio, *, sr: int | None = None) -> np.ndarray:
        """Song-level probabilities ``(n_labels,)`` in the order of ``self.labels``."""
        return self.analyse(audio, sr=sr).probabilities

    def predict(self, audio, *, sr: int | None = None, top_k: int = 2) -> list[tuple[str, float]]:
        """The ``top_k`` most likely genres with their probabilities, best first."""
        return self.analyse(audio, sr=sr, top_k=top_k).top

    def compute_summary(self) -> str:
        """One line on how this machine runs the model: the model, then :meth:`Runtime.describe`
        (engine, threads, mode, windows, arithmetic and the machine's measured reason);
        ``genrify predict -v`` prints it."""
        if not self._runtime.backbones:
            return f"model {self.source} · {self._runtime.describe()} · {self.config.model.name} on " \
                   f"{self.config.features.kind} windows"
        return f"model {self.source} · {self._runtime.describe()}"

    def feature_image(self, audio, *, sr: int | None = None) -> tuple[np.ndarray, int, int]:
        """The MFCC image of ``audio`` for display: ``(image (n_features, frames), sr, hop_length)``.

        Window models show their own input; musicnn models show 10 MFCCs of the 16 kHz audio.
        """
        from genrify.features import FeatureExtractor

        fc = self.config.features if self.backend.kind == "window" else MUSICNN_DISPLAY_FEATURES
        y = self.load(audio, sr=sr)
        return FeatureExtractor(fc).transform(y), fc.sr, fc.hop_length


def load_classifier(model: str | os.PathLike | ModelRef | None = None, *, fast: bool | None = None,
                    songs: int | None = None, threads: int | None = None) -> GenreClassifier:
    """The one inference front: the :class:`GenreClassifier` of ``model`` (a model file or a
    built-in name, see :func:`~genrify.predict.resolve_model`), planned for this process
    (``clf.runtime``: engine, mode, precision, threads; :mod:`genrify.predict.runtime`).

    The CLI, the web app, worker pools, Ray actors and library tagging all load through it
    and pass no engine, precision or thread policy of their own: they say how many songs the
    process will analyse and, where they share the machine, how many threads it may use.

    ``fast``: musicnn models' fast mode (``None``: as the model file says). ``songs``: how many
    songs this process will analyse (``None``: unknown or many — a server, a worker, an actor),
    which decides the engine; ``threads``: the intra-op threads granted to it (``None``: a run of
    ``songs`` songs takes the cores the load average leaves free, or ``OMP_NUM_THREADS``; otherwise
    the process's threads are left as they are). ``GENRIFY_ENGINE`` overrides the engine
    (:func:`~genrify.predict.runtime.choose_engine`).
    """
    from genrify.audio import prewarm_decoder
    from genrify.predict.backends import plan_for

    ref = resolve_model(model)
    prewarm_decoder()  # the decoder process starts while the model loads
    model_file = ref.read()
    runtime = plan_for(model_file, fast=fast, songs=songs, threads=threads)
    try:
        return GenreClassifier(model_file, source=ref.source, runtime=runtime)
    except (KeyError, RuntimeError, ValueError, IndexError) as exc:
        raise ModelFileError(f"{ref.source}: model file does not match its architecture ({str(exc)[:160]})") from None


def _with_legacy_thresholds(model: ModelFile) -> ModelFile:
    """Model files written before thresholds lived in the config kept them in ``extra``."""
    legacy = {k: float(model.extra[k]) for k in ("unsure_below", "music_threshold") if k in model.extra}
    if not legacy:
        return model
    config = dataclasses.replace(model.config, verdict=dataclasses.replace(model.config.verdict, **legacy))
    return dataclasses.replace(model, config=config)
