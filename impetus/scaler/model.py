"""Typed inputs and outputs of the scaling policy (plain, frozen, JSON-friendly).

The policy (impetus.scaler.policy) sees the world only through these: the DFS Lambda builds
them from DynamoDB and Auto Scaling (impetus.scaler.collect), the simulator builds them
from its simulated fleet (impetus.scaler.sim.simulate). ``Memory`` is what the policy carries
from one tick to the next (it is stored with the decision log).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_CLASS = "default"


@dataclass(frozen=True)
class StreamState:
    """One stream as DFS sees it."""

    id: str
    backlog: int  # due jobs waiting for a worker
    running: int  # jobs leased to workers now
    mpps: int = 2  # worker slots per node for this stream
    job_seconds: float = 1.0  # EWMA of a job's run time (impetus.scaler.estimate)
    target_latency: float = 30.0
    min_nodes: int = 0
    max_nodes: int | None = None
    node_class: str = DEFAULT_CLASS
    rate: float | None = None  # fleet-wide jobs/s cap
    throughput: float = 0.0  # jobs/s completed while it had work (0: not measured yet)


@dataclass(frozen=True)
class NodeState:
    """One node agent (its id is its instance id) in a group."""

    id: str
    node_class: str
    heartbeat: float  # epoch s of its last heartbeat (0: never seen, still booting)
    busy: bool  # holds jobs now
    idle_since: float | None  # epoch s since it holds none (None: busy)
    started: float  # epoch s it launched (uptime = now - started)
    protected: bool = False  # scale-in protection as Auto Scaling reports it
    state: str = "running"  # running | draining | drained (impetus.scaler.model NODE_*)
    in_service: bool = True  # Auto Scaling's lifecycle state is InService (not Pending)
    # Epoch s until which its last beat vouches for it: its next beat's due time plus a
    # grace (the item's ``expires``; 0: never seen). Idle nodes beat about once a minute.
    fresh_until: float = 0.0
    jobs: int = 0  # jobs it holds now (claimed, running or about to)


NODE_RUNNING = "running"
NODE_BOOTING = "booting"  # launched, its agent not heard from yet
NODE_DRAINING = "draining"  # asked to drain (by DFS or a lifecycle hook), finishing jobs
NODE_DRAINED = "drained"  # drained: holds no job, claims nothing, may be terminated


@dataclass(frozen=True)
class GroupState:
    """One Auto Scaling group, serving one node class."""

    node_class: str
    name: str  # the Auto Scaling group's name
    min: int
    max: int
    desired: int
    in_service: int
    pending: int  # launched, not in service yet (counted: a tick must not launch twice)
    boot_seconds: float = 60.0


@dataclass
class Memory:
    """What the policy remembers between ticks (JSON-serialisable)."""

    agree: dict[str, int] = field(default_factory=dict)  # group -> ticks agreeing on scale-in
    draining: dict[str, float] = field(default_factory=dict)  # node -> when DFS asked
    # Kept by the collector, not the policy: per stream [t, completed, running, ewma s/job]
    # (impetus.scaler.estimate), per node [idle since, jobs done] and when an instance was
    # first seen in its group (impetus.scaler.collect: a booting node's launch, to a tick).
    jobs: dict[str, list[float]] = field(default_factory=dict)
    idle: dict[str, list[float]] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # node -> first tick that saw it
    failed: dict[str, list[float]] = field(default_factory=dict)  # group -> failed boots' times
    # group -> since when its capacity has stayed above what its streams need and keep busy
    surplus: dict[str, float] = field(default_factory=dict)
    # group -> [[t, nodes]]: recent warm counts no later one superseded (impetus.scaler.warm)
    warm: dict[str, list[list[float]]] = field(default_factory=dict)
    quiet: dict[str, float] = field(default_factory=dict)  # group -> since when no work

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Memory:
        data = data or {}
        return cls(
            agree={k: int(v) for k, v in (data.get("agree") or {}).items()},
            draining={k: float(v) for k, v in (data.get("draining") or {}).items()},
            jobs={k: [float(x) for x in v] for k, v in (data.get("jobs") or {}).items()},
            idle={k: [float(x) for x in v] for k, v in (data.get("idle") or {}).items()},
            seen={k: float(v) for k, v in (data.get("seen") or {}).items()},
            failed={k: [float(x) for x in v] for k, v in (data.get("failed") or {}).items()},
            surplus={k: float(v) for k, v in (data.get("surplus") or {}).items()},
            quiet={k: float(v) for k, v in (data.get("quiet") or {}).items()},
            warm={
                k: [[float(t), float(n)] for t, n in v] for k, v in (data.get("warm") or {}).items()
            },
        )


@dataclass(frozen=True)
class PolicyInput:
    now: float
    streams: tuple[StreamState, ...]
    nodes: tuple[NodeState, ...]
    groups: tuple[GroupState, ...]


@dataclass(frozen=True)
class StreamNeed:
    """How many nodes one stream asks of its group, and why."""

    stream: str
    nodes: int
    reason: str


@dataclass(frozen=True)
class GroupDecision:
    """What to do with one group, and why."""

    node_class: str
    group: str
    previous: int  # desired capacity before this tick
    desired: int  # desired capacity to set (always within [min, max])
    needed: int  # nodes the streams need (before clamping to the group's limits)
    floor: int = 0  # nodes the streams keep busy at their measured throughput (no scale-in below)
    warm: int = 0  # idle nodes kept for the idle threshold; the rest leave once billed (warm.py)
    drain: tuple[str, ...] = ()  # nodes to ask to drain now (terminated once drained)
    # idle nodes to terminate now with decrement: the termination lifecycle hook holds the
    # instance until its agent, told through its drain mark, has finished what it holds
    retire: tuple[str, ...] = ()
    terminate: tuple[str, ...] = ()  # nodes to terminate with decrement (drained, failed boots)
    replace: tuple[str, ...] = ()  # failed boots to terminate without decrement (at min)
    failed: tuple[str, ...] = ()  # failed boots (each in terminate or replace)
    action: str = "hold"  # scale-out | scale-in | hold
    reason: str = ""
    needs: tuple[StreamNeed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    groups: tuple[GroupDecision, ...]
    memory: Memory
