"""``impetus tasks read PATH``: task files decoded, the original's
``base64 --decode | zlib-flate -uncompress`` in one command.

Prints each job as one JSON line, exactly as stored: values JSON cannot hold stay as
their ``{"__impetus_pickle__": ...}`` markers (nothing from a file is unpickled here).
PATH is a ``.ok``/``.err`` file, a stream's directory (all its task files) or a task
root holding stream directories (all their files); none: the default task root,
``$IMPETUS_HOME/tasks``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from impetus import taskfiles
from impetus.cli.common import same_keys, write
from impetus.core.config import tasks_root
from impetus.core.exceptions import ImpetusError


def register(subparsers: Any) -> None:
    tasks = subparsers.add_parser("tasks", help="read task files (<taskdir>/<stream>/<stage>.ok)")
    actions = tasks.add_subparsers(dest="tasks_command", metavar="{read}", required=True)
    read = actions.add_parser("read", help="decode task files to JSON, one job per line")
    read.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="task file, stream directory, or task root (default: $IMPETUS_HOME/tasks)",
    )
    read.add_argument("--json", action="store_true", help="one JSON array instead of lines")
    read.add_argument("--pretty", action="store_true", help="indented JSON")
    read.set_defaults(func=cmd_read)


def _in_dir(path: Path) -> list[Path]:
    suffixes = (taskfiles.OK_SUFFIX, taskfiles.ERR_SUFFIX)
    return sorted(p for p in path.iterdir() if p.suffix in suffixes and p.is_file())


def task_files(path: Path) -> list[Path]:
    """The task files of a file, a stream's directory or a task root (its streams')."""
    if path.is_dir():
        found = _in_dir(path) or [
            f for d in sorted(path.iterdir()) if d.is_dir() for f in _in_dir(d)
        ]
        if not found:
            raise ImpetusError(
                f"{path}: no .ok or .err task files here nor in its stream directories"
            )
        return found
    if not path.exists():
        raise ImpetusError(f"{path}: no such file or directory")
    return [path]


def decoded(path: Path) -> Iterator[dict[str, Any]]:
    """Jobs of one file, markers left in place; a bad line is a one-line error."""
    try:
        with open(path, encoding="ascii") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield taskfiles.decode_line(line, restore=False)
                except taskfiles.TaskFileError as exc:
                    raise ImpetusError(f"{path}:{number}: not a task file line ({exc})") from None
    except UnicodeDecodeError:
        raise ImpetusError(f"{path}: not a task file (not ASCII base64 lines)") from None
    except OSError as exc:
        raise ImpetusError(f"{path}: {exc.strerror or exc}") from None


def cmd_read(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [tasks_root()]
    files = [f for p in paths for f in task_files(p)]
    indent = 2 if args.pretty else None
    if args.json:
        jobs = same_keys([job for f in files for job in decoded(f)])  # one shape per list
        write(json.dumps(jobs, indent=indent, ensure_ascii=False))
        return 0
    for path in files:
        for job in decoded(path):
            write(json.dumps(job, indent=indent, ensure_ascii=False))
    return 0
