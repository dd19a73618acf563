"""A clairvoyant bound for the simulator: how cheap can a fleet be at a given p95 wait?

``impetus dfs bound --trace bursty`` answers, per idle floor and seed, with the cheapest
member of a family of policies that know the whole trace yet obey the scale-in rules:

- it launches only when a burst's first job is due (a fleet at zero gets ``N`` nodes at
  that second, as the API's nudge would have it; no pre-warming: nothing is known to
  the real DFS before a job exists), and never again within the burst;
- it terminates a node the very second it has been idle for the floor (no ticks to
  agree, no heartbeat or drain latency), unless the trace sends more work within 60 s
  (then keeping it is cheaper than a new 60 s minimum);
- the same boot times (45-75 s), billing (per second, 60 s minimum) and dispatch as
  every other policy (impetus.scaler.sim.fleet).

For each floor it tries every ``N`` and reports the cheapest whose p95 wait is no worse
than Dask adaptive's on the same trace and seed. ``N`` is one number for the whole
trace: picking it per burst with hindsight would also pick lucky boot draws.

``--family per-burst`` tries a causal family instead, which sizes each burst by what it
sees: ``ceil(jobs due / J)`` nodes at the burst's first due second (the jobs of the
first batch that have arrived), terminated the second the floor allows, with no
knowledge of work to come; ``J`` (jobs per node) is chosen with hindsight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from impetus.scaler.sim import simulate, traces
from impetus.scaler.sim.fleet import Fleet

KEEP_FOR = 60.0  # keep an idle node when more work arrives within this many seconds
FLOORS = (60.0, 30.0, 10.0, 3.0)
SEEDS = (7, 8, 9)


class Clairvoyant:
    """``N`` nodes at each burst's first due job; scale-in at exactly the idle floor."""

    def __init__(self, fleet: Fleet, nodes: int, floor: float) -> None:
        self.nodes, self.floor = nodes, floor
        self.arrivals = [a for a, _ in fleet.trace.jobs]
        self.next = 0

    def _more_work_within(self, t: float, seconds: float) -> bool:
        while self.next < len(self.arrivals) and self.arrivals[self.next] <= t:
            self.next += 1
        return self.next < len(self.arrivals) and self.arrivals[self.next] <= t + seconds

    def act(self, fleet: Fleet) -> None:
        if fleet.queue and not fleet.alive():
            fleet.launch(self.nodes)
            return
        if self._more_work_within(fleet.t, KEEP_FOR):
            return
        idle = [
            n
            for n in fleet.ready_nodes()
            if not n.busy and n.idle_since is not None and fleet.t - n.idle_since >= self.floor
        ]
        fleet.terminate(idle)


class PerBurst(Clairvoyant):
    """``ceil(jobs due / J)`` nodes at each burst's first due second; scale-in at exactly
    the idle floor; no knowledge of the future."""

    def __init__(self, fleet: Fleet, per_node: int, floor: float) -> None:
        super().__init__(fleet, 0, floor)
        self.per_node = per_node

    def act(self, fleet: Fleet) -> None:
        if fleet.queue and not fleet.alive():
            fleet.launch(min(fleet.max_nodes, math.ceil(len(fleet.queue) / self.per_node)))
            return
        idle = [
            n
            for n in fleet.ready_nodes()
            if not n.busy and n.idle_since is not None and fleet.t - n.idle_since >= self.floor
        ]
        fleet.terminate(idle)


PER_NODE = (5, 8, 10, 12, 15, 20, 25, 30, 40, 60)  # jobs per node tried by "per-burst"
FAMILIES = ("fixed", "per-burst")


def candidates(family: str, fleet: Fleet) -> tuple[int, ...]:
    return tuple(range(1, fleet.max_nodes + 1)) if family == "fixed" else PER_NODE


def run(
    trace: traces.Trace, size: int, floor: float, seed: int, family: str = "fixed"
) -> simulate.Result:
    policy = Clairvoyant if family == "fixed" else PerBurst
    return simulate.run(trace, family, seed=seed, make=lambda fleet: policy(fleet, size, floor))


@dataclass(frozen=True)
class Bound:
    floor: float
    seed: int
    dask_p95: float
    dask_node_seconds: float
    nodes: int | None  # cheapest N (or J) with p95 <= dask's (None: none gets there)
    p95: float | None
    node_seconds: float | None


def bound(trace: traces.Trace, floors=FLOORS, seeds=SEEDS, family: str = "fixed") -> list[Bound]:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: one of {', '.join(FAMILIES)}")
    out = []
    for seed in seeds:
        dask = simulate.run(trace, "dask-adaptive", seed=seed)
        for floor in floors:
            best: simulate.Result | None = None
            best_n = None
            for n in candidates(family, Fleet(trace)):
                result = run(trace, n, floor, seed, family)
                if result.p95_wait <= dask.p95_wait and (
                    best is None or result.node_seconds < best.node_seconds
                ):
                    best, best_n = result, n
            out.append(
                Bound(
                    floor,
                    seed,
                    dask.p95_wait,
                    dask.node_seconds,
                    best_n,
                    best.p95_wait if best else None,
                    best.node_seconds if best else None,
                )
            )
    return out


def table(bounds: list[Bound], family: str = "fixed") -> str:
    size = "bound N" if family == "fixed" else "bound J (jobs/node)"
    lines = [
        f"| idle floor s | seed | dask p95 s | dask node-s | {size} | bound p95 s | bound node-s |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in bounds:
        found = b.nodes is not None
        lines.append(
            f"| {b.floor:g} | {b.seed} | {b.dask_p95:.1f} | {b.dask_node_seconds:.0f} | "
            f"{b.nodes if found else '-'} | {f'{b.p95:.1f}' if found else '-'} | "
            f"{f'{b.node_seconds:.0f}' if found else '-'} |"
        )
    return "\n".join(lines)
