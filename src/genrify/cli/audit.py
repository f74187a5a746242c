"""``genrify audit``: check a dataset before training on it."""

from __future__ import annotations

import argparse
import sys

from genrify.cli import example_epilog
from genrify.fileio import terminal_safe


def register(sub) -> None:
    from genrify.audit.findings import AuditConfig

    p = sub.add_parser(
        "audit", help="check a dataset before training: duplicates, artists, not music, mislabels, balance",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog("genrify audit my.gdb", "genrify audit my.gdb --out report/",
                              "genrify audit my.gdb --apply    # train and evaluate then leave the suspects out",
                              "genrify serve --audit my.gdb    # listen to each finding: accept, relabel or dismiss it"))
    p.add_argument("dataset", help="a dataset folder built by 'genrify dataset build'")
    p.add_argument("--out", metavar="DIR", help="write audit.md, audit.json and label-pairs.png into DIR")
    p.add_argument("--apply", action="store_true",
                   help="write the dataset's exclusion list (train and evaluate leave those tracks out; "
                        "your audio files are never touched)")
    p.add_argument("--json", action="store_true", help="print the whole audit as JSON")
    p.add_argument("--top", type=int, default=12, help="findings shown in the terminal (default 12)")
    p.add_argument("--no-fingerprints", action="store_true",
                   help="skip Chromaprint fingerprints (embeddings alone find duplicates; no audio is decoded "
                        "when embeddings are stored)")
    p.add_argument("--folds", type=int, default=AuditConfig.folds, help="leave-artist-out folds of the mislabel check")
    p.add_argument("--seed", type=int, default=AuditConfig.seed)
    p.set_defaults(handler=cmd_audit)


def cmd_audit(args) -> int:
    import json

    from genrify.audit import AuditConfig, apply_exclusions, audit_dataset
    from genrify.audit import render
    from genrify.errors import ConfigError

    if args.folds < 2:
        raise ConfigError("--folds must be at least 2")
    from genrify.cli.tag import _Progress

    # One bar per stage (embedding, cross-validation, fingerprints, checks) on a terminal: the
    # cross-validation alone is most of a minute on a few dozen songs.
    with _Progress() as bar:
        result = audit_dataset(args.dataset, config=AuditConfig(folds=args.folds, seed=args.seed),
                               fingerprints=not args.no_fingerprints, progress=bar if sys.stderr.isatty() else None)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(terminal_safe(render.text(result, top=args.top), lines=True))
    if args.out:
        paths = render.write_report(result, args.out)
        print(terminal_safe(f"report: {', '.join(str(p) for p in paths)}"), file=sys.stderr if args.json else sys.stdout)
    if args.apply:
        path, n = apply_exclusions(result)
        print(terminal_safe(f"exclusion list: {path} ({n} tracks left out of train and evaluate; delete it to undo)"),
              file=sys.stderr if args.json else sys.stdout)
    return 0
