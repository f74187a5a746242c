"""Pipeline commands: demo-data, dataset build, train, evaluate, predict, explore, demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genrify.cli import example_epilog

MODEL_CHOICES = ("cnn", "mlp", "musicnn-probe", "musicnn-finetune")
#: Heads over pretrained musicnn embeddings.
MUSICNN_HEADS = ("musicnn-probe", "musicnn-finetune")


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("demo", help="the main job on an embedded default: synthetic set → build → train → evaluate → predict",
                       formatter_class=fmt, epilog=example_epilog("genrify demo", "genrify demo --out /tmp/genrify-demo --model mlp"))
    p.add_argument("--out", default="genrify-demo", help="working folder (default: ./genrify-demo)")
    p.add_argument("--model", choices=MODEL_CHOICES, default="cnn")
    p.add_argument("--per-genre", type=int, default=12)
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("demo-data", help="write the synthetic test corpus (procedural clips, not music)",
                       formatter_class=fmt, epilog=example_epilog("genrify demo-data data/ --per-genre 20",
                                                                  "genrify demo-data lib/ --per-genre 3 --format mp3 --duration 30"))
    p.add_argument("out")
    p.add_argument("--per-genre", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per clip (default 10)")
    p.add_argument("--sr", type=int, default=22050)
    p.add_argument("--format", default="wav", choices=("wav", "flac", "ogg", "mp3", "m4a"))
    p.set_defaults(handler=cmd_demo_data)

    ds = sub.add_parser("dataset", help="build a dataset (track index + feature store) from a labelled folder")
    dsub = ds.add_subparsers(dest="dataset_command", metavar="ACTION")
    p = dsub.add_parser("build", help="index ROOT/<genre>/*.audio or a CSV manifest and compute features",
                        formatter_class=fmt,
                        epilog=example_epilog("genrify dataset build ~/Music/labelled --out my.gdb",
                                              "genrify dataset build manifest.csv --out my.gdb --features logmel --workers 2"))
    p.add_argument("root", help="folder with one sub-folder per genre, or a CSV manifest (path,genre[,artist,title])")
    p.add_argument("--out", required=True, help="dataset folder to create or update (e.g. my.gdb)")
    p.add_argument("--features", choices=("mfcc", "logmel"), default="mfcc")
    p.add_argument("--sr", type=int, default=44100)
    p.add_argument("--n-mfcc", type=int, default=10)
    p.add_argument("--n-mels", type=int, default=128)
    p.add_argument("--n-fft", type=int, default=2048)
    p.add_argument("--hop-length", type=int, default=512)
    p.add_argument("--max-duration", type=float, default=600.0, help="seconds analysed per file (default 600)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(handler=cmd_dataset_build)
    ds.set_defaults(handler=lambda a: (ds.print_help(), 2)[1])

    p = sub.add_parser("train", help="train a model on a dataset", formatter_class=fmt,
                       epilog=example_epilog("genrify train my.gdb --model cnn --out cnn.genrify",
                                             "genrify train my.gdb --model mlp --hidden 600,400,100 --out mlp.genrify",
                                             "genrify train my.gdb --model cnn --folds 5 --report cv/cnn",
                                             "genrify train my.gdb --model musicnn-probe --folds 5 --out mine.genrify",
                                             "genrify train my.gdb --model musicnn-finetune --folds 5 --out tuned.genrify"))
    p.add_argument("dataset")
    p.add_argument("--model", default="cnn",
                   help="cnn | mlp (the 2017 networks) | musicnn-probe (few-shot linear head over pretrained "
                        "musicnn) | musicnn-finetune (fine-tunes musicnn's last dense layer with a new genre layer; "
                        "for a few dozen songs per genre and more); default cnn")
    p.add_argument("--C", type=float, default=0.005, help="musicnn-probe: inverse L2 strength (default 0.005)")
    p.add_argument("--out", help="model file to write (default: <model>.genrify)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2 penalty (AdamW)")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--hidden", default="600", help="MLP hidden sizes, comma separated (default 600)")
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs")
    p.add_argument("--window", type=float, default=3.0, help="model window in seconds (default 3)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--folds", type=int, default=0, help="also report K-fold cross-validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--report", help="prefix for the report files (default: beside the model file)")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="per-genre precision/recall/F1 on held-out tracks", formatter_class=fmt,
                       epilog=example_epilog("genrify evaluate my.gdb --model cnn.genrify",
                                             "genrify evaluate other.gdb --model cnn.genrify --out reports/other"))
    p.add_argument("dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--out", help="report prefix (writes .md, .json, -confusion.png)")
    p.add_argument("--include-training-data", action="store_true",
                   help="also score tracks the model was trained on (flagged in the report)")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("predict", help="genres of audio files", formatter_class=fmt,
                       epilog=example_epilog("genrify predict song.mp3", "genrify predict a.mp3 b.flac --model cnn.genrify --top-k 3",
                                             "genrify predict song.m4a --json",
                                             "genrify predict ~/Music --fast --workers 2 --json > genres.json",
                                             "genrify predict ~/Music/inbox --write-tags"))
    p.add_argument("files", nargs="+", help="audio files, or folders (every audio file under them)")
    p.add_argument("--model", default=None, help="model file (default: the bundled model)")
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument("--fast", action="store_true", help="musicnn models: 3 spread windows per song, bfloat16")
    p.add_argument("--timeline", metavar="PNG", help="also plot genre over time (one file: PNG; several: a folder)")
    p.add_argument("--workers", type=int, default=1, help="processes for many files (each loads the model; default 1)")
    p.add_argument("--write-tags", action="store_true",
                   help="write the top genre into each file's genre tag (only when the answer is a genre, not "
                        "'unsure' or 'not music'; atomic, audio untouched)")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("embed", help="musicnn embeddings of a dataset's tracks (per window and per track)",
                       formatter_class=fmt, epilog=example_epilog("genrify embed my.gdb",
                                                                  "genrify embed my.gdb --export embeddings.npz",
                                                                  "genrify embed my.gdb --export embeddings.csv"))
    p.add_argument("dataset")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--export", metavar="FILE", help="also write per-track embeddings to .npy, .npz, .csv or .parquet")
    p.set_defaults(handler=cmd_embed)

    p = sub.add_parser("explore", help="2-D PCA scatter of a dataset's standardised feature images",
                       formatter_class=fmt, epilog=example_epilog("genrify explore my.gdb --out pca.png"))
    p.add_argument("dataset")
    p.add_argument("--out", default="pca.png")
    p.add_argument("--seconds", type=float, default=30.0, help="image length compared (default 30 s, shorter clips set it)")
    p.set_defaults(handler=cmd_explore)


# --------------------------------------------------------------------------- handlers


def cmd_demo_data(args) -> int:
    from genrify.sources.synthetic import write_demo_corpus

    rows = write_demo_corpus(args.out, per_genre=args.per_genre, seed=args.seed, sr=args.sr,
                             duration=args.duration, fmt=args.format)
    print(f"wrote {len(rows)} synthetic clips to {args.out} (manifest: {Path(args.out) / 'manifest.csv'})")
    return 0


def cmd_dataset_build(args) -> int:
    from genrify.config import AudioConfig, FeatureConfig
    from genrify.dataset.build import build_dataset

    fc = FeatureConfig(kind=args.features, sr=args.sr, n_mfcc=args.n_mfcc, n_mels=args.n_mels, n_fft=args.n_fft,
                       hop_length=args.hop_length)
    summary = build_dataset(args.root, args.out, features=fc, audio=AudioConfig(sr=args.sr, max_duration=args.max_duration),
                            workers=args.workers, progress=sys.stderr.isatty())
    print("\n".join(summary.lines()))
    return 0


def _run_config(args, dataset):
    from genrify.config import AudioConfig, ModelConfig, RunConfig, TrainConfig, WindowConfig

    hidden = tuple(int(h) for h in str(args.hidden).split(",") if h.strip())
    return RunConfig(
        audio=AudioConfig(sr=dataset.feature_config.sr, max_duration=dataset.audio_config.max_duration,
                          min_duration=dataset.audio_config.min_duration),
        features=dataset.feature_config,
        window=WindowConfig(seconds=args.window, hop_seconds=args.window, train_hop_seconds=args.window / 2),
        model=ModelConfig(name=args.model, hidden=hidden, dropout=args.dropout, C=getattr(args, "C", 0.005),
                          backbone="msd_musicnn" if args.model in MUSICNN_HEADS else None),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                          patience=args.patience, seed=args.seed, val_fraction=args.val_fraction, threads=args.threads),
    )


def cmd_train(args) -> int:
    from genrify.dataset import Dataset
    from genrify.errors import ConfigError

    if args.model not in MODEL_CHOICES:
        raise ConfigError(f"unknown model {args.model!r}; choose one of {', '.join(MODEL_CHOICES)}")
    dataset = Dataset(args.dataset)
    config = _run_config(args, dataset)
    out = Path(args.out or f"{args.model}.genrify")
    prefix = Path(args.report) if args.report else out.with_suffix("")
    if args.model in MUSICNN_HEADS:
        train_head_and_report(dataset, config, out=out, prefix=prefix, folds=args.folds, progress=sys.stderr.isatty())
        return 0
    train_and_report(dataset, config, out=out, prefix=prefix, folds=args.folds, progress=sys.stderr.isatty())
    return 0


def train_and_report(dataset, config, *, out: Path, prefix: Path, folds: int = 0, progress: bool = False) -> dict:
    """Train, save the model, write learning curves and the held-out report; returns the held-out metrics."""
    import numpy as np

    from genrify import report
    from genrify.evaluate import cross_validate, evaluate
    from genrify.fileio import write_bytes_atomic
    from genrify.models.modelfile import save_model_file
    from genrify.predict import GenreClassifier
    from genrify.train import load_dataset_images, train_tracks

    tracks, images, y, groups, labels = load_dataset_images(dataset)
    context = [f"dataset: {dataset.root} ({len(tracks)} tracks, {len(labels)} genres)",
               f"model: {config.model.name}, window {config.window.seconds:g} s, seed {config.train.seed}"]
    if folds:
        cv = cross_validate(images, y, groups, config=config, labels=labels, folds=folds, progress=progress)
        paths = report.write_report(cv, Path(f"{prefix}-cv{folds}"), title=f"{config.model.name}: {folds}-fold cross-validation",
                                    context=context + ["every song predicted by a model that never saw it"])
        print(f"{folds}-fold cross-validation ({', '.join(str(p) for p in paths)}):")
        print(report.text_summary(cv))
    mf, history, val_idx = train_tracks(images, y, groups, config=config, labels=labels, progress=progress)
    val_set = set(val_idx.tolist())
    mf.extra["fit_tracks"] = [t.sha256 for i, t in enumerate(tracks) if i not in val_set]
    mf.extra["val_tracks"] = [tracks[i].sha256 for i in sorted(val_set)]
    save_model_file(out, mf)
    curves = prefix.parent / f"{prefix.name}-curves.png"
    write_bytes_atomic(curves, report.learning_curves_png(history.to_dict(), title=f"{config.model.name} learning curves"))
    print(f"saved {out} (best epoch {history.best_epoch + 1}); learning curves: {curves}")
    if not val_set:
        print("no validation split: every genre has a single artist, so nothing was held out")
        return {}
    clf = GenreClassifier(mf)
    from genrify.evaluate import song_probabilities
    from genrify.train import predict_windows, window_frames

    size, _, hop = window_frames(config)
    probs = song_probabilities(lambda w: predict_windows(clf.backend.net, w), [images[i] for i in sorted(val_set)],
                               mean=mf.tensors["norm.mean"], std=mf.tensors["norm.std"], size=size, hop=hop)
    y_val = y[sorted(val_set)]
    metrics = evaluate(y_val, probs.argmax(1), labels=labels, probabilities=probs)
    paths = report.write_report(metrics, Path(f"{prefix}-validation"), title=f"{config.model.name}: held-out validation split",
                                context=context + ["validation split (also used for early stopping), never trained on"])
    print(f"held-out validation ({len(y_val)} songs; {', '.join(str(p) for p in paths)}):")
    print(report.text_summary(metrics))
    return metrics


def probe_config(config):
    """A musicnn-probe run config: 16 kHz audio, 3 s windows, at most 10 per song."""
    from dataclasses import replace

    from genrify.config import AudioConfig, FeatureConfig, WindowConfig

    return replace(config, audio=AudioConfig(sr=16000, max_duration=config.audio.max_duration,
                                             min_duration=config.audio.min_duration),
                   features=FeatureConfig(kind="logmel", sr=16000, n_fft=512, hop_length=256, n_mels=96, top_db=None),
                   window=WindowConfig(seconds=2.992, hop_seconds=2.992, train_hop_seconds=2.992, max_windows=10))


def train_head_and_report(dataset, config, *, out: Path, prefix: Path, folds: int = 0, progress: bool = False) -> dict:
    """Embed (if needed), optionally cross-validate, train a head over musicnn embeddings on
    every track and save it (held-out figures come from ``folds``)."""
    import numpy as np

    from genrify import report
    from genrify.dataset.embed import embed_dataset, load_embeddings
    from genrify.evaluate import evaluate
    from genrify.fileio import write_bytes_atomic
    from genrify.models.modelfile import save_model_file
    from genrify.train import finetune_oof_logits, probe_oof_logits, song_softmax, train_finetune, train_probe

    config = probe_config(config)
    name = config.model.name
    summary = embed_dataset(dataset, progress=progress)
    for path, reason in summary["failed"]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    tracks = dataset.tracks()
    E = [e[: config.window.max_windows] for e in load_embeddings(dataset, tracks)]
    labels = sorted({t.genre for t in tracks})
    y = np.array([labels.index(t.genre) for t in tracks])
    groups = [t.group for t in tracks]
    hyper = f"C={config.model.C}" if name == "musicnn-probe" else f"lr {config.train.lr:g}, dropout {config.model.dropout:g}"
    context = [f"dataset: {dataset.root} ({len(tracks)} tracks, {len(labels)} genres)",
               f"model: {name} ({hyper}), seed {config.train.seed}"]
    metrics = {}
    if folds:
        if name == "musicnn-probe":
            oof = probe_oof_logits(E, y, groups, labels=labels, folds=folds, C=config.model.C, seed=config.train.seed)
        else:
            oof = finetune_oof_logits(E, y, groups, config=config, labels=labels, folds=folds)
        probs = song_softmax(oof)
        metrics = evaluate(y, probs.argmax(1), labels=labels, probabilities=probs)
        metrics["folds"] = folds
        paths = report.write_report(metrics, Path(f"{prefix}-cv{folds}"), title=f"{name}: {folds}-fold cross-validation",
                                    context=context + ["every song predicted by a model that never saw it (uncalibrated)"])
        print(f"{folds}-fold cross-validation ({', '.join(str(p) for p in paths)}):")
        print(report.text_summary(metrics))
    if name == "musicnn-probe":
        mf = train_probe(E, y, groups, config=config, labels=labels)
        done = f"{len(tracks)} tracks"
    else:
        mf, history, val_idx = train_finetune(E, y, groups, config=config, labels=labels, progress=progress)
        curves = prefix.parent / f"{prefix.name}-curves.png"
        write_bytes_atomic(curves, report.learning_curves_png(history.to_dict(), title=f"{name} learning curves"))
        done = (f"{len(tracks)} tracks, {history.best_epoch + 1} epochs chosen on a validation split of "
                f"{len(val_idx)}; learning curves: {curves}")
    mf.extra["fit_tracks"] = [t.sha256 for t in tracks]
    save_model_file(out, mf)
    T = float(mf.tensors["calibration.temperature"][0])
    print(f"saved {out} ({done}; {len(labels)} genres, temperature {T:.2f})")
    return metrics


def cmd_embed(args) -> int:
    from genrify.dataset import Dataset
    from genrify.dataset.embed import embed_dataset, export_embeddings

    dataset = Dataset(args.dataset)
    summary = embed_dataset(dataset, workers=args.workers, progress=sys.stderr.isatty())
    print(f"{summary['tracks']} tracks: {summary['embedded']} embedded, {summary['reused']} already done, "
          f"{len(summary['failed'])} failed")
    for path, reason in summary["failed"]:
        print(f"  skipped {path}: {reason}")
    if args.export:
        print(f"wrote {export_embeddings(dataset, args.export)}")
    return 0


def cmd_evaluate(args) -> int:
    import numpy as np

    from genrify import report
    from genrify.dataset import Dataset
    from genrify.errors import DatasetError
    from genrify.evaluate import evaluate
    from genrify.predict import GenreClassifier

    clf = GenreClassifier.from_file(args.model)
    dataset = Dataset(args.dataset)
    fit = set(clf.model_file.extra.get("fit_tracks", []))
    tracks = [t for t in dataset.tracks() if t.genre in clf.labels]
    held = [t for t in tracks if t.sha256 not in fit]
    seen = len(tracks) - len(held)
    if args.include_training_data:
        held = tracks
    if not held:
        raise DatasetError(f"{args.dataset}: every track was used to train {args.model}; "
                           "evaluate on other data, or pass --include-training-data to score training data (flagged)")
    probs = np.stack([_dataset_track_proba(clf, dataset, t) for t in held])
    y = np.array([clf.labels.index(t.genre) for t in held])
    metrics = evaluate(y, probs.argmax(1), labels=clf.labels, probabilities=probs)
    context = [f"model: {args.model}", f"dataset: {args.dataset}"]
    if args.include_training_data and seen:
        context.append(f"WARNING: includes {seen} tracks the model was trained on: these figures are optimistic")
    else:
        context.append(f"held-out tracks only ({seen} training tracks excluded)")
    prefix = Path(args.out) if args.out else Path(args.model).with_suffix("").with_name(Path(args.model).stem + "-evaluation")
    paths = report.write_report(metrics, prefix, title=f"Evaluation of {Path(args.model).name}", context=context)
    for c in context[2:]:
        print(c)
    print(report.text_summary(metrics))
    print("report: " + ", ".join(str(p) for p in paths))
    return 0


def _dataset_track_proba(clf, dataset, track):
    """Song probabilities from stored features when they match the model's, else from the audio."""
    import numpy as np
    import torch

    if clf.backend.kind == "window" and dataset.feature_config == clf.config.features:
        from genrify.dataset.windows import cut_windows

        b = clf.backend
        im = (np.asarray(dataset.features(track)) - b.mean[:, None]) / b.std[:, None]
        w, _ = cut_windows(im, size=b.size, hop=b.hop)
        with torch.inference_mode():
            return torch.softmax(b.net(torch.from_numpy(w.astype(np.float32))) / b.temperature, 1).numpy().mean(0)
    return clf.predict_proba(track.path)


