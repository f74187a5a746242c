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
    args = resolve_defaults(parser.parse_args(argv))
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


class FieldDefault:
    """An option's default that is the default of field ``name`` of the configuration dataclass
    ``where`` (``"module:Class"``), read only when ``--help`` shows it (``%(default)s``) or
    :func:`resolve_defaults` hands the options to a handler. For a command whose dataclass imports
    NumPy: it registers without importing it (``genrify --help`` stays light), and the value is still
    spelt once, by the dataclass (a light one is read directly: ``default=TrainConfig.epochs``)."""

    def __init__(self, where: str, name: str) -> None:
        self.where, self.name = where, name

    def value(self):
        """The field's default (imports the dataclass's module)."""
        import dataclasses

        module, _, cls_name = self.where.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        if self.name not in {f.name for f in dataclasses.fields(cls)}:
            raise AttributeError(f"{cls_name} has no field {self.name!r}")
        return getattr(cls, self.name)  # a plain default stays on the class

    def __str__(self) -> str:
        return str(self.value())

    def __repr__(self) -> str:
        return f"FieldDefault({self.where!r}, {self.name!r})"


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every option left at a :class:`FieldDefault` given that field's default."""
    for key, value in vars(args).items():
        if isinstance(value, FieldDefault):
            setattr(args, key, value.value())
    return args


def example_epilog(*lines: str) -> str:
    """Format an 'examples' block for a sub-command's ``--help``."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


if __name__ == "__main__":
    sys.exit(main())
