"""``impetus watch [ID]``: the live view (see impetus/cli/watchview.py)."""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

from impetus.cli import watchview
from impetus.cli.common import api, stream_api
from impetus.core.config import ClientSettings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "watch", help="live view: backlog, running, done/s, errors, nodes, workers"
    )
    parser.add_argument("id", nargs="?", help="watch only this stream (ends when it is deleted)")
    parser.add_argument("--interval", type=_interval, default=1.0, help="seconds between frames")
    parser.add_argument("--once", action="store_true", help="draw one frame and exit")
    parser.add_argument("--frames", type=_frames, help="draw this many frames and exit")
    parser.set_defaults(func=cmd_watch)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError("must be between 0.1 and 3600 seconds")
    return value


def _frames(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return int(text)


def cmd_watch(args: argparse.Namespace) -> int:
    frames = 1 if args.once else args.frames
    title = ClientSettings.resolve().api_url
    client = stream_api(args.id) if args.id else api()  # one stream: with its key
    # The terminal's width ($COLUMNS, else 80 when not a terminal); never under 80.
    width = max(watchview.WIDTH, shutil.get_terminal_size().columns)
    return watchview.watch(client, sys.stdout, args.id, args.interval, frames, title, width=width)
