"""``genrify tag --undo``: put back the genre tags that ``genrify predict --write-tags`` replaced."""

from __future__ import annotations

import argparse

from genrify.cli import example_epilog
from genrify.fileio import terminal_safe


def register(sub) -> None:
    p = sub.add_parser("tag", help="undo the genre tags a run of 'predict --write-tags' wrote",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog("genrify tag --undo", "genrify tag --undo --run 20250101-120000-4242-a1b2c3"))
    p.add_argument("--undo", action="store_true",
                   help="restore the genres recorded before the latest run wrote tags (files changed since are left alone)")
    p.add_argument("--run", default=None, help="undo this run instead of the latest (ids are in the tag journal)")
    p.set_defaults(handler=cmd_tag, parser=p)


def cmd_tag(args) -> int:
    from genrify.sources.tags import undo_genres

    if not args.undo:
        args.parser.print_help()
        return 2
    outcomes = undo_genres(run=args.run)
    for path, what in outcomes:
        print(terminal_safe(f"{path}: {what}"))
    return 0 if all(what.startswith(("restored", "unchanged")) for _, what in outcomes) else 1
