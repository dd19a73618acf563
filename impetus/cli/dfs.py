"""``impetus dfs log``, ``watch``, ``simulate`` and ``bound``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from impetus.cli.common import print_list
from impetus.core.config import (
    ENV_ENDPOINT,
    ENV_NODE_GROUPS,
    ENV_TABLE_PREFIX,
    ENV_TABLES,
    AwsSettings,
    read_deployed_settings,
    read_local_settings,
)
from impetus.core.exceptions import ImpetusError
from impetus.scaler.config import parse_node_groups
from impetus.scaler.sim import policies as simpolicies
from impetus.scaler.sim import simulate, traces
from impetus.scaler.sim.fleet import Failures


class DfsCliError(ImpetusError):
    """An AWS call of ``impetus dfs`` failed (one line, exit 1)."""


def _target() -> tuple[AwsSettings, dict[str, str]]:
    """Where to look, in the client's order: the environment when it names a deployment,
    else the deployment ``impetus config from-stack`` saved (its generated table and
    group names), else the local stack."""
    names = (ENV_ENDPOINT, ENV_TABLE_PREFIX, ENV_TABLES, ENV_NODE_GROUPS)
    if any(os.environ.get(v) for v in names):
        return AwsSettings.from_env(), parse_node_groups(os.environ.get(ENV_NODE_GROUPS))
    deployed = read_deployed_settings()
    if deployed.get("tables"):
        settings = AwsSettings.from_env()
        region = deployed.get("region") or settings.region
        settings = dataclasses.replace(settings, region=region, tables=deployed["tables"])
        return settings, dict(deployed.get("node_groups") or {})
    local = read_local_settings()
    if not local:
        return AwsSettings.from_env(), {}
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
    log.add_argument("--json", action="store_true", help="the decisions as one JSON array")
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
    sim.add_argument(
        "--trace",
        action="append",
        choices=(*traces.TRACES, "all"),
        help="trace to replay (repeatable; 'all': every trace; default bursty)",
    )
    sim.add_argument(
        "--seeds",
        help="comma-separated fleet seeds (boot times, dispatch, failures), e.g. 7,8,9: "
        "prints medians and the worst seed per trace and which targets impetus meets",
    )
    sim.add_argument(
        "--spot-rate",
        type=float,
        default=0.0,
        help="Spot interruption notices per node-hour, e.g. 0.05 (default 0)",
    )
    sim.add_argument(
        "--failed-boots",
        type=float,
        default=0.0,
        help="probability that a launch never boots, e.g. 0.02 (default 0)",
    )
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


def _trace_names(args: argparse.Namespace) -> list[str]:
    names = args.trace or ["bursty"]
    return list(traces.TRACES) if "all" in names else list(dict.fromkeys(names))


def _seeds(raw: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in raw.split(",") if x.strip())
    except ValueError as exc:
        raise DfsCliError(f"--seeds must be comma-separated integers, got {raw!r}") from exc
    if not seeds:
        raise DfsCliError("--seeds needs at least one seed")
    return seeds


def _failures(args: argparse.Namespace) -> Failures:
    if args.spot_rate < 0 or not 0 <= args.failed_boots < 1:
        raise DfsCliError("--spot-rate must be >= 0 and --failed-boots in [0, 1)")
    return Failures(spot_rate=args.spot_rate, failed_boot=args.failed_boots)


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.target_latency <= 0:
        raise DfsCliError("--target-latency must be > 0")
    failures = _failures(args)
    if args.seeds is not None:
        return _simulate_seeds(args, _seeds(args.seeds), failures)
    rows: list[dict[str, Any]] = []  # --json: one array over every trace
    for name in _trace_names(args):
        trace = traces.make(name, seed=args.seed)
        results = [
            simulate.run(trace, p, target_latency=args.target_latency, failures=failures)
            for p in (args.policy or simpolicies.POLICIES)
        ]
        if args.json:
            rows += [{"trace": trace.name, **r.row()} for r in results]
        else:
            print(
                f"trace {trace.name}: {len(trace.jobs)} jobs over {trace.length / 60:.0f} min, "
                f"{trace.bursts} burst(s), {failures.label()}"
            )
            print(simulate.table(results))
        _plot(args, results, Path(f"impetus-dfs-{trace.name}.png"))
    if args.json:
        print_list(rows)
    return 0


def _simulate_seeds(args: argparse.Namespace, seeds: tuple[int, ...], failures: Failures) -> int:
    from impetus.scaler.sim import compare

    settings = (Failures(), failures) if failures else (Failures(),)
    summaries = compare.run(
        _trace_names(args),
        args.policy or compare.COMPARED,
        seeds,
        settings,
        args.target_latency,
        args.seed,
    )
    if args.json:
        rows = [
            {
                "trace": s.trace,
                "failures": s.failures.label(),
                "policy": s.policy,
                **{m: [f(r) for r in s.results] for m, f in compare.METRICS.items()},
                "seeds": list(seeds),
            }
            for s in summaries
        ]
        print_list(rows)
    else:
        print(f"fleet seeds {', '.join(map(str, seeds))}; each cell: median (worst @seed)")
        print(compare.table(summaries))
        for line in compare.targets(summaries):
            print(line)
    for name in _trace_names(args):  # the first seed, under the failures asked for
        shown = [s.results[0] for s in summaries if s.trace == name and s.failures == failures]
        _plot(args, shown, Path(f"impetus-dfs-{name}.png"))
    return 0


def _plot(args: argparse.Namespace, results: list, default: Path) -> None:
    if args.no_plot or not results:
        return
    several = len(_trace_names(args)) > 1
    path = args.plot or default
    if several and args.plot:  # one PNG per trace: the trace's name goes in
        path = args.plot.with_name(f"{args.plot.stem}-{results[0].trace}{args.plot.suffix}")
    try:
        path = simulate.plot(results, path)
    except ImportError as exc:
        raise DfsCliError(f"the plot needs matplotlib ({exc}); or pass --no-plot") from exc
    if not args.json:
        print(f"plot: {path}")


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
    if args.json:  # one array, as every listing (docs/cli.md, "JSON output")
        print_list(entries)
        return 0
    for entry in entries:
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
        for node in d.get("retire") or []:
            print(f"{'':20}retire {node} (idle: terminate with decrement, then tell it)")
    if not entries:
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
