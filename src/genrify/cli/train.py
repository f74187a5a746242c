"""Training commands: ``train``, ``evaluate`` and ``demo`` (the main job on an embedded default)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genrify.cli import example_epilog
from genrify.config import ModelConfig, TrainConfig, WindowConfig
from genrify.fileio import terminal_safe

FMT = argparse.RawDescriptionHelpFormatter


def register(sub) -> None:
    from genrify.models import REGISTRY, trainable_models

    p = sub.add_parser("demo", help="the main job on an embedded default: synthetic set → build → train → evaluate → predict",
                       formatter_class=FMT, epilog=example_epilog("genrify demo", "genrify demo --out /tmp/genrify-demo --model mlp"))
    p.add_argument("--out", default="genrify-demo", help="working folder (default: ./genrify-demo)")
    p.add_argument("--model", choices=trainable_models(), default=ModelConfig.name)
    p.add_argument("--per-genre", type=int, default=12)
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("train", help="train a model on a dataset", formatter_class=FMT,
                       epilog=example_epilog("genrify train my.gdb --model cnn --out cnn.genrify",
                                             "genrify train my.gdb --model mlp --hidden 600,400,100 --out mlp.genrify",
                                             "genrify train my.gdb --model cnn --folds 5 --report cv/cnn",
                                             "genrify train my.gdb --model musicnn-probe --folds 5 --out mine.genrify",
                                             "genrify train my.gdb --model musicnn-finetune --folds 5 --out tuned.genrify"))
    p.add_argument("dataset")
    p.add_argument("--model", default=ModelConfig.name,
                   help=" | ".join(f"{name} ({REGISTRY[name].summary})" for name in trainable_models())
                   + f"; default {ModelConfig.name}")
    p.add_argument("--out", help="model file to write (default: <model>.genrify)")
    p.add_argument("--folds", type=int, default=0, help="also report K-fold cross-validation")
    p.add_argument("--report", help="prefix for the report files (default: beside the model file)")
    _add_hyperparameters(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="per-genre precision/recall/F1 on held-out tracks", formatter_class=FMT,
                       epilog=example_epilog("genrify evaluate my.gdb --model cnn.genrify",
                                             "genrify evaluate other.gdb --model cnn.genrify --out reports/other"))
    p.add_argument("dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--out", help="report prefix (writes .md, .json, -confusion.png)")
    p.add_argument("--include-training-data", action="store_true",
                   help="also score tracks the model was trained on (flagged in the report)")
    p.set_defaults(handler=cmd_evaluate)


def _add_hyperparameters(p) -> None:
    """The model and training settings, their defaults read from the configuration dataclasses."""
    p.add_argument("--C", type=float, default=ModelConfig.C, help=f"musicnn-probe: inverse L2 strength (default {ModelConfig.C:g})")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay, help="L2 penalty (AdamW)")
    p.add_argument("--dropout", type=float, default=ModelConfig.dropout)
    p.add_argument("--hidden", default=",".join(map(str, ModelConfig.hidden)),
                   help=f"MLP hidden sizes, comma separated (default {','.join(map(str, ModelConfig.hidden))})")
    p.add_argument("--patience", type=int, default=TrainConfig.patience, help="early-stopping patience in epochs")
    p.add_argument("--window", type=float, default=WindowConfig.seconds,
                   help=f"model window in seconds (default {WindowConfig.seconds:g})")
    p.add_argument("--val-fraction", type=float, default=TrainConfig.val_fraction)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--threads", type=int, default=TrainConfig.threads)
    p.add_argument("--group-by", choices=("artist", "track"), default=TrainConfig.group_by,
                   help="keep each artist (when the manifest or tags name one; else each track) on one side of "
                        "every split, or only each track (optimistic when an artist has several songs)")


def run_config(args, dataset):
    """The :class:`~genrify.config.RunConfig` of ``genrify train``'s options for ``dataset``."""
    from genrify.config import AudioConfig, RunConfig
    from genrify.models import model_spec

    hidden = tuple(int(h) for h in str(args.hidden).split(",") if h.strip())
    return RunConfig(
        audio=AudioConfig(sr=dataset.feature_config.sr, max_duration=dataset.audio_config.max_duration,
                          min_duration=dataset.audio_config.min_duration),
        features=dataset.feature_config,
        window=WindowConfig(seconds=args.window, hop_seconds=args.window, train_hop_seconds=args.window / 2),
        model=ModelConfig(name=args.model, hidden=hidden, dropout=args.dropout, C=args.C,
                          backbone=model_spec(args.model).backbone),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                          patience=args.patience, seed=args.seed, val_fraction=args.val_fraction, threads=args.threads,
                          group_by=args.group_by),
    )


