"""``GenreClassifier``: the one public predictor, used by the CLI, the web app and evaluation.

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

from genrify.audio import load_audio, prewarm_decoder, resample
from genrify.config import (MUSICNN_BACKBONE, MUSICNN_DISPLAY_FEATURES, MUSICNN_FEATURES, AudioConfig, ModelConfig,
                            RunConfig, VerdictConfig)
from genrify.errors import AudioTooShortError, GenrifyError, InvalidAudioError, ModelFileError
from genrify.models.modelfile import ModelFile, load_model_file
from genrify.predict.checks import verdict
from genrify.taxonomy import canonical_name


#: A style is named when its probability (its genre's × its own tag evidence) reaches this.
STYLE_MIN_PROBABILITY = 0.3


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

    def styles(self, *, min_probability: float = STYLE_MIN_PROBABILITY) -> list[dict]:
        """The styles of the top genre at or above ``min_probability``, most likely first (none unless
        the verdict is a genre and the model speaks the taxonomy)."""
        genre = self.genre
        found = [{"name": name, "probability": p} for name, parent, p in self.details.get("styles", ())
                 if genre is not None and parent == genre and p >= min_probability]
        return sorted(found, key=lambda s: -s["probability"])

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


def default_model_path() -> Path:
    """The model shipped inside the package (see docs/results.md for how it was trained)."""
    return Path(str(resources.files("genrify") / "assets" / "default.genrify"))


#: Models shipped inside the package, by the name ``--model`` takes: ``gtzan`` is the
#: ten-genre GTZAN probe that was the default before the taxonomy.
BUNDLED_MODELS = {"default": "default.genrify", "gtzan": "gtzan.genrify"}


def bundled_model_path(name: str) -> Path | None:
    """The file of the bundled model called ``name`` (see :data:`BUNDLED_MODELS`), else ``None``."""
    if name not in BUNDLED_MODELS:
        return None
    return Path(str(resources.files("genrify") / "assets" / BUNDLED_MODELS[name]))


class GenreClassifier:
    """Predict genres with a trained genrify model.

    >>> clf = GenreClassifier.from_file("cnn.genrify")   # doctest: +SKIP
    >>> clf.predict("song.mp3")                           # doctest: +SKIP
    [('metal', 0.93), ('rock', 0.05)]
    """

    def __init__(self, model: ModelFile, *, source: str = "<memory>", fast: bool | None = None, backend=None,
                 prefer_engine: str = "torch"):
        from genrify.predict.backends import build_backend

        self.model_file = model = _with_legacy_thresholds(model)
        self.config = model.config
        self.labels: list[str] = list(model.labels)
        self.source = source
        self.backend = backend or build_backend(model, fast=fast, prefer_engine=prefer_engine)
        self.multi_label = bool(getattr(self.backend, "tags", None))

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, fast: bool | None = None,
                  prefer_engine: str = "torch") -> "GenreClassifier":
        """Load a ``.genrify`` model file (never executes code from it).

        ``"musicnn"`` names musicnn's own 50-tag tagger (no file needed); ``"gtzan"``
        and ``"default"`` name bundled models (:data:`BUNDLED_MODELS`).
        ``fast`` overrides a musicnn model's mode (3 spread windows, bfloat16). ``prefer_engine``:
        "numpy" for a process that analyses a few songs (see :func:`engine_for`), else "torch".
        """
        if str(path) == "musicnn":
            return cls.musicnn_tagger(fast=fast, prefer_engine=prefer_engine)
        path = bundled_model_path(str(path)) or path
        model = load_model_file(path)
        try:
            return cls(model, source=str(path), fast=fast, prefer_engine=prefer_engine)
        except (KeyError, RuntimeError, ValueError, IndexError) as exc:
            raise ModelFileError(f"{path}: model file does not match its architecture ({str(exc)[:160]})") from None

    @classmethod
    def default(cls, *, fast: bool | None = None, prefer_engine: str = "torch") -> "GenreClassifier":
        """The bundled default model: a genre probe over musicnn (see docs/results.md)."""
        path = default_model_path()
        if not path.is_file():
            raise ModelFileError(f"{path}: the bundled default model is missing from this installation")
        return cls.from_file(path, fast=fast, prefer_engine=prefer_engine)

    @classmethod
    def musicnn_tagger(cls, *, fast: bool | None = None, prefer_engine: str = "torch") -> "GenreClassifier":
        """musicnn's Million Song Dataset tagger as a classifier over its 50 tags."""
        from genrify.predict.backends import MusicnnTaggerBackend

        backend = MusicnnTaggerBackend(fast=fast, prefer_engine=prefer_engine)
        config = RunConfig(audio=AudioConfig(sr=MUSICNN_FEATURES.sr),
                           model=ModelConfig(name="musicnn", backbone=MUSICNN_BACKBONE),
                           verdict=VerdictConfig(unsure_below=0.0))
        mf = ModelFile(config=config, labels=backend.tags, tensors={}, extra={})
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
        pool = getattr(self.backend, "song_probabilities", None)  # a backend may pool its windows its own way
        probs = pool(window_probs) if pool else window_probs.mean(axis=0)
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
        """One line on how this machine runs the model: mode, windows, arithmetic, threads and why.

        For musicnn models it names the precision of the timbral convolutions and the
        machine's measured answer behind it (:func:`genrify.models.quantize.machine_precision`,
        measured once per machine and cached); ``genrify predict -v`` prints it.
        """
        from genrify.predict.threads import thread_count

        embedder = getattr(self.backend, "embedder", None)
        engine = getattr(embedder, "engine", "torch")
        threads = thread_count()
        parts = [f"model {self.source}", f"{engine} engine, {threads} thread{'' if threads == 1 else 's'}"]
        if embedder is None:
            return " · ".join(parts + [f"{self.config.model.name} on {self.config.features.kind} windows, float32"])
        windows = "all windows" if embedder.max_patches is None else f"at most {embedder.max_patches} windows"
        parts.append(f"{'fast' if getattr(self.backend, 'fast', False) else 'full'} mode, {windows}")
        net = embedder.model
        if engine == "numpy":
            from genrify.models.quantize import bfloat16_may_be_native, read_cpuinfo

            cpu, flags = read_cpuinfo()
            why = ("bfloat16 not native (no avx512_bf16/amx_bf16 flag) → float32" if not bfloat16_may_be_native(flags)
                   else "reduced precisions run on the torch engine only")
            return " · ".join(parts + ["musicnn timbral convs in float32 (frequency DFT), without torch",
                                       f"machine check: {cpu or 'unknown CPU'}: {why}"])
        from genrify.models.quantize import machine_precision

        how = "frequency DFT" if net.precision == "float32" and net.timbral[0].fft else "unfolded matrix product"
        return " · ".join(parts + [f"musicnn timbral convs in {net.precision} ({how})",
                                   f"machine check: {machine_precision().describe()}"])

    def feature_image(self, audio, *, sr: int | None = None) -> tuple[np.ndarray, int, int]:
        """The MFCC image of ``audio`` for display: ``(image (n_features, frames), sr, hop_length)``.

        Window models show their own input; musicnn models show 10 MFCCs of the 16 kHz audio.
        """
        from genrify.features import FeatureExtractor

        fc = self.config.features if self.backend.kind == "window" else MUSICNN_DISPLAY_FEATURES
        y = self.load(audio, sr=sr)
        return FeatureExtractor(fc).transform(y), fc.sr, fc.hop_length


