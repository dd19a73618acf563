"""Nodes that fail the fleet: boots that never finish (docs/autoscaling.md, "Nodes that
never boot") and nodes that leave on their own (a Spot interruption notice)."""

from __future__ import annotations

from impetus.scaler.model import NODE_BOOTING, NODE_DRAINED, NODE_DRAINING, Memory, NodeState
from impetus.scaler.params import PolicyParams


def failed_boots(nodes: list[NodeState], now: float, params: PolicyParams) -> list[NodeState]:
    """In-service nodes that never sent a heartbeat within the boot deadline."""
    return [
        n
        for n in nodes
        if n.state == NODE_BOOTING and n.in_service and now - n.started > params.boot_deadline
    ]


def adopt_own_drains(nodes: list[NodeState], memory: Memory, now: float) -> None:
    """Nodes in service that drain on their own account (their agent saw a Spot
    interruption notice or a rebalance recommendation) are handled as if DFS had asked
    them to: they start no more jobs, so they leave the reach and the capacity that stays
    (a replacement is launched at once, not when EC2 reclaims the node), and once drained
    they are terminated with decrement (not billed to the end of the notice, and Auto
    Scaling does not launch a second replacement for them)."""
    for n in nodes:
        if n.in_service and n.state in (NODE_DRAINING, NODE_DRAINED):
            memory.draining.setdefault(n.id, now)
