"""What a ``--model`` value names: :func:`resolve_model` is the one place it is understood.

A model file, or a built-in name (:data:`BUILTIN_MODELS`); the answer, a
:class:`ModelRef`, is what :func:`genrify.predict.load_classifier` loads, what a
worker pool hands its workers and what a Ray job ships to its actors (a built-in
model by name, a file by its bytes).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from genrify.errors import ModelFileError

#: The models genrify ships, by the name ``--model`` takes: the file under ``assets/`` (``None``: built from
#: the shipped backbone weights, no model file) and a few words for help and error messages.
BUILTIN_MODELS: dict[str, tuple[str | None, str]] = {
    "default": ("default.genrify", "the taxonomy model, used without --model"),
    "gtzan": ("gtzan.genrify", "the ten-genre GTZAN model"),
    "musicnn": (None, "musicnn's own 50 tags"),
    "audioset": (None, "AudioSet's 527 classes (mn04)"),
}


@dataclass(frozen=True)
class ModelRef:
    """A resolved ``--model``: its ``name`` as given (``"default"`` for none), the ``path`` of its
    model file (``None`` for a pretrained tagger's own classes) and whether it ships with genrify (``builtin``:
    every installation has it, so a cluster's workers load it by name)."""

    name: str
    path: Path | None
    builtin: bool

    @property
    def source(self) -> str:
        """How answers name the model: its file, or the tagger's name (``"musicnn"``, ``"audioset"``)."""
        return str(self.path) if self.path is not None else self.name

    def read(self):
        """The :class:`~genrify.models.modelfile.ModelFile` (checked), or a tagger described as one."""
        from genrify.models.modelfile import load_model_file

        if self.path is None:
            return _tagger_model_file(self.name)
        return load_model_file(self.path)


def default_model_path() -> Path:
    """The model shipped inside the package (see docs/results.md for how it was trained)."""
    return _asset(BUILTIN_MODELS["default"][0])


def embedding_music_probe() -> dict:
    """The bundled music / not-music probe over musicnn embeddings (``music.*`` tensors, 1506 values per
    window): the ten-genre GTZAN model's, fitted on GTZAN and music/speech (tools/train_default_model.py).
    What reads stored musicnn embeddings uses it (the audit, heads trained over musicnn embeddings);
    the default model decides "not music" with AudioSet's music class instead."""
    from genrify.models.modelfile import load_model_file

    tensors = load_model_file(_asset(BUILTIN_MODELS["gtzan"][0])).tensors
    return {name: t for name, t in tensors.items() if name.startswith("music.")}


def resolve_model(model: str | os.PathLike | ModelRef | None = None) -> ModelRef:
    """What ``model`` names: ``None`` or ``"default"`` the bundled default, ``"gtzan"`` and
    ``"musicnn"``, ``"audioset"`` the other built-in models, anything else a model file (a :class:`ModelRef`
    is its own answer).

    Raises:
        ModelFileError: neither an existing path nor a built-in name (naming the built-in models
            and the closest one: ``musiccnn`` → ``musicnn``), or a bundled file missing from this
            installation.
    """
    if isinstance(model, ModelRef):
        return model
    name = "default" if model is None else str(model)
    if name in BUILTIN_MODELS:
        filename = BUILTIN_MODELS[name][0]
        if filename is None:
            return ModelRef(name=name, path=None, builtin=True)
        path = _asset(filename)
        if not path.is_file():
            raise ModelFileError(f"{path}: the bundled {name} model is missing from this installation; "
                                 "pass --model PATH")
        return ModelRef(name=name, path=path, builtin=True)
    if os.path.lexists(name):  # a FIFO or a device too: reading it says what is wrong
        return ModelRef(name=name, path=Path(name), builtin=False)
    close = difflib.get_close_matches(name.casefold(), list(BUILTIN_MODELS), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = "; ".join(f"{key}: {what}" for key, (_, what) in BUILTIN_MODELS.items())
    raise ModelFileError(f"{name}: no such model file, and not a built-in model{hint}; built-in models are {names}; "
                         "train your own with 'genrify train my.gdb --model cnn --out cnn.genrify'")


def _asset(filename: str) -> Path:
    return Path(str(resources.files("genrify") / "assets" / filename))


def _tagger_model_file(name: str):
    """A pretrained tagger (``musicnn``: the Million Song Dataset's tags; ``audioset``: mn04's AudioSet
    classes) as a model file with no tensors: its backend computes the tags."""
    from genrify.config import (AUDIOSET_SR, MUSICNN_FEATURES, MUSICNN_WINDOW, AudioConfig, ModelConfig, RunConfig,
                                VerdictConfig)
    from genrify.models import model_spec
    from genrify.models.modelfile import ModelFile

    spec = model_spec(name)
    sr = AUDIOSET_SR if name == "audioset" else MUSICNN_FEATURES.sr
    config = RunConfig(audio=AudioConfig(sr=sr), window=MUSICNN_WINDOW,
                       model=ModelConfig(name=name, backbone=spec.backbone),
                       verdict=VerdictConfig(unsure_below=0.0))
    return ModelFile(config=config, labels=[], tensors={}, extra={})
