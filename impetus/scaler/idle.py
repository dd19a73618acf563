"""The idle rule: when a node may leave (docs/autoscaling.md, "The idle rule")."""

from __future__ import annotations

from impetus.scaler.model import NODE_RUNNING, GroupState, NodeState
from impetus.scaler.params import IDLE_BOOT_FRACTION, PolicyParams


def is_fresh(node: NodeState, now: float, params: PolicyParams) -> bool:
    """Whether the node's last beat still vouches for it: until its item's ``expires``
    (its next beat's due time plus a grace: idle nodes beat about once a minute, busy ones
    every few seconds), or, for items that carry none, ``stale_heartbeat`` seconds."""
    if node.fresh_until > 0:
        return now <= node.fresh_until
    return now - node.heartbeat <= params.stale_heartbeat


def idle_threshold(group: GroupState, params: PolicyParams) -> float:
    """Seconds a node must have been idle to leave (see :func:`may_leave`)."""
    if params.idle_floor is not None:
        return params.idle_floor
    return IDLE_BOOT_FRACTION * group.boot_seconds


def may_leave(node: NodeState, group: GroupState, now: float, params: PolicyParams) -> bool:
    """The idle rule, on cost grounds: idle for the threshold and its billing minimum paid.

    EC2 bills per second after a 60-second minimum. A node stopped before it has run 60 s
    is billed 60 s anyway, so it leaves no earlier. An idle node costs its idle seconds;
    stopping it and launching a replacement when work returns costs the replacement's
    boot (billed, doing nothing). Keeping a node idle for about a boot time before
    stopping it never pays more than about twice what knowing the future would (the
    rent-or-buy argument); the default is half a boot (:data:`IDLE_BOOT_FRACTION`)."""
    at = leave_at(node, group, params)
    return at is not None and now >= at


def leave_at(node: NodeState, group: GroupState, params: PolicyParams) -> float | None:
    """When an idle node may leave (None: it is busy)."""
    if node.idle_since is None:
        return None
    return max(node.idle_since + idle_threshold(group, params), node.started + params.min_billed)


def spare(nodes: list[NodeState], warm: int) -> int:
    """Running nodes beyond the ``warm`` count (:mod:`impetus.scaler.warm`): as many idle
    ones may leave without waiting for the idle threshold."""
    return max(0, sum(1 for n in nodes if n.state == NODE_RUNNING) - warm)


def scale_in_candidates(
    nodes: list[NodeState], group: GroupState, now: float, params: PolicyParams, warm: int
) -> list[NodeState]:
    """Nodes that may leave: running, fresh, unprotected and idle, longest idle first;
    each idle for the threshold, or among the first :func:`spare` ones with their billing
    minimum paid (``warm``: the running nodes the group keeps for the threshold)."""
    idle = sorted(
        (
            n
            for n in nodes
            if n.state == NODE_RUNNING
            and not n.busy
            and not n.protected
            and n.idle_since is not None
            and is_fresh(n, now, params)
        ),
        key=lambda n: (n.idle_since, n.id),
    )
    billed = [n for n in idle if now - n.started >= params.min_billed][: spare(nodes, warm)]
    early = {n.id for n in billed}
    return [n for n in idle if n.id in early or may_leave(n, group, now, params)]


def consolidation_candidate(
    nodes: list[NodeState], group: GroupState, now: float, params: PolicyParams
) -> NodeState | None:
    """The node to drain when a group's capacity has stayed idle but no node is idle.

    Agents claim independently, so work spreads over every node: a fleet a node too large
    for its load keeps all its nodes a little busy and none idle for the threshold. The
    idle rule is then applied to capacity instead of to a node: once the group has had a
    node's worth of surplus for :func:`idle_threshold` seconds, the node holding the
    fewest jobs is asked to drain. It stops claiming and finishes what it holds, so no job
    is interrupted; its billing minimum must be paid, as for an idle node. A node protected
    while idle was protected by someone else (agents hold protection only while busy)."""
    fit = [
        n
        for n in nodes
        if n.state == NODE_RUNNING
        and not (n.protected and not n.busy)
        and now - n.started >= params.min_billed
        and is_fresh(n, now, params)
    ]
    return min(fit, key=lambda n: (n.jobs, n.started, n.id), default=None)
