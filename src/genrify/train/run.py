"""A training run: dataset → (cross-validation) → model file → held-out report.

:func:`train_and_report` is the same for every model; what differs by the
registry kind of the model (:mod:`genrify.models`) — which inputs it reads, how
it is cross-validated and fitted — lives in one small class per kind, chosen
from :data:`TRAINERS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from genrify.config import RunConfig, musicnn_run_config
from genrify.models import EMBEDDING_NET, EMBEDDING_PROBE, WINDOW_NET, model_spec
from genrify.models.modelfile import ModelFile
from genrify.predict.checks import not_music_class

#: Where a run's lines go: ``say(line)`` for the report, ``say(line, err=True)`` for warnings.
Say = Callable[..., None]


@dataclass
class Prepared:
    """A dataset's usable tracks as one kind of model reads them: ``inputs[i]`` are feature
    images ``(n_features, frames)`` or per-window embeddings ``(n_windows, 1506)`` of ``tracks[i]``."""

    config: RunConfig
    tracks: list
    labels: list[str]
    y: np.ndarray
    groups: list[str]
    inputs: list[np.ndarray]
    context: list[str] = field(default_factory=list)


@dataclass
class Fitted:
    """A trained model file, the words that describe it, and the tracks held out while fitting it."""

    model_file: ModelFile
    described: str
    held_out: np.ndarray | None  # None: nothing held out by design (scored by cross-validation instead)


def _describe_dataset(dataset, tracks, labels, group_by: str = "artist") -> str:
    artists = {t.artist.casefold() for t in tracks if t.artist}
    if group_by == "artist":
        grouping = (f"splits keep each of {len(artists)} artists on one side"
                    + (f" ({sum(1 for t in tracks if not t.artist)} tracks without an artist count alone)"
                       if any(not t.artist for t in tracks) else ""))
    else:
        grouping = "splits keep only each track on one side (an artist's songs may train and test each other)"
    return f"dataset: {dataset.root} ({len(tracks)} tracks, {len(labels)} genres); {grouping}"


def _write_curves(history, curves: Path, name: str) -> None:
    from genrify import report
    from genrify.fileio import write_bytes_atomic

    write_bytes_atomic(curves, report.learning_curves_png(history.to_dict(), title=f"{name} learning curves"))


class WindowNetTrainer:
    """``mlp`` / ``cnn``: the training loop over stored feature windows; a grouped validation
    split chooses the epoch and is scored after saving."""

    cv_note = "every song predicted by a model that never saw it"

    def prepare(self, dataset, config: RunConfig, *, progress: bool, say: Say) -> Prepared:
        from genrify.train.nets import load_dataset_images

        tracks, images, y, groups, labels = load_dataset_images(dataset, group_by=config.train.group_by)
        context = [_describe_dataset(dataset, tracks, labels, config.train.group_by),
                   f"model: {config.model.name}, window {config.window.seconds:g} s, seed {config.train.seed}"]
        return Prepared(config, tracks, labels, y, groups, images, context)

    def cross_validate(self, p: Prepared, *, folds: int, progress: bool) -> dict:
        from genrify.train.nets import cross_validate

        return cross_validate(p.inputs, p.y, p.groups, config=p.config, labels=p.labels, folds=folds,
                              progress=progress)

    def fit(self, p: Prepared, *, curves: Path, progress: bool) -> Fitted:
        from genrify.train.nets import train_tracks

        mf, history, val_idx = train_tracks(p.inputs, p.y, p.groups, config=p.config, labels=p.labels,
                                            progress=progress)
        val_set = set(val_idx.tolist())
        mf.extra["fit_tracks"] = [t.sha256 for i, t in enumerate(p.tracks) if i not in val_set]
        mf.extra["val_tracks"] = [p.tracks[i].sha256 for i in sorted(val_set)]
        _write_curves(history, curves, p.config.model.name)
        return Fitted(mf, f"(best epoch {history.best_epoch + 1}); learning curves: {curves}", np.array(sorted(val_set)))

    def held_out_probabilities(self, p: Prepared, fitted: Fitted) -> np.ndarray:
        from genrify.train.nets import track_probabilities

        return track_probabilities(fitted.model_file, [p.inputs[i] for i in fitted.held_out])


class EmbeddingHeadTrainer:
    """Heads over stored musicnn embeddings (embedded first where missing), fitted on every
    track; their held-out figures come from cross-validation."""

    cv_note = "every song predicted by a model that never saw it (uncalibrated)"

    def prepare(self, dataset, config: RunConfig, *, progress: bool, say: Say) -> Prepared:
        from genrify.dataset.embeddings import load_embeddings
        from genrify.train.embed import embed_dataset

        config = musicnn_run_config(config)
        summary = embed_dataset(dataset, progress=progress)
        for path, reason in summary["failed"]:
            say(f"skipped {path}: {reason}", err=True)
        tracks = dataset.tracks()
        E = [e[: config.window.max_windows] for e in load_embeddings(dataset, tracks)]
        labels = sorted({t.genre for t in tracks})
        y = np.array([labels.index(t.genre) for t in tracks])
        context = [_describe_dataset(dataset, tracks, labels, config.train.group_by),
                   f"model: {config.model.name} ({self.hyper(config)}), seed {config.train.seed}"]
        return Prepared(config, tracks, labels, y, [t.group_for(config.train.group_by) for t in tracks], E, context)

    def cross_validate(self, p: Prepared, *, folds: int, progress: bool) -> dict:
        from genrify.evaluate import evaluate
        from genrify.predict.heads import song_softmax

        probs = song_softmax(self.oof_logits(p, folds=folds))
        metrics = evaluate(p.y, probs.argmax(1), labels=p.labels, probabilities=probs)
        metrics["folds"] = folds
        return metrics

    def fit(self, p: Prepared, *, curves: Path, progress: bool) -> Fitted:
        mf, done = self.fit_head(p, curves=curves, progress=progress)
        mf.extra["fit_tracks"] = [t.sha256 for t in p.tracks]
        mf.tensors.update(music_probe(p))
        mf.extra["music_probe"] = ("fitted on this dataset's not-music class"
                                   if not_music_class(p.labels) is not None else "the bundled default model's")
        T = float(mf.tensors["calibration.temperature"][0])
        return Fitted(mf, f"({done}; {len(p.labels)} genres, temperature {T:.2f}; music probe: "
                          f"{mf.extra['music_probe']})", None)


#: Inverse L2 strength of a music / not-music probe fitted on a user's not-music class
#: (the value the bundled models' probe was fitted with, tools/train_taxonomy_model.py).
MUSIC_PROBE_C = 0.05


def music_probe(p: Prepared) -> dict[str, np.ndarray]:
    """The music / not-music probe (``music.*`` tensors) a head over musicnn embeddings ships
    with, so that it says "not music" as the bundled models do: fitted on the dataset's own
    not-music class against every genre when it has one, else genrify's bundled probe over the
    very same embeddings (msd_musicnn, 1506 values per window)."""
    from genrify.predict.resolve import embedding_music_probe
    from genrify.train.probe import fit_probe

    k = not_music_class(p.labels)
    if k is not None:
        return fit_probe(p.inputs, (p.y != k).astype(np.int64), C=MUSIC_PROBE_C, seed=p.config.train.seed,
                         prefix="music")
    return embedding_music_probe()


class ProbeTrainer(EmbeddingHeadTrainer):
    """``musicnn-probe``: a class-balanced logistic regression."""

    def hyper(self, config: RunConfig) -> str:
        return f"C={config.model.C}"

    def oof_logits(self, p: Prepared, *, folds: int) -> list[np.ndarray]:
        from genrify.train.probe import probe_oof_logits

        return probe_oof_logits(p.inputs, p.y, p.groups, labels=p.labels, folds=folds, C=p.config.model.C,
                                seed=p.config.train.seed)

    def fit_head(self, p: Prepared, *, curves: Path, progress: bool) -> tuple[ModelFile, str]:
        from genrify.train.probe import train_probe

        return train_probe(p.inputs, p.y, p.groups, config=p.config, labels=p.labels), f"{len(p.tracks)} tracks"


class FinetuneTrainer(EmbeddingHeadTrainer):
    """``musicnn-finetune``: musicnn's back end through the training loop."""

    def hyper(self, config: RunConfig) -> str:
        return f"lr {config.train.lr:g}, dropout {config.model.dropout:g}"

    def oof_logits(self, p: Prepared, *, folds: int) -> list[np.ndarray]:
        from genrify.train.finetune import finetune_oof_logits

        return finetune_oof_logits(p.inputs, p.y, p.groups, config=p.config, labels=p.labels, folds=folds)

    def fit_head(self, p: Prepared, *, curves: Path, progress: bool) -> tuple[ModelFile, str]:
        from genrify.train.finetune import train_finetune

        mf, history, val_idx = train_finetune(p.inputs, p.y, p.groups, config=p.config, labels=p.labels,
                                              progress=progress)
        _write_curves(history, curves, p.config.model.name)
        return mf, (f"{len(p.tracks)} tracks, {history.best_epoch + 1} epochs chosen on a validation split of "
                    f"{len(val_idx)}; learning curves: {curves}")


