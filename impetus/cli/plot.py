"""``impetus plot STREAM``: a PNG of when each job waited, ran and returned, per node
and worker (impetus.timeline)."""

from __future__ import annotations

import argparse
from typing import Any

from impetus import timeline
from impetus.cli.common import STREAM_ID_HELP, stream_api, write


def register(subparsers: Any) -> None:
    plot = subparsers.add_parser(
        "plot", help="draw a stream's timeline (per node and worker) as a PNG"
    )
    plot.add_argument("stream", help=STREAM_ID_HELP)
    plot.add_argument(
        "--out", metavar="FILE.png", help="where to write it (default: STREAM.png here)"
    )
    plot.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    data = timeline.gather(stream_api(args.stream), args.stream)
    from impetus import timelineplot  # matplotlib loads only for this command

    path = timelineplot.draw(data, args.out or f"{args.stream}.png")
    write(f"{path}: {len(data.bars)} jobs on {len(data.rows)} workers, {data.errors} errors")
    return 0