def cmd_predict(args) -> int:
    from genrify.errors import ConfigError
    from genrify.predict import analyse_many
    from genrify.sources.folder import audio_files

    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    # A folder stands for every audio file under it; answers keep the order of the arguments.
    groups = [[str(p) for p in audio_files(item)] if Path(item).is_dir() else [item] for item in args.files]
    paths = [p for g in groups for p in g]
    stream = analyse_many(paths, model=args.model, fast=True if args.fast else None, top_k=args.top_k,
                          workers=args.workers)
    from tqdm import tqdm

    # A progress bar only where it cannot tangle with the answers printed to the same terminal.
    quiet = not sys.stderr.isatty() or (sys.stdout.isatty() and not args.json) or len(paths) < 2
    bar = tqdm(total=len(paths), desc="predict", unit="song", disable=quiet, leave=False)
    results, failed = [], 0
    for item, group in zip(args.files, groups):
        if not group:
            failed += 1
            results.append({"path": item, "error": f"{item}: is a directory with no audio files in it"})
        for r in (next(stream) for _ in group):
            if r.error is not None:
                failed += 1
                results.append({"path": r.path, "error": r.error})
            else:
                results.append({"path": r.path, **r.analysis.to_dict()})
                if args.timeline:
                    write_timeline(r.analysis, r.path, args.timeline, several=len(paths) > 1)
                if args.write_tags:
                    failed += _tag(results[-1], r.analysis)
            if not args.json:
                _print_result(results[-1], r.analysis)
            bar.update()
        if not group and not args.json:
            _print_result(results[-1], None)
    bar.close()
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _tag(result: dict, analysis) -> int:
    """Write the top genre into the file's tags when the answer is a genre; 1 if that failed."""
    from genrify.errors import GenrifyError
    from genrify.sources.tags import write_genre

    result["tagged"] = None
    if analysis.verdict != "genre":  # unsure, not music or multi-label tags: the file keeps its tags
        return 0
    genre = analysis.top[0][0]
    try:
        write_genre(result["path"], genre)
    except GenrifyError as exc:
        result["tag_error"] = str(exc)
        return 1
    result["tagged"] = genre
    return 0


