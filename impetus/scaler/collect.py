"""What DFS sees: streams (counters, properties), nodes (heartbeats) and Auto Scaling
groups, turned into the policy's typed inputs.

Reads are cheap and bounded: the streams the active-streams record marks (a Scan of
the streams table once a minute, impetus.scaler.activity), one Query per stream with
delayed jobs (those already due count as backlog), one Scan of the nodes table (one item
per node) and one DescribeAutoScalingGroups per 50 groups.
"""

from __future__ import annotations

from typing import Any

from impetus.core import properties
from impetus.scaler import estimate
from impetus.scaler.model import (
    DEFAULT_CLASS,
    NODE_BOOTING,
    NODE_DRAINED,
    NODE_DRAINING,
    NODE_RUNNING,
    GroupState,
    Memory,
    NodeState,
    PolicyInput,
    StreamState,
)
from impetus.storage.nodes import Nodes

DESCRIBE_LIMIT = 50  # AutoScalingGroupNames per DescribeAutoScalingGroups call
IN_SERVICE = "InService"


def stream_states(
    listing: list[dict[str, Any]],
    memory: Memory,
    now: float,
    due: dict[str, int],
    full: bool = True,
) -> list[StreamState]:
    """StreamStates from a listing; updates the duration samples in memory. Samples of
    unlisted streams are dropped only when ``full`` (every stream was listed): a tick
    that lists the active streams keeps those of idle ones for when work returns."""
    out = []
    for stream in listing:
        sid, props, counts = stream["id"], stream.get("properties") or {}, stream["counts"]
        completed = counts.get("finished", 0) + counts.get("acked", 0)
        memory.jobs[sid] = estimate.update(
            memory.jobs.get(sid), now, completed, counts.get("running", 0)
        )
        out.append(
            StreamState(
                id=sid,
                backlog=counts.get("waiting", 0) + due.get(sid, 0),
                running=counts.get("running", 0),
                mpps=properties.get(props, "mpps"),
                job_seconds=estimate.job_seconds(memory.jobs[sid]),
                target_latency=properties.get(props, "target_latency"),
                min_nodes=properties.get(props, "min_nodes"),
                max_nodes=properties.get(props, "max_nodes"),
                node_class=properties.get(props, "node_class") or DEFAULT_CLASS,
                rate=properties.get(props, "rate"),
                throughput=estimate.throughput(memory.jobs[sid]),
            )
        )
    if full:
        for sid in [s for s in memory.jobs if s not in {x["id"] for x in listing}]:
            del memory.jobs[sid]
    return out


def describe_groups(asg: Any, node_groups: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Auto Scaling group descriptions by group name."""
    names = sorted(set(node_groups.values()))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(names), DESCRIBE_LIMIT):
        pages = asg.get_paginator("describe_auto_scaling_groups").paginate(
            AutoScalingGroupNames=names[start : start + DESCRIBE_LIMIT]
        )
        for page in pages:
            found.update({g["AutoScalingGroupName"]: g for g in page["AutoScalingGroups"]})
    return found


def group_state(node_class: str, described: dict[str, Any], boot_seconds: float) -> GroupState:
    states = [i["LifecycleState"] for i in described.get("Instances", [])]
    return GroupState(
        node_class=node_class,
        name=described["AutoScalingGroupName"],
        min=int(described["MinSize"]),
        max=int(described["MaxSize"]),
        desired=int(described["DesiredCapacity"]),
        in_service=sum(1 for s in states if s == IN_SERVICE),
        pending=sum(1 for s in states if s.startswith("Pending")),
        boot_seconds=boot_seconds,
    )


def node_state(
    node_class: str,
    instance: dict[str, Any],
    item: dict[str, Any] | None,
    memory: Memory,
    now: float,
) -> NodeState:
    """One instance with its agent's heartbeat item (None: still booting)."""
    node_id = instance["InstanceId"]
    item = item or {}
    memory.seen.setdefault(node_id, now)  # DFS launched it at most a tick before
    held = max(int(item.get("claims", 0)), int(item.get("workers_busy", 0)))
    busy = held > 0
    done = float(item.get("jobs_done", 0))
    idle_since: float | None = None
    if item and not busy:
        seen = memory.idle.get(node_id)
        # Idle since we first saw it idle with this job count (work in between resets it),
        # unless the agent reports its own (node_agent/scaling.py): it knows better, at
        # heartbeat resolution, whenever DFS happens to tick.
        idle_since = seen[0] if seen and seen[1] == done else now
        if item.get("idle_since") is not None:
            idle_since = min(now, float(item["idle_since"]))
        memory.idle[node_id] = [idle_since, done]
    else:
        memory.idle.pop(node_id, None)
    state = item.get("state", NODE_RUNNING) if item else NODE_BOOTING
    if item.get("drain") and state not in (NODE_DRAINING, NODE_DRAINED):
        state = NODE_DRAINING  # asked, not acknowledged yet
    return NodeState(
        id=node_id,
        node_class=node_class,
        heartbeat=float(item.get("heartbeat", 0.0)),
        busy=busy,
        idle_since=idle_since,
        started=float(item["started"]) if "started" in item else memory.seen.get(node_id, now),
        protected=bool(instance.get("ProtectedFromScaleIn")),
        state=state,
        in_service=instance.get("LifecycleState") == IN_SERVICE,
        fresh_until=float(item.get("expires", 0.0)),
        jobs=held,
    )


def node_items(client: Any, nodes_table: str) -> dict[str, dict[str, Any]]:
    """Every node item by node id, expired heartbeats included (through the table's owner)."""
    return Nodes(client, nodes_table).by_node()


def policy_input(
    now: float,
    streams: list[StreamState],
    described: dict[str, dict[str, Any]],
    node_groups: dict[str, str],
    items: dict[str, dict[str, Any]],
    memory: Memory,
    boot_seconds: float,
) -> PolicyInput:
    groups, nodes = [], []
    for node_class, name in sorted(node_groups.items()):
        if name not in described:
            continue
        groups.append(group_state(node_class, described[name], boot_seconds))
        for instance in described[name].get("Instances", []):
            state = instance["LifecycleState"]
            if state == IN_SERVICE or state.startswith("Pending"):
                item = items.get(instance["InstanceId"])
                nodes.append(node_state(node_class, instance, item, memory, now))
    live = {n.id for n in nodes}
    for node_id in [n for n in memory.idle if n not in live]:
        del memory.idle[node_id]
    for node_id in [n for n in memory.seen if n not in live]:
        del memory.seen[node_id]
    return PolicyInput(now=now, streams=tuple(streams), nodes=tuple(nodes), groups=tuple(groups))
