"""The ``impetus`` command.

Each command group lives in its own module of this package exposing
``register(subparsers)``; a subcommand sets ``func(args) -> int`` with ``set_defaults``.
To add a group, import its module here and append it to :data:`COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from typing import NoReturn

from impetus.cli import (
    capacity,
    dashboard,
    dfs,
    local,
    nodes,
    plot,
    stackconfig,
    store,
    streams,
    tasks,
    watch,
)
from impetus.core.exceptions import ApiError, ImpetusError

COMMAND_GROUPS = (
    local, stackconfig, streams, store, nodes, tasks, watch, dfs, capacity, plot, dashboard
)  # fmt: skip

EXIT_RUNTIME = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="impetus", description="Auto-scaling distributed processing.")
    parser.add_argument("--version", action="version", version=f"impetus {version()}")
    # Not required: a bare `impetus` asks for nothing wrong, so it gets the help (main).
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def version() -> str:
    """The installed distribution's version (pyproject.toml's, through its metadata)."""
    try:
        return importlib.metadata.version("impetus")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `impetus` alone: the help on stdout, exit 0 (docs/cli.md)
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ApiError as exc:
        # The API's own message says what was wrong ("no stream 'x'"); the status and
        # code are for programs, not for the person reading the line.
        print(f"impetus: error: {exc.message or exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except ImpetusError as exc:
        print(f"impetus: error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except BrokenPipeError:  # `impetus jobs X | head`
        sys.stderr.close()
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130