#: How each registry kind is trained.
TRAINERS = {WINDOW_NET: WindowNetTrainer(), EMBEDDING_PROBE: ProbeTrainer(), EMBEDDING_NET: FinetuneTrainer()}


def _print(line: str, *, err: bool = False) -> None:
    import sys

    print(line, file=sys.stderr if err else sys.stdout)


def train_and_report(dataset, config: RunConfig, *, out: Path, prefix: Path, folds: int = 0, progress: bool = False,
                     say: Say = _print) -> dict:
    """Train ``config.model`` on ``dataset`` and save it to ``out``; with ``folds``, first report
    K-fold cross-validation (``<prefix>-cv<K>.md/.json/-confusion.png``). Window networks also
    write learning curves and a report on their held-out validation split (``<prefix>-validation``).

    Returns the held-out metrics: the validation split's, else the cross-validation's, else ``{}``.
    """
    from genrify import report
    from genrify.errors import ConfigError
    from genrify.models.modelfile import save_model_file

    trainer = TRAINERS.get(model_spec(config.model.name).kind)
    if trainer is None:
        raise ConfigError(f"model {config.model.name!r} is not trained by genrify")
    p = trainer.prepare(dataset, config, progress=progress, say=say)
    name = p.config.model.name
    metrics: dict = {}
    if folds:
        metrics = trainer.cross_validate(p, folds=folds, progress=progress)
        paths = report.write_report(metrics, Path(f"{prefix}-cv{folds}"), title=f"{name}: {folds}-fold cross-validation",
                                    context=p.context + [trainer.cv_note])
        say(f"{folds}-fold cross-validation ({', '.join(str(x) for x in paths)}):")
        say(report.text_summary(metrics))
    fitted = trainer.fit(p, curves=prefix.parent / f"{prefix.name}-curves.png", progress=progress)
    save_model_file(out, fitted.model_file)
    say(f"saved {out} {fitted.described}")
    if fitted.held_out is None:
        return metrics
    if not len(fitted.held_out):
        say("no validation split: every genre has a single artist, so nothing was held out")
        return {}
    return _report_held_out(trainer, p, fitted, prefix=prefix, say=say)


def _report_held_out(trainer, p: Prepared, fitted: Fitted, *, prefix: Path, say) -> dict:
    from genrify import report
    from genrify.evaluate import evaluate

    probs = trainer.held_out_probabilities(p, fitted)
    y_val = p.y[fitted.held_out]
    metrics = evaluate(y_val, probs.argmax(1), labels=p.labels, probabilities=probs)
    paths = report.write_report(metrics, Path(f"{prefix}-validation"), title=f"{p.config.model.name}: held-out validation split",
                                context=p.context + ["validation split (also used for early stopping), never trained on"])
    say(f"held-out validation ({len(y_val)} songs; {', '.join(str(x) for x in paths)}):")
    say(report.text_summary(metrics))
    return metrics
