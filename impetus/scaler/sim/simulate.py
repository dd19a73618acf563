"""The DFS simulator: replay an arrival trace through a scaling policy, measure, plot.

``impetus dfs simulate --trace bursty`` runs every policy (or those given with
``--policy``) on the same trace and the same simulated boot times, and prints per
policy: p50/p95 queue wait (arrival to start), node-seconds billed (per second, 60 s
minimum per instance), scale actions, reversals (a scale-in within 5 minutes of the
previous scale-out) and interrupted jobs (running when their node was terminated). The
plot shows backlog and nodes over time, one panel per policy.

The run goes on past the trace until the queue is empty and, at most 20 minutes later,
stops: nodes still up are billed until then (a policy slow to scale in pays for it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from impetus.scaler.policy import PolicyParams
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


def plot(results: list[Result], path: Path) -> Path:
    """Backlog and nodes over time, one panel per policy (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(10, 2.4 * len(results)), sharex=True)
    axes = [axes] if len(results) == 1 else list(axes)
    for ax, result in zip(axes, results, strict=True):
        t = [s[0] / 60 for s in result.series]
        ax.fill_between(t, [s[1] for s in result.series], color="tab:orange", alpha=0.4, lw=0)
        ax.set_ylabel("backlog (jobs)", color="tab:orange")
        nodes = ax.twinx()
        nodes.step(t, [s[2] for s in result.series], where="post", color="tab:blue", lw=1.2)
        nodes.step(t, [s[3] for s in result.series], where="post", color="tab:blue", lw=0.6, ls=":")
        nodes.set_ylabel("nodes", color="tab:blue")
        nodes.set_ylim(bottom=0)
        ax.set_title(
            f"{result.policy}: p95 wait {result.p95_wait:.0f}s, "
            f"{result.node_seconds:.0f} node-s, {result.reversals} reversals",
            fontsize=9,
        )
    axes[-1].set_xlabel(
        f"minutes ({results[0].trace} trace); nodes: launched (solid), in service (dotted)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
