"""``genrify predict``: the genres of audio files and folders, printed, as JSON, or written into tags."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genrify.cli import example_epilog
from genrify.fileio import terminal_safe


def register(sub) -> None:
    p = sub.add_parser("predict", help="genres of audio files", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog("genrify predict song.mp3", "genrify predict a.mp3 b.flac --model cnn.genrify --top-k 3",
                                             "genrify predict song.m4a --json",
                                             "genrify predict ~/Music --fast --workers 2 --json > genres.json",
                                             "genrify predict ~/Music/inbox --write-tags"))
    p.add_argument("files", nargs="+", help="audio files, or folders (every audio file under them)")
    p.add_argument("--model", default=None, help="model file, 'gtzan' for the bundled ten-genre GTZAN model, or 'musicnn' for musicnn's own tags "
                        "(default: the bundled taxonomy model: 14 genres and their styles)")
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument("--fast", action="store_true", help="musicnn models: 3 spread windows per song, bfloat16")
    p.add_argument("--timeline", metavar="PNG", help="also plot genre over time (one file: PNG; several: a folder)")
    p.add_argument("--workers", type=int, default=1, help="processes for many files (each loads the model; default 1)")
    p.add_argument("--write-tags", action="store_true",
                   help="write the top genre into each file's genre tag (only when the answer is a genre, not "
                        "'unsure' or 'not music'; atomic, audio untouched)")
    p.set_defaults(handler=cmd_predict)


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
        print(f"genrify: error: {terminal_safe(result['error'])}", file=sys.stderr, flush=True)
        return
    tagged = f"  [genre tag: {result['tagged']}]" if result.get("tagged") else ""
    # The whole line: a model file's genre names are outside text too.
    print(terminal_safe(f"{result['path']}: {format_top(analysis)}{tagged}"), flush=True)
    if "tag_error" in result:
        print(f"genrify: error: {terminal_safe(result['tag_error'])}", file=sys.stderr, flush=True)


def write_timeline(a, path: str, target: str, *, several: bool) -> None:
    """Plot ``a``'s genre-over-time to ``target`` (a folder when several files are predicted)."""
    from genrify.fileio import write_bytes_atomic
    from genrify.report import timeline_png

    out = Path(target) / f"{Path(path).stem}-timeline.png" if several else Path(target)
    write_bytes_atomic(out, timeline_png(a.window_starts, a.window_probabilities, a.labels, duration=a.duration))


def format_top(a) -> str:
    """``1. Metal, certainty 93%  2. Rock, certainty 5%  (style: Heavy Metal 61%)`` (or the unsure /
    not-music message)."""
    if a.verdict == "tags":
        return "tags: " + ", ".join(f"{g} {p:.0%}" for g, p in a.top)
    ranked = "  ".join(f"{i}. {g}, certainty {p:.0%}" for i, (g, p) in enumerate(a.top, 1))
    if a.verdict == "genre":
        styles = a.styles()
        if styles:
            ranked += "  (style: " + ", ".join(f"{s['name']} {s['probability']:.0%}" for s in styles) + ")"
        return ranked
    return f"{a.message} (best guesses: {ranked})"
