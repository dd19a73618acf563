"""Warm capacity: how many idle nodes a group keeps for the idle threshold.

The idle rule keeps an idle node for about half a boot in case work returns
(:mod:`impetus.scaler.idle`). After a batch, that kept *every* node the batch ran on,
though the next batch does not need them all: the nodes in service start a batch without
a launch as long as their reach covers it (:func:`impetus.scaler.policy.stream_need`).
So a group keeps warm only the nodes that would start, without a launch, the largest
load (jobs due plus running) its streams had in the last ``warm_window`` seconds; idle
nodes beyond those may leave as soon as their billing minimum is paid (the scale-in
agreement still applies), the warm ones after the idle threshold. A next batch as large
as the recent peak then meets the target on the warm nodes and launches nothing, so
scaling in early reverses nothing (docs/autoscaling.md, "Warm capacity").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from impetus.scaler.model import GroupState, Memory, StreamState
from impetus.scaler.params import PolicyParams

# Poisson arrivals at 1.5 jobs/s leave 5 s without one once in 1,800 stretches; a batch
# that has ended leaves tens of seconds (the bursty trace's gaps).
QUIET_SECONDS = 5.0
Need = Callable[[StreamState, GroupState], int]  # nodes a stream asks of a group like this


def warm_nodes(stream: StreamState, group: GroupState, need: Need) -> int:
    """The fewest nodes in service that start the stream's load (due + running, all as if
    due) without asking for a launch: the smallest ``k`` with ``need(k) <= k``."""
    load = max(0, stream.backlog) + max(0, stream.running)
    if not load:
        return 0
    as_due = replace(stream, backlog=load, running=0, min_nodes=0)

    def enough(k: int) -> bool:
        fleet = replace(group, in_service=k, pending=0)
        return need(as_due, fleet) <= k

    low, high = 0, max(group.max, 1)  # enough(high) may fail: the group cannot do better
    while low < high:  # need(k) <= k only holds from some k on: the reach grows with k
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid + 1, high)
    return low


def recent_peak(memory: Memory, key: str, now: float, nodes: int, window: float) -> int:
    """The largest warm count of the group over the last ``window`` seconds, ``nodes``
    now included. Memory keeps only the counts a later, larger one has not superseded."""
    kept = [(t, n) for t, n in memory.warm.get(key, []) if now - window < t <= now and n > nodes]
    if nodes:
        kept.append((now, nodes))
    if kept:
        memory.warm[key] = [[t, n] for t, n in kept]
    else:
        memory.warm.pop(key, None)
    return int(max((n for _, n in kept), default=0))


def warming_ends(memory: Memory, key: str) -> float | None:
    """When the group's quiet streams let its nodes beyond the warm ones leave (None: work
    is due or runs, or nothing was quiet yet)."""
    since = memory.quiet.get(key)
    return None if since is None else since + QUIET_SECONDS


def warm_count(
    memory: Memory,
    group: GroupState,
    streams: list[StreamState],
    now: float,
    params: PolicyParams,
    need: Need,
) -> int:
    """Nodes the group keeps warm now: all of them until its streams have had nothing due
    or running for ``QUIET_SECONDS`` (a stream fed steadily goes quiet between jobs for
    moments: that is not the end of a batch), or when ``params.warm_window`` is None
    (every idle node waits for the idle threshold)."""
    if params.warm_window is None:
        return group.max
    key = group.node_class
    nodes = max((warm_nodes(s, group, need) for s in streams), default=0)
    peak = recent_peak(memory, key, now, min(nodes, group.max), params.warm_window)
    if any(s.backlog > 0 or s.running > 0 for s in streams):
        memory.quiet.pop(key, None)
        return group.max
    since = memory.quiet.setdefault(key, now)
    return peak if now - since >= QUIET_SECONDS else group.max
