"""``genrify tag``: genres for a whole library (dry run by default), and ``--undo``."""

from __future__ import annotations

import argparse
import sys

from genrify.cli import FieldDefault, example_epilog
from genrify.fileio import terminal_safe

# Read only when shown or used: importing genrify.tagging loads NumPy, which `genrify --help` must not.
_CHOICE, _JOB = "genrify.tagging.choose:ChoiceConfig", "genrify.tagging.job:TagJobConfig"


def register(sub) -> None:
    p = sub.add_parser("tag", help="tag a music library with genres (a dry run unless --write), or undo tags",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog("genrify tag ~/Music", "genrify tag ~/Music --write --workers 2 --fast",
                                             "genrify tag ~/Music --write --album --level both --max 3",
                                             "genrify tag ~/Music --export genres.csv", "genrify tag --undo ~/Music",
                                             "genrify tag --undo --run 20250101-120000-4242-a1b2c3"))
    p.add_argument("paths", nargs="*", metavar="PATH", help="folders (walked recursively) or audio files")
    p.add_argument("--write", action="store_true", help="write the genres (default: only show what would be written)")
    p.add_argument("--album", action="store_true",
                   help="one genre per album (album tag within a folder, else the folder), from its tracks' mean")
    p.add_argument("--level", choices=("genre", "style", "both", "specific"), default=FieldDefault(_CHOICE, "level"),
                   help="write top-level genres (specific: each genre's surest style, else the genre), "
                        "the finer styles, or both (default: %(default)s)")
    p.add_argument("--max", type=int, default=FieldDefault(_CHOICE, "max"),
                   help="at most this many names of each level (default: %(default)s)")
    p.add_argument("--min-certainty", type=float, default=FieldDefault(_CHOICE, "min_certainty"),
                   help="write a genre only at or above this probability, 0-1 (default: %(default)s)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace a genre tag the file already has")
    mode.add_argument("--merge", action="store_true", help="add the new genres after those the file already has")
    p.add_argument("--id3v23", metavar="SEP", default=None,
                   help="write MP3/WAV/AIFF ID3 tags as v2.3 with the genres joined by SEP (default: v2.4 multi-value)")
    p.add_argument("--names", metavar="YAML", default=None, help="names file: aliases, ignore, whitelist")
    p.add_argument("--export", metavar="FILE", default=None,
                   help="also write the results to FILE (.csv or .json): path, artist, album, title, genres, ...")
    p.add_argument("--index", metavar="FILE", default=None,
                   help="results index and tag journal (default: tag-journal.sqlite in genrify's data folder)")
    p.add_argument("--model", default=None, help="a .genrify model file or a built-in model (default: bundled)")
    p.add_argument("--fast", action="store_true", help="analyse fewer windows per song: faster, a little less sure")
    p.add_argument("--workers", type=int, default=FieldDefault(_JOB, "workers"),
                   help="analyse in this many processes (default: %(default)s)")
    p.add_argument("--ray", metavar="ADDRESS", help="analyse on a Ray cluster: 'auto' or host:port (see docs/scale.md)")
    p.add_argument("--undo", action="store_true",
                   help="restore the genres genrify replaced: under PATH (every run), else the latest run")
    p.add_argument("--run", default=None, help="with --undo and no PATH: undo this run instead of the latest")
    p.set_defaults(handler=cmd_tag, parser=p)


def cmd_tag(args) -> int:
    from genrify.errors import ConfigError

    if args.undo:
        return _undo(args)
    if not args.paths:
        args.parser.print_help()
        return 2
    if args.export and not args.export.lower().endswith((".csv", ".json")):
        raise ConfigError(f"{args.export}: --export writes .csv or .json")
    from genrify.tagging import ResultsIndex, run_tag_job

    config = job_config(args)
    analyse = None  # the job's own: in this process, or over --workers processes
    if args.ray:
        from genrify.scale import RayConfig, tag_engine

        analyse = tag_engine(RayConfig.from_environment(args.ray), model=config.model, fast=config.fast)
    with ResultsIndex(args.index) as index, _Progress() as progress:
        summary = run_tag_job(args.paths, index=index, config=config, progress=progress, analyse=analyse)
    if summary.nothing_done:  # not one file handled: its errors alone, each as any command's error line
        for f in summary.files:
            print(f"genrify: error: {terminal_safe(f.error)}", file=sys.stderr)
        return 1
    _print_summary(summary, config)
    if args.export:
        _export(summary, args.export)
    return 1 if summary.nothing_done else 0


