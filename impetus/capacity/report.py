"""What ``impetus capacity`` prints and plots: the checks of one scenario, sweeps over N
and R (the first limit reached and where, the cost per hour of an idle and of a busy
fleet), issue 19's targets as verdicts, and a plot of the use of every limit."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from impetus.capacity import limits
from impetus.capacity.mix import Mix
from impetus.capacity.model import (
    REQUEST_CONCURRENCY,
    TARGET_USE,
    Check,
    Scenario,
    checks,
    cost_per_hour,
    dfs_tick_seconds,
    first_limit,
    is_quota,
    launch_minutes,
    max_rate,
    ramp_minutes,
    table_loads,
)

NODES = (4, 10, 100, 1000, 10000)
RATES = (10, 100, 1000, 10000, 100000)
# Issue 19's target load: 10,000 nodes, 10,000 streams, 100,000 jobs/s on one stream.
TARGET = Scenario(nodes=10000, streams=10000, rate=100000)
TARGET_RATE = 100000.0
TARGET_IDLE_USD = 1.0


def _pct(use: float) -> str:
    return "inf" if math.isinf(use) else f"{100 * use:,.1f} %"


def render_checks(found: list[Check], top: int = 12) -> str:
    rows = ["| limit | where | load | limit value | use |", "|---|---|---:|---:|---:|"]
    for c in sorted(found, key=lambda c: -c.use)[:top]:
        lim = limits.limit(c.limit)
        rows.append(
            f"| {lim.name} | {c.where} | {c.load:,.1f} | {c.capacity:,.0f} {lim.unit} "
            f"| {_pct(c.use)} |"
        )
    return "\n".join(rows)


def render_sweep(mix: Mix, base: Scenario, axis: str) -> str:
    values = NODES if axis == "nodes" else RATES
    head = "| N nodes | R jobs/s | first limit reached | where | use | idle $/h | busy $/h |"
    rows = [head, "|---:|---:|---|---|---:|---:|---:|"]
    for value in values:
        s = replace(base, **{"nodes" if axis == "nodes" else "rate": value})
        worst = first_limit(checks(mix, s))
        idle = cost_per_hour(mix, replace(s, rate=0.0))["total"]
        busy = cost_per_hour(mix, s)["total"]
        rows.append(
            f"| {s.nodes:,} | {s.rate:,.0f} | {limits.limit(worst.limit).name} | {worst.where} "
            f"| {_pct(worst.use)} | {idle:,.2f} | {busy:,.2f} |"
        )
    return "\n".join(rows)


@dataclass(frozen=True)
class Quota:
    """A raisable quota the load needs raised: to ``needed`` (the load at
    ``TARGET_USE``), through Service Quotas (``source``)."""

    name: str
    where: str
    load: float
    needed: float
    default: float
    unit: str
    source: str


@dataclass(frozen=True)
class Verdict:
    target: str
    value: str
    holds: bool
    quotas: tuple[Quota, ...] = ()


def _shards(shards: int | None) -> str:
    return "from the shard rule" if shards is None else str(shards)


def quotas_needed(found: list[Check]) -> tuple[Quota, ...]:
    """The raisable quotas the load takes above ``TARGET_USE``: to request (at least the
    load / TARGET_USE, the same headroom asked of items and partitions)."""
    out = []
    for c in sorted(found, key=lambda c: -c.use):
        lim = limits.limit(c.limit)
        if is_quota(c) and c.use > TARGET_USE:
            needed = math.ceil(c.load / TARGET_USE)
            out.append(Quota(lim.name, c.where, c.load, needed, lim.value, lim.unit, lim.source))
    return tuple(out)


def _one_stream(mix: Mix, shards: int | None) -> Verdict:
    """The rate one stream sustains under the hard limits (items, partitions, the DFS
    tick), at N 10,000; the quotas its target rate needs, apart."""
    one = Scenario(nodes=TARGET.nodes, streams=1, rate=TARGET_RATE, shards=shards)
    rate, binding = max_rate(mix, replace(one, rate=1.0), quotas=False)
    name = limits.limit(binding.limit).name
    if rate <= 0:
        value = (
            f"none: {name} at {binding.where} is over its limit ({_pct(binding.use)}) at "
            f"{one.nodes:,} nodes before any job (every node's busy polls)"
        )
    else:
        at = replace(one, rate=rate).queue_shards
        value = f"{rate:,.0f} jobs/s ({at} shards); then {name} at {binding.where}"
    return Verdict(
        f"one stream sustains >= {TARGET_RATE:,.0f} jobs/s (shards {_shards(shards)}: "
        f"{one.queue_shards} at that rate, N 10,000), hard limits",
        value,
        rate >= TARGET_RATE,
        quotas_needed(checks(mix, one)),
    )


def verdicts(mix: Mix, shards: int | None = None) -> list[Verdict]:
    """Issue 19's point-2 targets, with this mix (``shards``: None, the shard rule's)."""
    idle = cost_per_hour(mix, Scenario(nodes=10000, streams=1, rate=0.0))
    target = replace(TARGET, shards=shards)
    at_target = checks(mix, target)
    hot = [c for c in at_target if c.limit in ("partition_rcu", "partition_wcu")]
    hottest = first_limit(hot)
    tick = dfs_tick_seconds(mix, 10000, 10000, 10000)
    timeout = limits.limit("dfs_timeout").value
    return [
        _one_stream(mix, shards),
        Verdict(
            f"10,000 idle nodes cost <= ${TARGET_IDLE_USD:.2f}/h (DynamoDB, API, Lambda)",
            f"${idle['total']:,.2f}/h (DynamoDB ${idle['dynamodb']:,.2f})",
            idle["total"] <= TARGET_IDLE_USD,
        ),
        Verdict(
            f"no item or partition above {100 * TARGET_USE:.0f} % at the target load "
            f"(N 10,000, S 10,000, R {TARGET_RATE:,.0f} on one stream, shards "
            f"{target.queue_shards})",
            f"{_pct(hottest.use)}: {limits.limit(hottest.limit).name} at {hottest.where}",
            hottest.use <= TARGET_USE,
            quotas_needed(at_target),
        ),
        Verdict(
            "a DFS tick (a sweep, the longest) over 10,000 nodes and 10,000 busy streams "
            f"within half its {timeout:.0f} s timeout",
            f"{tick:,.1f} s ({limits.DDB_REQUEST_SECONDS * 1000:.0f} ms per request, "
            f"{REQUEST_CONCURRENCY} in flight)",
            tick <= TARGET_USE * timeout,
        ),
    ]


def render_verdicts(found: list[Verdict]) -> str:
    rows = ["| target | model | holds |", "|---|---|---|"]
    rows += [f"| {v.target} | {v.value} | {'yes' if v.holds else 'NO'} |" for v in found]
    asked = {(q.name, q.where): q for v in found for q in v.quotas}
    if asked:
        rows += [
            "",
            "Quotas to request (raisable, not walls: the targets above hold or not without "
            f"them; needed = the load at {100 * TARGET_USE:.0f} % use):",
            "",
            "| quota | where | load | needed | default | source |",
            "|---|---|---:|---:|---:|---|",
        ]
        for q in sorted(asked.values(), key=lambda q: -q.load / q.default):
            rows.append(
                f"| {q.name} | {q.where} | {q.load:,.0f} | {q.needed:,.0f} {q.unit} "
                f"| {q.default:,.0f} | {q.source} |"
            )
    return "\n".join(rows)


def render_growth(mix: Mix, s: Scenario) -> str:
    """How long AWS takes to grow to this scenario: tables from new, instances from none."""
    per_table: dict[str, tuple[float, float]] = {}
    for (table, _), u in table_loads(mix, s).items():
        r, w = per_table.get(table, (0.0, 0.0))
        per_table[table] = (r + u.rcu, w + u.wcu)
    initial_r = limits.limit("new_table_rru").value
    initial_w = limits.limit("new_table_wru").value
    worst = max(
        (max(ramp_minutes(r, initial_r), ramp_minutes(w, initial_w)), table)
        for table, (r, w) in per_table.items()
    )
    return (
        f"A new on-demand table reaches this load after ~{worst[0]:.0f} min of doubling "
        f"({worst[1]} table); launching {s.nodes:,} instances from none takes "
        f"~{launch_minutes(s.nodes):.0f} min (RunInstances bucket and refill)."
    )


def plot(mix: Mix, base: Scenario, path: str | Path) -> None:
    """Use of every limit (its worst place) against N (at R) and against R (at N)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, axis, values in ((axes[0], "nodes", NODES), (axes[1], "rate", RATES)):
        xs = [v for v in _grid(values)]
        curves: dict[str, list[float]] = {}
        for x in xs:
            s = replace(base, **{axis: x})
            for c in checks(mix, s):
                name = limits.limit(c.limit).name
                series = curves.setdefault(name, [0.0] * len(xs))
                series[xs.index(x)] = max(series[xs.index(x)], c.use * 100)
        for name, series in sorted(curves.items()):
            ax.plot(xs, [max(v, 1e-3) for v in series], label=name)
        ax.axhline(100, color="red", linewidth=1)
        ax.axhline(100 * TARGET_USE, color="orange", linewidth=1, linestyle="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        fixed = f"R {base.rate:,.0f} jobs/s" if axis == "nodes" else f"N {base.nodes:,}"
        ax.set_xlabel(("nodes N" if axis == "nodes" else "jobs/s R") + f" ({fixed})")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("use of the limit, % (100: throttled)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Capacity: use of each limit, S {base.streams:,} streams ({_shown(mix.source)})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _shown(source: str) -> str:
    """The mix's path relative to the working directory when under it (no checkout's
    absolute path in a committed plot)."""
    try:
        return str(Path(source).resolve().relative_to(Path.cwd()))
    except ValueError:
        return source


def _grid(values: tuple[int, ...]) -> list[float]:
    lo, hi = math.log10(values[0]), math.log10(values[-1])
    return [10 ** (lo + (hi - lo) * i / 24) for i in range(25)]
