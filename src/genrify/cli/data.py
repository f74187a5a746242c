"""Data commands: ``demo-data``, ``dataset build``, ``embed``, ``explore``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genrify.cli import example_epilog
from genrify.config import AudioConfig, FeatureConfig
from genrify.fileio import terminal_safe

FMT = argparse.RawDescriptionHelpFormatter


def register(sub) -> None:
    p = sub.add_parser("demo-data", help="write the synthetic test corpus (procedural clips, not music)",
                       formatter_class=FMT, epilog=example_epilog("genrify demo-data data/ --per-genre 20",
                                                                  "genrify demo-data lib/ --per-genre 3 --format mp3 --duration 30"))
    p.add_argument("out")
    p.add_argument("--per-genre", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per clip (default 10)")
    p.add_argument("--sr", type=int, default=22050)
    p.add_argument("--format", default="wav", choices=("wav", "flac", "ogg", "mp3", "m4a"))
    p.set_defaults(handler=cmd_demo_data)
    _register_dataset(sub)

    p = sub.add_parser("embed", help="musicnn embeddings of a dataset's tracks (per window and per track)",
                       formatter_class=FMT, epilog=example_epilog("genrify embed my.gdb",
                                                                  "genrify embed my.gdb --export embeddings.npz",
                                                                  "genrify embed my.gdb --export embeddings.csv"))
    p.add_argument("dataset")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster: 'auto' or host:port (see docs/scale.md)")
    p.add_argument("--export", metavar="FILE", help="also write per-track embeddings to .npy, .npz, .csv or .parquet")
    p.set_defaults(handler=cmd_embed)

    p = sub.add_parser("explore", help="2-D PCA scatter of a dataset's standardised feature images",
                       formatter_class=FMT, epilog=example_epilog("genrify explore my.gdb --out pca.png"))
    p.add_argument("dataset")
    p.add_argument("--out", default="pca.png")
    p.add_argument("--seconds", type=float, default=30.0, help="image length compared (default 30 s, shorter clips set it)")
    p.set_defaults(handler=cmd_explore)


def _register_dataset(sub) -> None:
    ds = sub.add_parser("dataset", help="build a dataset (track index + feature store) from a labelled folder")
    dsub = ds.add_subparsers(dest="dataset_command", metavar="ACTION")
    p = dsub.add_parser("build", help="index ROOT/<genre>/*.audio or a CSV manifest and compute features",
                        formatter_class=FMT,
                        epilog=example_epilog("genrify dataset build ~/Music/labelled --out my.gdb",
                                              "genrify dataset build manifest.csv --out my.gdb --features logmel --workers 2"))
    p.add_argument("root", help="folder with one sub-folder per genre, or a CSV manifest (path,genre[,artist,title])")
    p.add_argument("--out", required=True, help="dataset folder to create or update (e.g. my.gdb)")
    p.add_argument("--features", choices=("mfcc", "logmel"), default=FeatureConfig.kind,
                   help="the picture of each song a model learns from: 'mfcc' (the original system's "
                        "coefficients) or 'logmel' (a log-mel spectrogram); default %(default)s")
    p.add_argument("--sr", type=int, default=FeatureConfig.sr, metavar="HZ",
                   help="sample rate every file is resampled to before its features, in Hz (default %(default)s)")
    p.add_argument("--n-mfcc", type=int, default=FeatureConfig.n_mfcc, metavar="N",
                   help="MFCC coefficients per frame, with --features mfcc (default %(default)s)")
    p.add_argument("--n-mels", type=int, default=FeatureConfig.n_mels, metavar="N",
                   help="mel bands: the rows of a log-mel picture, and what the MFCCs are computed from "
                        "(default %(default)s)")
    p.add_argument("--n-fft", type=int, default=FeatureConfig.n_fft, metavar="SAMPLES",
                   help="length of each analysis frame (FFT size), in samples (default %(default)s)")
    p.add_argument("--hop-length", type=int, default=FeatureConfig.hop_length, metavar="SAMPLES",
                   help="samples between the starts of two frames: the picture's time step (default %(default)s)")
    p.add_argument("--max-duration", type=float, default=AudioConfig.max_duration,
                   help=f"seconds analysed per file (default {AudioConfig.max_duration:g})")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(handler=cmd_dataset_build)
    ds.set_defaults(handler=lambda a: (ds.print_help(), 2)[1])


def cmd_demo_data(args) -> int:
    from genrify.sources.synthetic import write_demo_corpus

    rows = write_demo_corpus(args.out, per_genre=args.per_genre, seed=args.seed, sr=args.sr,
                             duration=args.duration, fmt=args.format)
    print(terminal_safe(f"wrote {len(rows)} synthetic clips to {args.out} (manifest: {Path(args.out) / 'manifest.csv'})"))
    return 0


def cmd_dataset_build(args) -> int:
    from genrify.dataset.build import build_dataset

    fc = FeatureConfig(kind=args.features, sr=args.sr, n_mfcc=args.n_mfcc, n_mels=args.n_mels, n_fft=args.n_fft,
                       hop_length=args.hop_length)
    summary = build_dataset(args.root, args.out, features=fc, audio=AudioConfig(sr=args.sr, max_duration=args.max_duration),
                            workers=args.workers, progress=sys.stderr.isatty())
    print("\n".join(terminal_safe(line) for line in summary.lines()))  # lines name the files skipped
    return 0


def cmd_embed(args) -> int:
    from genrify.dataset import Dataset
    from genrify.dataset.embeddings import export_embeddings
    from genrify.train.embed import embed_dataset

    dataset = Dataset(args.dataset)
    engine = None
    if args.ray:
        from genrify.errors import ConfigError
        from genrify.scale import RayConfig, embed_engine

        if args.workers is not None:
            raise ConfigError("--workers sizes a local run; on Ray, GENRIFY_RAY_ACTORS and GENRIFY_RAY_ACTOR_CPUS do "
                              "(see docs/scale.md)")

        engine = embed_engine(RayConfig.from_environment(args.ray))
    summary = embed_dataset(dataset, workers=args.workers, progress=sys.stderr.isatty(), engine=engine)
    print(f"{summary['tracks']} tracks: {summary['embedded']} embedded, {summary['reused']} already done, "
          f"{len(summary['failed'])} failed")
    for path, reason in summary["failed"]:
        print(terminal_safe(f"  skipped {path}: {reason}"))
    if args.export:
        print(terminal_safe(f"wrote {export_embeddings(dataset, args.export)}"))
    return 0


def cmd_explore(args) -> int:
    from genrify import report
    from genrify.dataset import Dataset
    from genrify.dataset.explore import standardised_pca
    from genrify.errors import DatasetError
    from genrify.fileio import write_bytes_atomic

    dataset = Dataset(args.dataset)
    tracks = dataset.tracks()
    if len(tracks) < 3:
        raise DatasetError(f"{args.dataset}: need at least 3 usable tracks to explore")
    fc = dataset.feature_config
    points, n = standardised_pca([dataset.features(t) for t in tracks], max_frames=fc.frames_for(args.seconds))
    genres = [t.genre for t in tracks]
    png = report.scatter_png(points, genres, title=f"PCA of standardised {fc.kind} images ({n} frames)",
                             xlabel="PC 1", ylabel="PC 2")
    write_bytes_atomic(args.out, png)
    print(terminal_safe(f"wrote {args.out} ({len(tracks)} tracks, {len(set(genres))} genres)"))
    return 0
