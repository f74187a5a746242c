"""Command line: ``genrify <command> ...``. Thin: parse, call, print.

Each command group lives in its own module with a ``register(subparsers)``
function; heavy imports happen inside the command handlers so that
``genrify --help`` stays fast. A :class:`~genrify.errors.GenrifyError` becomes
one line on stderr and exit code 1; a bad command line exits with 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules under ``genrify.cli`` that register commands, in help order.
COMMAND_MODULES = ("train", "data", "audit", "predict", "tag", "serve", "collect")


def build_parser() -> argparse.ArgumentParser:
    from genrify import __version__

    parser = argparse.ArgumentParser(
        prog="genrify",
        description="Tell the genre of a piece of music from its sound.",
        epilog="Run 'genrify COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"genrify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"genrify.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"genrify.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from genrify.errors import GenrifyError
    from genrify.fileio import terminal_safe

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        result = args.handler(args)
    except GenrifyError as exc:
        print(f"genrify: error: {terminal_safe(str(exc))}", file=sys.stderr)  # messages name files
        return 1
    except KeyboardInterrupt:
        print("genrify: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(result or 0)


def example_epilog(*lines: str) -> str:
    """Format an 'examples' block for a sub-command's ``--help``."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


if __name__ == "__main__":
    sys.exit(main())
