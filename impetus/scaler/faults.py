"""Nodes that fail the fleet: boots that never finish (docs/autoscaling.md, "Nodes that
never boot")."""

from __future__ import annotations

from impetus.scaler.model import NODE_BOOTING, NodeState
from impetus.scaler.params import PolicyParams


def failed_boots(nodes: list[NodeState], now: float, params: PolicyParams) -> list[NodeState]:
    """In-service nodes that never sent a heartbeat within the boot deadline."""
    return [
        n
        for n in nodes
        if n.state == NODE_BOOTING and n.in_service and now - n.started > params.boot_deadline
    ]
