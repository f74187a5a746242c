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
    p.add_argument("--model", default=None, help="model file, 'gtzan' for the bundled ten-genre GTZAN model, 'musicnn' for musicnn's own "
                        "tags or 'audioset' for AudioSet's 527 classes (default: the bundled taxonomy model: 14 "
                        "genres and their styles)")
    p.add_argument("--top-k", type=int, default=2, help="genres listed per song (at least 1; default 2)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument("--fast", action="store_true", help="musicnn models: 3 spread windows per song (bfloat16 where "
                        "this CPU measures it faster; -v says)")
    p.add_argument("--timeline", metavar="PNG|DIR",
                   help="also plot genre over time: a name ending in .png is the plot of a single song; anything "
                        "else is a folder that gets <song>-timeline.png per song (every path written is printed)")
    p.add_argument("--workers", type=int, default=1, help="processes for many files (each loads the model; default 1)")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster: 'auto' (the one this machine belongs to) or "
                        "host:port; FILES may then also be fsspec URLs (s3://…); see docs/scale.md")
    p.add_argument("--write-tags", action="store_true",
                   help="write the top genre into each file's genre tag (only when the answer is a genre, not "
                        "'unsure' or 'not music'; atomic, audio untouched); a file that already has a different "
                        "genre keeps it unless --overwrite is given")
    p.add_argument("--overwrite", action="store_true", help="with --write-tags: replace existing genre tags too")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="first print (to stderr) how this machine runs the model: mode, windows, arithmetic "
                        "(float32, bfloat16 or int8, as measured on this CPU) and threads")
    p.set_defaults(handler=cmd_predict)


def cmd_predict(args) -> int:
    from genrify.errors import ConfigError
    from genrify.predict import analyse_many
    from genrify.sources.folder import audio_files

    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.ray and args.workers != 1:
        raise ConfigError("--workers sizes a local run; on Ray, GENRIFY_RAY_ACTORS and GENRIFY_RAY_ACTOR_CPUS do "
                          "(see docs/scale.md)")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1 (got {args.top_k})")
    if args.overwrite and not args.write_tags:
        raise ConfigError("--overwrite only applies with --write-tags")
    from genrify.predict import resolve_model

    model = resolve_model(args.model)  # a wrong name or path is one line, before any work
    # A folder stands for every audio file under it; answers keep the order of the arguments.
    groups = [[str(p) for p in audio_files(item)] if Path(item).is_dir() else [item] for item in args.files]
    paths = [p for g in groups for p in g]
    timelines = timeline_paths(paths, args.timeline) if args.timeline else {}
    fast = True if args.fast else None
    if args.ray:
        from genrify.scale import RayConfig, analyse_many_on_ray

        config = RayConfig.from_environment(args.ray)
        if args.verbose:
            print(f"genrify: {describe_workers(model, fast=fast, threads=config.cpus_per_actor)} (each Ray actor)",
                  file=sys.stderr, flush=True)
        stream = analyse_many_on_ray(paths, config=config, model=model, fast=fast, top_k=args.top_k)
    elif args.workers > 1 and len(paths) > 1:
        if args.verbose:
            print(f"genrify: {describe_workers(model, fast=fast, threads=1)} (each of {args.workers} worker processes)",
                  file=sys.stderr, flush=True)
        stream = analyse_many(paths, model=model, fast=fast, top_k=args.top_k, workers=args.workers)
    else:
        from genrify.predict import load_classifier

        clf = load_classifier(model, fast=fast, songs=len(paths))
        if args.verbose:
            print(f"genrify: {clf.compute_summary()}", file=sys.stderr, flush=True)
        stream = analyse_many(paths, classifier=clf, top_k=args.top_k)
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
                    results[-1]["timeline"] = str(write_timeline(r.analysis, timelines[r.path],
                                                                 title=timeline_title(r.path, model=model)))
                if args.write_tags:
                    failed += _tag(results[-1], r.analysis, overwrite=args.overwrite)
            if not args.json:
                _print_result(results[-1], r.analysis)
            bar.update()
        if not group and not args.json:
            _print_result(results[-1], None)
    bar.close()
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def describe_workers(model, *, fast: bool | None, threads: float) -> str:
    """What ``-v`` says of a run whose analyses happen in other processes: how each runs the model,
    planned as they plan it (many songs, ``threads`` each), without building the model here."""
    from genrify.predict.backends import plan_for

    runtime = plan_for(model.read(), fast=fast, threads=max(1, int(threads)))
    return f"model {model.source} · {runtime.describe()}"