def _print_result(result: dict, analysis) -> None:
    if "error" in result:
        print(f"genrify: error: {result['error']}", file=sys.stderr, flush=True)
        return
    tagged = f"  [genre tag: {result['tagged']}]" if result.get("tagged") else ""
    print(f"{result['path']}: {format_top(analysis)}{tagged}", flush=True)
    if "tag_error" in result:
        print(f"genrify: error: {result['tag_error']}", file=sys.stderr, flush=True)


def write_timeline(a, path: str, target: str, *, several: bool) -> None:
    """Plot ``a``'s genre-over-time to ``target`` (a folder when several files are predicted)."""
    from genrify.fileio import write_bytes_atomic
    from genrify.plots import timeline_png

    out = Path(target) / f"{Path(path).stem}-timeline.png" if several else Path(target)
    write_bytes_atomic(out, timeline_png(a.window_starts, a.window_probabilities, a.labels, duration=a.duration))


def format_top(a) -> str:
    """``1. metal, certainty 93%  2. rock, certainty 5%`` (or the unsure / not-music message)."""
    if a.verdict == "tags":
        return "tags: " + ", ".join(f"{g} {p:.0%}" for g, p in a.top)
    ranked = "  ".join(f"{i}. {g}, certainty {p:.0%}" for i, (g, p) in enumerate(a.top, 1))
    if a.verdict == "genre":
        return ranked
    return f"{a.message} (best guesses: {ranked})"


