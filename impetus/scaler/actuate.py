"""Carry out a group decision through Auto Scaling and the nodes table (drain requests
go through its owner, impetus.storage.nodes).

Order: terminate the drained nodes and the idle nodes retired (each with
``ShouldDecrementDesiredCapacity``, so the group never picks a victim of its own; a
retired node's drain mark, set after its termination, tells its agent to finish what it
holds and complete the lifecycle action at once), ask the chosen nodes to drain, then
set the desired capacity if it still differs. Desired capacity is checked against the group's
[min, max] here too: moto accepts values outside, AWS refuses them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from impetus.scaler.model import GroupDecision, GroupState
from impetus.storage.nodes import Nodes

log = logging.getLogger(__name__)


class LimitError(ValueError):
    """A desired capacity outside the group's [min, max] (a policy bug: refused)."""


def apply(
    decision: GroupDecision, group: GroupState, asg: Any, ddb: Any, nodes_table: str
) -> list[str]:
    """Apply one group's decision; returns what was done (for the log)."""
    done = []
    desired = group.desired
    nodes = Nodes(ddb, nodes_table)
    for node_id in decision.terminate:
        if not _terminate(asg, node_id):
            continue
        desired -= 1
        why = " (failed boot)" if node_id in decision.failed else ""
        done.append(f"terminated {node_id}{why}")
    for node_id in decision.retire:
        if not _terminate(asg, node_id):
            decision = replace(decision, desired=decision.desired + 1)  # it stays: count it
            continue
        desired -= 1
        nodes.request_drain(node_id, leave=True)  # False: its agent is already gone
        done.append(f"retired {node_id}")
    for node_id in decision.replace:  # the group is at its min: it launches a replacement
        try:
            asg.terminate_instance_in_auto_scaling_group(
                InstanceId=node_id, ShouldDecrementDesiredCapacity=False
            )
        except ClientError as exc:
            log.warning("terminating %s failed: %s", node_id, exc)
            continue
        done.append(f"replaced {node_id}")
    for node_id in decision.drain:
        if nodes.request_drain(node_id):
            done.append(f"drain {node_id}")
    if decision.desired != desired:
        if not group.min <= decision.desired <= group.max:
            raise LimitError(
                f"desired {decision.desired} outside [{group.min}, {group.max}] of {group.name}"
            )
        asg.set_desired_capacity(
            AutoScalingGroupName=group.name,
            DesiredCapacity=decision.desired,
            HonorCooldown=False,
        )
        done.append(f"desired {desired} -> {decision.desired}")
    return done


def _terminate(asg: Any, node_id: str) -> bool:
    """Terminate an instance with decrement; False (logged) when Auto Scaling refused."""
    try:
        asg.terminate_instance_in_auto_scaling_group(
            InstanceId=node_id, ShouldDecrementDesiredCapacity=True
        )
    except ClientError as exc:
        log.warning("terminating %s failed: %s", node_id, exc)
        return False
    return True
