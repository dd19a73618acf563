"""``impetus dfs log``, ``watch``, ``simulate`` and ``bound``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from impetus.core.config import (
    ENV_ENDPOINT,
    ENV_NODE_GROUPS,
    ENV_TABLE_PREFIX,
    ENV_TABLES,
    AwsSettings,
    read_local_settings,
)
from impetus.core.exceptions import ImpetusError
from impetus.scaler.config import parse_node_groups
from impetus.scaler.sim import policies as simpolicies
from impetus.scaler.sim import simulate, traces


class DfsCliError(ImpetusError):
    """An AWS call of ``impetus dfs`` failed (one line, exit 1)."""


def _target() -> tuple[AwsSettings, dict[str, str]]:
    """Where to look: the environment when it names a deployment, else the local stack."""
    names = (ENV_ENDPOINT, ENV_TABLE_PREFIX, ENV_TABLES, ENV_NODE_GROUPS)
    configured = any(os.environ.get(v) for v in names)
    local = {} if configured else read_local_settings()
    if not local:
        return AwsSettings.from_env(), parse_node_groups(os.environ.get(ENV_NODE_GROUPS))
    from impetus.local import credentials

    credentials.use_in_this_process(credentials.ADMIN)  # the local moto enforces IAM
    settings = AwsSettings(
        region=local.get("region") or AwsSettings.region,
        endpoint_url=local.get("endpoint_url"),
        table_prefix=local.get("table_prefix") or AwsSettings.table_prefix,
    )
    return settings, dict(local.get("node_groups") or {})


def register(subparsers: Any) -> None:
    dfs = subparsers.add_parser("dfs", help="autoscaling: decision log, simulator")
    commands = dfs.add_subparsers(
        dest="dfs_command", metavar="{log,watch,simulate,bound}", required=True
    )

    log = commands.add_parser("log", help="show DFS's recent decisions with their reasons")
    log.add_argument("--limit", type=int, default=20, help="decisions to show (default 20)")
    log.add_argument("--group", help="only this node class")
    log.add_argument("--json", action="store_true", help="one JSON object per decision")
    log.set_defaults(func=cmd_log)

    watch = commands.add_parser("watch", help="print the fleet and backlog as they change")
    watch.add_argument(
        "--until-idle",
        action="store_true",
        help="exit once nodes came up and went back to zero with nothing waiting",
    )
    watch.add_argument("--timeout", type=float, default=0, help="give up after S seconds")
    watch.set_defaults(func=cmd_watch)

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
    sim.add_argument(
        "--target-latency",
        type=float,
        default=simpolicies.TARGET_LATENCY,
        help="the stream's target_latency in seconds (default: the property's default)",
    )
    sim.add_argument("--json", action="store_true", help="results as JSON")
    sim.set_defaults(func=cmd_simulate)

    bnd = commands.add_parser(
        "bound", help="the cheapest clairvoyant fleet at Dask adaptive's p95, per idle floor"
    )
    bnd.add_argument("--trace", choices=traces.TRACES, default="bursty")
    bnd.add_argument("--seed", type=int, default=1, help="trace seed (default 1)")
    bnd.add_argument(
        "--fleet-seed",
        type=int,
        action="append",
        help="simulated fleet's seed: boot times, dispatch (repeatable; default 7 8 9)",
    )
    bnd.add_argument(
        "--idle-floor",
        type=float,
        action="append",
        help="idle floor in seconds to try (repeatable; default 60 30 10 3)",
    )
    bnd.add_argument(
        "--family",
        choices=("fixed", "per-burst"),
        default="fixed",
        help="fixed: N nodes per burst, N one number, future known; per-burst: "
        "ceil(jobs due / J) nodes per burst, future unknown (default fixed)",
    )
    bnd.set_defaults(func=cmd_bound)


def cmd_simulate(args: argparse.Namespace) -> int:
    trace = traces.make(args.trace, seed=args.seed)
    if args.target_latency <= 0:
        raise DfsCliError("--target-latency must be > 0")
    results = [
        simulate.run(trace, name, target_latency=args.target_latency)
        for name in (args.policy or simpolicies.POLICIES)
    ]
    if args.json:
        print(json.dumps([{"trace": trace.name, **r.row()} for r in results], indent=2))
    else:
        print(
            f"trace {trace.name}: {len(trace.jobs)} jobs over {trace.length / 60:.0f} min, "
            f"{trace.bursts} burst(s)"
        )
        print(simulate.table(results))
    if not args.no_plot:
        try:
            path = simulate.plot(results, args.plot or Path(f"impetus-dfs-{trace.name}.png"))
        except ImportError as exc:
            raise DfsCliError(f"the plot needs matplotlib ({exc}); or pass --no-plot") from exc
        if not args.json:
            print(f"plot: {path}")
    return 0


def cmd_bound(args: argparse.Namespace) -> int:
    from impetus.scaler.sim import bound

    trace = traces.make(args.trace, seed=args.seed)
    floors = tuple(args.idle_floor or bound.FLOORS)
    if any(f < 0 for f in floors):
        raise DfsCliError("--idle-floor must be >= 0")
    print(f"trace {trace.name}: {len(trace.jobs)} jobs, {trace.bursts} burst(s)")
    seeds = tuple(args.fleet_seed or bound.SEEDS)
    print(bound.table(bound.bound(trace, floors, seeds, args.family), args.family))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from impetus.storage.decisions import DecisionLog

    if args.limit < 1:
        raise DfsCliError("--limit must be >= 1")
    settings, _ = _target()
    try:
        entries = DecisionLog.from_settings(settings).recent(args.limit, args.group)
    except (BotoCoreError, ClientError) as exc:
        raise DfsCliError(f"cannot read the decision log: {exc}") from exc
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


def _fleet(asg: Any, groups: dict[str, str], queue: Any) -> tuple[int, int, str]:
    """(nodes in service, due + running jobs, a one-line picture)."""
    names = sorted(set(groups.values()))
    described = asg.describe_auto_scaling_groups(AutoScalingGroupNames=names)
    parts, nodes = [], 0
    for g in described["AutoScalingGroups"]:
        up = sum(1 for i in g["Instances"] if i["LifecycleState"] == "InService")
        nodes += up
        parts.append(f"{g['AutoScalingGroupName']}: {up} node(s) (desired {g['DesiredCapacity']})")
    work = sum(s["counts"]["waiting"] + s["counts"]["running"] for s in queue.list_streams())
    return nodes, work, f"{'; '.join(parts) or 'no node groups'}; {work} job(s) due or running"


def cmd_watch(args: argparse.Namespace) -> int:
    from impetus.core import aws
    from impetus.storage.queue import Queue

    settings, groups = _target()
    if not groups:
        raise DfsCliError(f"no node groups: set {ENV_NODE_GROUPS} or run `impetus local up`")
    asg, queue = aws.client("autoscaling", settings), Queue(settings)
    start, last, seen_nodes = time.monotonic(), "", False
    while not args.timeout or time.monotonic() - start < args.timeout:
        try:
            nodes, work, line = _fleet(asg, groups, queue)
        except (BotoCoreError, ClientError) as exc:
            raise DfsCliError(f"cannot read the fleet: {exc}") from exc
        if line != last:
            print(f"[dfs {time.monotonic() - start:5.1f}s] {line}", flush=True)
            last = line
        seen_nodes = seen_nodes or nodes > 0
        if args.until_idle and seen_nodes and nodes == 0 and work == 0:
            print("[dfs] fleet back to zero", flush=True)
            return 0
        time.sleep(0.5)
    print(f"[dfs] still watching after {args.timeout:g}s: giving up", file=sys.stderr)
    return 1