def cmd_explore(args) -> int:
    import numpy as np

    from genrify.dataset import Dataset
    from genrify.fileio import write_bytes_atomic
    from genrify.report import _png, _pyplot

    dataset = Dataset(args.dataset)
    tracks = dataset.tracks()
    if len(tracks) < 3:
        from genrify.errors import DatasetError

        raise DatasetError(f"{args.dataset}: need at least 3 usable tracks to explore")
    images = [dataset.features(t) for t in tracks]
    fc = dataset.feature_config
    n = min(min(im.shape[1] for im in images), fc.frames_for(args.seconds))
    X = np.stack([np.asarray(im[:, :n]).ravel() for im in images]).astype(np.float64)
    X = (X - X.mean(0)) / (X.std(0) + 1e-9)
    from sklearn.decomposition import PCA

    Z = PCA(n_components=2, random_state=0).fit_transform(X)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    genres = sorted({t.genre for t in tracks})
    for g in genres:
        m = np.array([t.genre == g for t in tracks])
        ax.scatter(Z[m, 0], Z[m, 1], s=14, label=g, alpha=0.8)
    ax.set(xlabel="PC 1", ylabel="PC 2", title=f"PCA of standardised {fc.kind} images ({n} frames)")
    ax.legend(fontsize=8, markerscale=1.5)
    write_bytes_atomic(args.out, _png(fig))
    print(f"wrote {args.out} ({len(tracks)} tracks, {len(genres)} genres)")
    return 0


