"""``impetus capacity``: the capacity model (impetus.capacity) on a measured mix."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from impetus.capacity import report
from impetus.capacity.mix import Mix
from impetus.capacity.model import DEFAULT_JOBS_PER_RUN, Scenario, checks
from impetus.core.exceptions import ConfigError

# The mix bench/capacity_mix.py measured, checked in (a source checkout's docs/).
DEFAULT_MIX = Path(__file__).resolve().parents[2] / "docs" / "capacity-mix.json"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "capacity",
        help="capacity model: the measured request mix against AWS's limits",
        description="Scale the measured request mix (bench/capacity_mix.py) to N nodes, S "
        "streams and R jobs/s: the first limit reached and where, cost per hour, issue "
        "19's targets. Every limit's source: docs/capacity.md.",
    )
    p.add_argument("--mix", default=str(DEFAULT_MIX), help="the measured mix (JSON)")
    p.add_argument("--nodes", type=_positive_int, default=1000, help="N nodes (default 1000)")
    p.add_argument("--streams", type=_positive_int, default=100, help="S streams (default 100)")
    p.add_argument("--rate", type=_rate, default=1000.0, help="R jobs/s (default 1000)")
    p.add_argument("--busy-streams", type=_positive_int, default=1, help="streams R is spread on")
    p.add_argument(
        "--shards",
        type=_positive_int,
        default=None,
        help="queue shards per busy stream (default: the shard rule's for its rate)",
    )
    p.add_argument(
        "--jobs-per-run",
        type=_positive_int,
        default=int(DEFAULT_JOBS_PER_RUN),
        help="jobs of one run (a stream created, its jobs, the stream deleted): what a run "
        f"costs once is charged per run, not per job (default {int(DEFAULT_JOBS_PER_RUN):,}; "
        "issue 19's targets use the default)",
    )
    p.add_argument("--plot", help="write the headroom plot (PNG) here")
    p.set_defaults(func=cmd_capacity)


def cmd_capacity(args: argparse.Namespace) -> int:
    mix = Mix.load(args.mix)
    try:
        base = Scenario(
            args.nodes,
            args.streams,
            args.rate,
            args.shards,
            args.busy_streams,
            args.jobs_per_run,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(f"# Capacity model ({mix.source}, measured {mix.data.get('date_utc', '?')})\n")
    print(
        f"## N {base.nodes:,} nodes, S {base.streams:,} streams, R {base.rate:,.0f} jobs/s "
        f"on {base.busy_streams} stream(s) of {base.queue_shards} shard(s), "
        f"runs of {base.jobs_per_run:,.0f} jobs\n"
    )
    print(report.render_checks(checks(mix, base)))
    print("\n" + report.render_growth(mix, base))
    print(f"\n## N grows (R {base.rate:,.0f} jobs/s)\n")
    print(report.render_sweep(mix, base, "nodes"))
    print(f"\n## R grows (N {base.nodes:,} nodes)\n")
    print(report.render_sweep(mix, base, "rate"))
    print("\n## Issue 19's targets\n")
    print(report.render_verdicts(report.verdicts(mix, base.shards)))
    if args.plot:
        report.plot(mix, base, args.plot)
        print(f"\nplot: {args.plot}")
    return 0