def job_config(args):
    """The :class:`~genrify.tagging.TagJobConfig` that ``genrify tag``'s options (parsed, defaults
    resolved) ask for; an option left out is its dataclass field's default."""
    from genrify.tagging import ChoiceConfig, NameRules, TagJobConfig, load_names

    names = load_names(args.names) if args.names else NameRules()
    return TagJobConfig(choice=ChoiceConfig(level=args.level, max=args.max, min_certainty=args.min_certainty,
                                            names=names),
                        album=args.album, write=args.write, workers=args.workers, fast=True if args.fast else None,
                        model=args.model, id3_separator=args.id3v23,
                        existing="overwrite" if args.overwrite else "merge" if args.merge else "keep")


def _undo(args) -> int:
    from pathlib import Path

    from genrify.errors import TagError
    from genrify.sources.tags import undo_genres
    from genrify.tagging.journal import TagJournal

    if len(args.paths) > 1:
        raise TagError("--undo takes one folder (or none: the latest run)")
    with TagJournal(path=Path(args.index) if args.index else None) as journal:
        outcomes = undo_genres(run=args.run, under=args.paths[0] if args.paths else None, journal=journal)
    for path, what in outcomes:
        print(terminal_safe(f"{path}: {what}"))
    return 0 if all(what.startswith(("restored", "unchanged")) for _, what in outcomes) else 1


class _Progress:
    """A tqdm bar per stage (scan, analyse, write) with an ETA, on a terminal only."""

    def __init__(self) -> None:
        self.bar, self.stage = None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage, unit="song", disable=not sys.stderr.isatty(), leave=False)
        self.bar.n = done
        self.bar.refresh() if done == total else self.bar.update(0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _top(c) -> str:
    # The certainty is the top genre's probability, written or not: naming that genre says so, where a
    # bare number beside "not_music" reads as the certainty of the verdict.
    return f"{c.top} {c.certainty:.2f}" if c and c.certainty is not None else "-"


def _print_summary(summary, config) -> None:
    """The per-file table, the per-album table with --album, then counts and one line per failed file."""
    ok = [f for f in summary.files if not f.error]
    width = min(60, max([len(f.path) for f in ok] + [4]))
    print(terminal_safe(f"{'file':<{width}}  {'genres':<28} {'top genre, p':<18} {'verdict':<9} action"))
    for f in ok:
        c = f.choice
        names = ", ".join(c.names) if c and c.names else "-"
        print(terminal_safe(f"{f.path:<{width}}  {names:<28} {_top(c):<18} {(c.verdict if c else '-'):<9} {f.action}"))
    if summary.albums:
        print()
        print(f"{'album':<{width}}  {'genres':<28} {'top genre, p':<18} verdict")
        for key, c in summary.albums.items():
            print(terminal_safe(f"{key:<{width}}  {', '.join(c.names) or '-':<28} {_top(c):<18} {c.verdict}"))
    failed = summary.failed
    written = f"{summary.written} written" if config.write else "dry run: nothing written (add --write)"
    print(f"\n{len(summary.files)} files: {summary.analysed} analysed, {summary.reused} known from the index, "
          f"{len(failed)} failed; {written}")
    for f in failed:
        print(terminal_safe(f"failed: {f.error}"))


def _export(summary, target: str) -> None:
    import csv
    import io
    import json

    from genrify.fileio import write_bytes_atomic, write_text_atomic
    from genrify.tagging import export_rows

    rows = export_rows(summary)
    if target.lower().endswith(".json"):
        write_text_atomic(target, json.dumps(rows, indent=2) + "\n")  # a name that is not UTF-8: \udcXX escapes
        return
    out = io.StringIO()
    fields = ["path", "artist", "album", "title", "genres", "styles", "certainty", "verdict"]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in rows:  # several values in one cell, joined as most taggers show them
        row = row | {"genres": "; ".join(row["genres"]), "styles": "; ".join(row["styles"])}
        writer.writerow({k: _spreadsheet_safe(v) for k, v in row.items()})
    # A file name that is not UTF-8 is written as its own bytes, as `ls > list.csv` would.
    write_bytes_atomic(target, out.getvalue().encode("utf-8", "surrogateescape"))


#: What a spreadsheet takes for the start of a formula (a tag "=HYPERLINK(...)" would be one).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(value):
    """``value`` for a CSV cell: text a spreadsheet would run as a formula gets a leading ``'``, as
    OWASP's CSV-injection advice has it; numbers and other text are unchanged."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value