def cmd_train(args) -> int:
    from genrify.dataset import Dataset
    from genrify.errors import ConfigError
    from genrify.models import trainable_models
    from genrify.train.run import train_and_report

    if args.model not in trainable_models():
        raise ConfigError(f"unknown model {args.model!r}; choose one of {', '.join(trainable_models())}")
    dataset = Dataset(args.dataset)
    config = run_config(args, dataset)
    out = Path(args.out or f"{args.model}.genrify")
    prefix = Path(args.report) if args.report else out.with_suffix("")
    train_and_report(dataset, config, out=out, prefix=prefix, folds=args.folds, progress=sys.stderr.isatty())
    return 0


def cmd_evaluate(args) -> int:
    import numpy as np

    from genrify import report
    from genrify.dataset import Dataset
    from genrify.errors import DatasetError
    from genrify.evaluate import evaluate
    from genrify.predict import load_classifier
    from genrify.predict.batch import dataset_track_probabilities

    clf = load_classifier(args.model)
    dataset = Dataset(args.dataset)
    fit = set(clf.model_file.extra.get("fit_tracks", []))
    tracks = [t for t in dataset.tracks() if t.genre in clf.labels]
    unknown = [t for t in dataset.tracks() if t.genre not in clf.labels]
    for t in unknown:  # the model cannot answer a genre it never learned: say which songs are left out
        print(terminal_safe(f"skipped {t.path}: genre {t.genre!r} is not one of the model's genres"), file=sys.stderr)
    if not tracks:
        raise DatasetError(f"{args.dataset}: none of its genres ({', '.join(sorted({t.genre for t in unknown}))}) "
                           f"is one the model knows ({', '.join(clf.labels)})")
    held = tracks if args.include_training_data else [t for t in tracks if t.sha256 not in fit]
    seen = sum(t.sha256 in fit for t in tracks)
    if not held:
        raise DatasetError(f"{args.dataset}: every track was used to train {args.model}; "
                           "evaluate on other data, or pass --include-training-data to score training data (flagged)")
    probs = dataset_track_probabilities(clf, dataset, held)
    y = np.array([clf.labels.index(t.genre) for t in held])
    metrics = evaluate(y, probs.argmax(1), labels=clf.labels, probabilities=probs)
    context = [f"model: {args.model}", f"dataset: {args.dataset}"]
    if args.include_training_data and seen:
        context.append(f"WARNING: includes {seen} tracks the model was trained on: these figures are optimistic")
    else:
        context.append(f"held-out tracks only ({seen} training tracks excluded)")
    if unknown:
        genres = sorted({t.genre for t in unknown})
        context.append(f"{len(unknown)} tracks skipped: their genres ({', '.join(genres)}) are not the model's")
    if metrics["absent"]:
        context.append(f"macro-F1 averages the {len(clf.labels) - len(metrics['absent'])} genres with songs here "
                       f"(none of: {', '.join(metrics['absent'])})")
    prefix = Path(args.out) if args.out else Path(args.model).with_suffix("").with_name(Path(args.model).stem + "-evaluation")
    paths = report.write_report(metrics, prefix, title=f"Evaluation of {Path(args.model).name}", context=context)
    for c in context[2:]:
        print(c)
    print(report.text_summary(metrics))
    print(terminal_safe("report: " + ", ".join(str(p) for p in paths)))
    return 0


def cmd_demo(args) -> int:
    """Synthetic corpus → dataset → train → held-out evaluation → predict, printing the report."""
    from genrify.cli.predict import format_top
    from genrify.config import FeatureConfig
    from genrify.dataset import Dataset
    from genrify.dataset.build import build_dataset
    from genrify.predict import GenreClassifier
    from genrify.sources.synthetic import write_demo_corpus
    from genrify.train.run import train_and_report

    out = Path(args.out)
    data = out / "clips"
    if not (data / "manifest.csv").exists():
        print(terminal_safe(f"writing {args.per_genre} synthetic clips per style to {data} ..."))
        write_demo_corpus(data, per_genre=args.per_genre, seed=0, duration=10.0, fmt="wav")
    summary = build_dataset(data, out / "demo.gdb", features=FeatureConfig(), progress=sys.stderr.isatty())
    print("\n".join(terminal_safe(line) for line in summary.lines()))
    dataset = Dataset(out / "demo.gdb")
    parser = argparse.ArgumentParser()
    _add_hyperparameters(parser)
    hyper = parser.parse_args(["--epochs", "30", "--patience", "6"])  # a short run: the demo is a tour, not a benchmark
    hyper.model = args.model
    model_path = out / f"{args.model}.genrify"
    train_and_report(dataset, run_config(hyper, dataset), out=model_path, prefix=out / args.model,
                     progress=sys.stderr.isatty())
    clf = GenreClassifier.from_file(model_path)
    example = sorted(data.glob("*/*.wav"))[0]
    print(terminal_safe(f"predict {example}: {format_top(clf.analyse(example))}"))
    return 0