def cmd_demo(args) -> int:
    """Synthetic corpus → dataset → train → held-out evaluation → predict, printing the report."""
    from genrify.config import FeatureConfig
    from genrify.dataset import Dataset
    from genrify.dataset.build import build_dataset
    from genrify.predict import GenreClassifier
    from genrify.sources.synthetic import write_demo_corpus

    out = Path(args.out)
    data = out / "clips"
    if not (data / "manifest.csv").exists():
        print(f"writing {args.per_genre} synthetic clips per style to {data} ...")
        write_demo_corpus(data, per_genre=args.per_genre, seed=0, duration=10.0, fmt="wav")
    summary = build_dataset(data, out / "demo.gdb", features=FeatureConfig(), progress=sys.stderr.isatty())
    print("\n".join(summary.lines()))
    dataset = Dataset(out / "demo.gdb")
    ns = argparse.Namespace(model=args.model, hidden="600", dropout=0.5, window=3.0, epochs=30, batch_size=64,
                            lr=1e-3, weight_decay=1e-4, patience=6, seed=0, val_fraction=0.2, threads=None)
    config = _run_config(ns, dataset)
    model_path = out / f"{args.model}.genrify"
    trainer = train_head_and_report if args.model in MUSICNN_HEADS else train_and_report
    trainer(dataset, config, out=model_path, prefix=out / args.model, progress=sys.stderr.isatty())
    clf = GenreClassifier.from_file(model_path)
    example = sorted(data.glob("*/*.wav"))[0]
    print(f"predict {example}: {format_top(clf.analyse(example))}")
    return 0