#: Up to this many songs, a process predicts on the NumPy engine where it can: importing torch costs
#: 2.4–3.5 s, while the NumPy engine takes 0.9–1.35× the torch engine's CPU per song (0.2–0.5 s)
#: on one thread (benchmarks/bench_startup.py, bench_engines.py on a 2-core AMD EPYC). Past a few
#: dozen songs torch's lead per song may repay its import; 20 stays on the safe side.
FEW_SONGS = 20


def engine_for(n_songs: int) -> str:
    """The engine a process that will analyse ``n_songs`` songs prefers: "numpy" for a few, else "torch"."""
    return "numpy" if n_songs <= FEW_SONGS else "torch"


def load_classifier(model: str | os.PathLike | None = None, *, fast: bool | None = None,
                    prefer_engine: str = "torch") -> GenreClassifier:
    """The classifier of ``model``: a model file, ``"musicnn"`` (musicnn's tagger) or ``None``
    (the bundled default). ``fast``: musicnn models' fast mode (``None``: as the model says).
    ``prefer_engine``: "numpy" or "torch" (see :func:`engine_for`; ``GENRIFY_ENGINE`` overrides it)."""
    prewarm_decoder()  # the decoder process starts while the model loads
    if model is None:
        return GenreClassifier.default(fast=fast, prefer_engine=prefer_engine)
    return GenreClassifier.from_file(model, fast=fast, prefer_engine=prefer_engine)


def _with_legacy_thresholds(model: ModelFile) -> ModelFile:
    """Model files written before thresholds lived in the config kept them in ``extra``."""
    import dataclasses

    legacy = {k: float(model.extra[k]) for k in ("unsure_below", "music_threshold") if k in model.extra}
    if not legacy:
        return model
    config = dataclasses.replace(model.config, verdict=dataclasses.replace(model.config.verdict, **legacy))
    return dataclasses.replace(model, config=config)
