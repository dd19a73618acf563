"""``impetus dfs log`` and ``impetus dfs simulate``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from impetus.dfs import simpolicies, simulate, traces


def register(subparsers: Any) -> None:
    dfs = subparsers.add_parser("dfs", help="autoscaling: decision log, simulator")
    commands = dfs.add_subparsers(dest="dfs_command", metavar="{log,simulate}", required=True)

    log = commands.add_parser("log", help="show DFS's recent decisions with their reasons")
    log.add_argument("--limit", type=int, default=20, help="decisions to show (default 20)")
    log.add_argument("--group", help="only this node class")
    log.add_argument("--json", action="store_true", help="one JSON object per decision")
    log.set_defaults(func=cmd_log)

    sim = commands.add_parser("simulate", help="replay an arrival trace through the policies")
    sim.add_argument("--trace", choices=traces.TRACES, default="bursty")
    sim.add_argument(
        "--policy",
        action="append",
        choices=simpolicies.POLICIES,
        help="policy to run (repeatable; default: all)",
    )
    sim.add_argument("--plot", type=Path, help="PNG path (default impetus-dfs-<trace>.png)")
    sim.add_argument("--no-plot", action="store_true", help="skip the plot")
    sim.add_argument("--seed", type=int, default=1, help="trace seed (default 1)")
    sim.add_argument("--json", action="store_true", help="results as JSON")
    sim.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    trace = traces.make(args.trace, seed=args.seed)
    results = [simulate.run(trace, name) for name in (args.policy or simpolicies.POLICIES)]
    if args.json:
        print(json.dumps([{"trace": trace.name, **r.row()} for r in results], indent=2))
    else:
        print(
            f"trace {trace.name}: {len(trace.jobs)} jobs over {trace.length / 60:.0f} min, "
            f"{trace.bursts} burst(s)"
        )
        print(simulate.table(results))
    if not args.no_plot:
        path = simulate.plot(results, args.plot or Path(f"impetus-dfs-{trace.name}.png"))
        if not args.json:
            print(f"plot: {path}")
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from impetus.dfs.decisions import DecisionLog

    if args.limit < 1:
        raise argparse.ArgumentTypeError("--limit must be >= 1")
    entries = DecisionLog.from_settings().recent(limit=args.limit, node_class=args.group)
    for entry in entries:
        if args.json:
            print(json.dumps(entry, default=str))
            continue
        when = time.strftime("%H:%M:%S", time.localtime(float(entry["at_epoch"])))
        d = entry["decision"]
        print(
            f"{when} {d['node_class']:<10} {d['action']:<9} desired {d['previous']}->"
            f"{d['desired']} (need {d['needed']}) {d['reason']}"
        )
        for node in d.get("drain") or []:
            print(f"{'':20}drain {node}")
        for node in d.get("terminate") or []:
            print(f"{'':20}terminate {node} (decrement)")
    if not entries and not args.json:
        print("no decisions recorded")
    return 0
