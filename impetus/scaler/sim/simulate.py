"""The DFS simulator: replay an arrival trace through a scaling policy, measure, plot.

``impetus dfs simulate --trace bursty`` runs every policy (or those given with
``--policy``) on the same trace and the same simulated boot times, and prints per
policy: p50/p95 queue wait (arrival to start), node-seconds billed (per second, 60 s
minimum per instance), scale actions, reversals (a scale-in within 5 minutes of the
previous scale-out) and interrupted jobs (running when their node was terminated). The
plot shows backlog and nodes over time, every policy on the same axes.

The run goes on past the trace until the queue is empty and, at most 20 minutes later,
stops: nodes still up are billed until then (a policy slow to scale in pays for it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from impetus.scaler.params import PolicyParams
from impetus.scaler.sim import policies as simpolicies
from impetus.scaler.sim import traces
from impetus.scaler.sim.fleet import Event, Failures, Fleet

REVERSAL_WINDOW = 300.0
TAIL = 1200.0  # seconds simulated after the last job started


@dataclass(frozen=True)
class Result:
    policy: str
    trace: str
    jobs: int
    p50_wait: float
    p95_wait: float
    node_seconds: float
    scale_actions: int
    reversals: int
    bursts: int
    interrupted: int
    unfinished: int  # jobs lost: not done when the run ended
    series: tuple[tuple[float, int, int, int], ...]
    length: float = 0.0  # the trace's seconds of arrivals
    events: tuple[Event, ...] = ()  # failures (Spot notices, failed boots)
    failures: Failures = field(default_factory=Failures)
    seed: int = 7

    @property
    def reversals_per_burst(self) -> float:
        return self.reversals / max(1, self.bursts)

    def row(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "p50 wait s": round(self.p50_wait, 1),
            "p95 wait s": round(self.p95_wait, 1),
            "node-seconds": round(self.node_seconds),
            "scale actions": self.scale_actions,
            "reversals": self.reversals,
            "interrupted": self.interrupted,
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


def reversals(actions: list) -> int:
    """Scale-ins that come within REVERSAL_WINDOW of the last scale-out (once per turn)."""
    count, last_up, turned = 0, None, False
    for action in actions:
        if action.direction == "up":
            last_up, turned = action.t, False
        elif last_up is not None and not turned and action.t - last_up <= REVERSAL_WINDOW:
            count, turned = count + 1, True
    return count


def run(
    trace: traces.Trace,
    policy_name: str,
    params: PolicyParams | None = None,
    seed: int = 7,
    target_latency: float = simpolicies.TARGET_LATENCY,
    make=None,
    failures: Failures | None = None,
) -> Result:
    """``make(fleet)``: a policy not in simpolicies (impetus.scaler.sim.bound's)."""
    failures = failures or Failures()
    fleet = Fleet(
        trace,
        seed=seed,
        target_latency=target_latency,
        failures=failures,
        autoreplace=policy_name in simpolicies.IN_AUTO_SCALING_GROUP,
    )
    policy = make(fleet) if make else simpolicies.make(policy_name, fleet, params)
    end = trace.length + TAIL
    while fleet.t <= end:
        fleet.step()
        policy.act(fleet)
        fleet.record()
        if fleet.finished() and fleet.t >= trace.length and not fleet.alive():
            break
        fleet.t += 1.0
    waits = [j.start - j.arrival for j in fleet.jobs if j.start is not None]
    return Result(
        policy=policy_name,
        trace=trace.name,
        jobs=len(fleet.jobs),
        p50_wait=percentile(waits, 50),
        p95_wait=percentile(waits, 95),
        node_seconds=sum(n.billed(fleet.t) for n in fleet.nodes),
        scale_actions=len(fleet.actions),
        reversals=reversals(fleet.actions),
        bursts=trace.bursts,
        interrupted=fleet.interrupted(),
        unfinished=sum(1 for j in fleet.jobs if j.done is None or j.done > fleet.t),
        series=tuple(fleet.series),
        length=trace.length,
        events=tuple(fleet.events),
        failures=failures,
        seed=seed,
    )


def table(results: list[Result]) -> str:
    """A Markdown table (also readable in a terminal)."""
    rows = [r.row() for r in results]
    heads = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in heads]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(str(r[h]).ljust(w) for h, w in zip(heads, widths, strict=True)) + " |"
        for r in rows
    ]
    return "\n".join([line, rule, *body])


COLORS = {
    "impetus": "tab:blue",
    "dask-adaptive": "tab:green",
    "target-tracking": "tab:red",
    "static": "tab:gray",
}
MARKERS = {"spot-notice": ("v", "Spot notice"), "failed-boot": ("x", "failed boot")}


def plot(results: list[Result], path: Path) -> Path:
    """Every policy on shared axes (needs matplotlib): backlog on top; below, nodes in
    service (thick) and launched (thin, dashed); failures marked on their policy's line.
    The x-axis is the trace's length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]}
    )
    length = max(r.length for r in results) / 60 or None
    for r in results:
        color = COLORS.get(r.policy, "black")
        t = [s[0] / 60 for s in r.series]
        label = f"{r.policy}: p95 {r.p95_wait:.0f} s, {r.node_seconds:.0f} node-s"
        top.step(t, [s[1] for s in r.series], where="post", color=color, lw=1.2, label=label)
        bottom.step(t, [s[3] for s in r.series], where="post", color=color, lw=2.2, label=label)
        bottom.step(t, [s[2] for s in r.series], where="post", color=color, lw=0.9, ls="--")
        _mark_failures(bottom, r, color)
    top.set_ylabel("backlog (jobs waiting)")
    top.legend(loc="upper left", fontsize=8, title="policy (color)", title_fontsize=8)
    bottom.set_ylabel("nodes")
    bottom.set_ylim(bottom=0)
    bottom.legend(handles=_key(plt, results), loc="upper left", fontsize=8)
    if length:
        bottom.set_xlim(0, length)
    seed = results[0].seed
    top.set_title(
        f"{results[0].trace} trace, fleet seed {seed}, {results[0].failures.label()}", fontsize=10
    )
    bottom.set_xlabel("minutes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _key(plt, results: list[Result]) -> list:
    """Legend entries for the line styles and the failure markers that occur."""
    line = plt.Line2D
    key = [
        line([], [], color="black", lw=2.2, label="in service"),
        line([], [], color="black", lw=0.9, ls="--", label="launched (booting too)"),
    ]
    kinds = {e.kind for r in results for e in r.events}
    for kind, (marker, label) in MARKERS.items():
        if kind in kinds:
            key.append(line([], [], color="black", marker=marker, ls="", label=label))
    return key


def _mark_failures(ax, result: Result, color: str) -> None:
    """A marker per failure at its time, on the policy's in-service line."""
    in_service = {s[0]: s[3] for s in result.series}
    for kind, (marker, _) in MARKERS.items():
        times = [e.t for e in result.events if e.kind == kind]
        if times:
            ys = [in_service.get(t, 0) for t in times]
            ax.scatter([t / 60 for t in times], ys, marker=marker, s=60, color=color, zorder=3)