def _tag(result: dict, analysis, *, overwrite: bool) -> int:
    """Write the top genre, in its canonical spelling (``analysis.genre``), into the file's tags when
    the answer is a genre, by the one rule for a genre the file already has
    (:func:`~genrify.tagging.choose.decide_tag`: a different one is replaced only with ``overwrite``);
    1 if that failed."""
    from genrify.errors import GenrifyError
    from genrify.sources.tags import read_genres, write_genre
    from genrify.tagging.choose import decide_tag
    from genrify.tagging.journal import TagJournal

    result["tagged"] = None
    if analysis.verdict != "genre":  # unsure, not music or multi-label tags: the file keeps its tags
        return 0
    try:
        current = read_genres(result["path"])
        decision = decide_tag(current=current, names=[analysis.genre], existing="overwrite" if overwrite else "keep")
        if decision.outcome == "unchanged":
            result["tagged"] = ", ".join(current)  # the file already says so: nothing to write
            return 0
        if decision.outcome == "kept":  # the user's own tag wins unless they ask
            result["tag_kept"] = ", ".join(current)
            return 0
        with TagJournal() as journal:  # the file `genrify tag --undo` reads
            written = write_genre(result["path"], decision.values, journal=journal)
    except GenrifyError as exc:
        result["tag_error"] = str(exc)
        return 1
    result["tagged"] = ", ".join(written)
    return 0


def _print_result(result: dict, analysis) -> None:
    if "error" in result:
        print(f"genrify: error: {terminal_safe(result['error'])}", file=sys.stderr, flush=True)
        return
    tagged = f"  [genre tag: {result['tagged']}]" if result.get("tagged") else ""
    if result.get("tag_kept"):
        tagged = f"  [genre tag kept: {result['tag_kept']}; --overwrite replaces it]"
    # The whole line: a model file's genre names are outside text too.
    print(terminal_safe(f"{result['path']}: {format_top(analysis)}{tagged}"), flush=True)
    if "timeline" in result:
        print(terminal_safe(f"  timeline: {result['timeline']}"), flush=True)
    if "tag_error" in result:
        print(f"genrify: error: {terminal_safe(result['tag_error'])}", file=sys.stderr, flush=True)


def timeline_paths(paths: list[str], target: str) -> dict[str, Path]:
    """Where ``--timeline TARGET`` puts each song's plot, by one rule: a ``TARGET`` ending in
    ``.png`` (and not an existing folder) is the plot of a single song; anything else is a
    folder holding ``<song>-timeline.png`` per song, ``<song>-2-timeline.png`` … when songs of
    different folders share a name, so no plot overwrites another."""
    from genrify.errors import ConfigError

    out = Path(target)
    if out.suffix.lower() == ".png" and not out.is_dir():
        if len(paths) > 1:
            raise ConfigError(f"--timeline {target}: a .png name holds one song's plot, and {len(paths)} songs are "
                              "predicted; give a folder instead (e.g. --timeline timelines/)")
        return {p: out for p in paths}
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--timeline {target}: not a folder (name a folder, or a .png for a single song)")
    taken: set[str] = set()
    where = {}
    for p in dict.fromkeys(paths):
        stem, n = Path(p).stem, 1
        name = f"{stem}-timeline.png"
        while name.casefold() in taken:
            n += 1
            name = f"{stem}-{n}-timeline.png"
        taken.add(name.casefold())
        where[p] = out / name
    return where


#: Longest song name a timeline's title shows (about the width of the plot at its font size).
TITLE_SONG_CHARS = 70


def timeline_title(path: str, *, model) -> str:
    """What a saved timeline says it shows: ``Artist – Title · model default.genrify``, the file's name
    where its tags have no title (or it cannot be read here, like a Ray run's ``s3://`` URL); ``model``
    is the run's :class:`~genrify.predict.resolve.ModelRef`."""
    from genrify.errors import GenrifyError
    from genrify.sources.tags import read_tags

    try:
        tags = read_tags(Path(path))
    except (GenrifyError, OSError):
        tags = {}
    artist, title = tags.get("artist"), tags.get("title")
    song = (f"{artist} – {title}" if artist else title) if title else Path(path).name
    if len(song) > TITLE_SONG_CHARS:
        song = song[: TITLE_SONG_CHARS - 1] + "…"
    return f"{song} · model {Path(model.source).name}"


def write_timeline(a, out: Path, *, title: str | None = None) -> Path:
    """Plot ``a``'s genre-over-time as a PNG at ``out`` (its folder is created), headed by ``title``
    (:func:`timeline_title`); returns ``out``."""
    from genrify.errors import WriteError
    from genrify.fileio import write_bytes_atomic
    from genrify.report import timeline_png

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{out}: cannot write ({exc.strerror or exc})") from None
    write_bytes_atomic(out, timeline_png(a.window_starts, a.window_probabilities, a.labels, duration=a.duration,
                                         title=title))
    return out


def format_top(a) -> str:
    """``1. Metal, certainty 93%  2. Rock, certainty 5%  (style: Heavy Metal, 61% of Metal)`` (or the
    unsure / not-music message)."""
    from genrify.predict.checks import certainty_percent

    if a.verdict == "tags":
        return "tags: " + ", ".join(f"{g} {p:.0%}" for g, p in a.top)
    # The figure the unsure verdict compared and its sentence prints: the list never contradicts it.
    ranked = "  ".join(f"{i}. {g}, certainty {certainty_percent(p)}%" for i, (g, p) in enumerate(a.top, 1))
    if a.verdict == "genre":
        styles = a.styles()
        if styles:
            ranked += "  (style: " + ", ".join(f"{s['name']}, {s['share']:.0%} of {a.genre}" for s in styles) + ")"
        return ranked
    return f"{a.message} (best guesses: {ranked})"
