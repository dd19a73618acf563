"""The scaling policy: a pure function from what DFS sees to what it should do.

``decide(PolicyInput, Memory, PolicyParams) -> Decision`` touches no AWS, no clock and
no randomness: the DFS Lambda, the simulator and the unit tests all call it the same way.

**Sizing (per stream).** A stream with ``B`` due jobs waiting, ``R`` running, a measured
job duration ``d`` (EWMA, seconds), ``mpps`` worker slots per node and a
``target_latency`` ``T`` needs

    slots = R + min(B, ceil(B * d / T))          # keep the running, start the backlog within T
    reach = share * (                            # of the due jobs the nodes in service
          in_service * mpps * boot / d           #   start before a new node boots, and
          + sum(mpps * min(boot, a_k) / d))      #   those booting for a_k seconds, half
                                                 #   (share 0.5) are left for the backlog:
                                                 #   the rest serve jobs arriving meanwhile
    late  = B - reach                            # ... before a new node could have booted
    slots = min(slots, (in_service + pending) * mpps + min(late, ceil(late * d / T)))
    slots = min(slots, max(1, ceil(rate * d)))   # when the stream has a fleet-wide `rate`
    nodes = ceil(slots / mpps), capped by `max_nodes`, raised to `min_nodes`

so one due job on an empty fleet asks for one node (scale from zero), a node is never
launched for work the running and booting fleet starts before it could boot, and a
stream with nothing due or running asks for ``min_nodes`` (default 0). A booting node's
``a_k`` counts from the first tick that saw its instance (DFS launched it at most a
tick earlier). ``in_service`` counts the nodes that start jobs: an instance Auto
Scaling calls InService is booting until its agent is heard from, and a node draining
starts nothing.

**Per group.** A group (one Auto Scaling group per ``node_class``; ``default`` when a
stream names none) needs the largest need of its streams: a node runs up to ``mpps``
workers for *every* stream it serves, so streams share nodes. Then:

0. *Failed boots leave first*: an in-service instance without a first heartbeat
   ``boot_deadline`` (600 s) after DFS first saw it is terminated, with decrement while
   the group stays at or above its min (else without: the group replaces it itself);
   the rest of the decision sees the group without it, so work that still needs a node
   gets a new one. Failures are remembered for an hour (the FailedBootsLastHour metric).

1. *Terminate* the nodes DFS asked to drain on an earlier tick that now report
   ``drained``, each with ``ShouldDecrementDesiredCapacity``: capacity is lowered only
   by removing a node we chose, never by letting Auto Scaling pick a victim.
2. *Scale out at once* when the need exceeds the capacity that stays (``desired``
   minus the nodes being drained): ``desired`` already counts instances that are
   pending (booting), so repeated ticks during a boot do not launch twice.
3. *Cancel launches no longer needed*: when the need fell below the capacity that
   stays while some nodes are still booting (no heartbeat yet), booting nodes are
   terminated with decrement at once, newest first, but only those whose work will
   have started before they arrive: with ``W = sum((B + R/2) * d / mpps)`` node-seconds
   of work, a node due in ``r = boot - a`` seconds goes when
   ``in_service * r + sum(r - r_k for the older booting nodes) >= W``. They never held a
   job. (A node kept this way serves the next batch; cancelling it as soon as the need
   formula dips, while the backlog still outlasts its boot, only moved the wait.)
4. *Scale in* only nodes idle for at least ``idle_floor`` (default half the group's
   ``boot_seconds``: about what a replacement takes to arrive) that have run for their
   billing minimum (EC2: 60 s), with a fresh heartbeat, not protected, and only after
   ``scale_in_ticks`` (3) consecutive ticks agree that the group has a surplus; the
   longest-idle nodes are terminated at once (``retire``), the termination lifecycle
   hook letting a job one claimed meanwhile finish (:func:`may_leave`). Once the group's
   streams have been quiet for a few seconds, idle nodes beyond those that would start
   the last two minutes' peak load without a launch need not wait for the threshold
   (:mod:`impetus.scaler.warm`). A busy node chosen by consolidation is asked to drain
   instead and terminated once drained.
5. ``desired`` is always clamped to the group's ``[min, max]`` (AWS refuses values
   outside; moto does not), and scale-in never goes below ``min``.

Every group decision carries a one-line reason; every stream need carries its own.
"""

from __future__ import annotations

import math
from dataclasses import replace

from impetus.scaler.faults import adopt_own_drains, failed_boots
from impetus.scaler.idle import consolidation_candidate, idle_threshold, scale_in_candidates
from impetus.scaler.model import (
    NODE_BOOTING,
    NODE_DRAINED,
    Decision,
    GroupDecision,
    GroupState,
    Memory,
    NodeState,
    PolicyInput,
    StreamNeed,
    StreamState,
)
from impetus.scaler.params import BUSY_SHARE, FAILURE_WINDOW, REACH_SHARE, PolicyParams
from impetus.scaler.warm import Need, warm_count


def stream_need(
    stream: StreamState,
    group: GroupState | None = None,
    booting_for: tuple[float, ...] = (),
    reach_share: float = REACH_SHARE,
) -> StreamNeed:
    """Nodes one stream needs, with the arithmetic as its reason. ``booting_for``: how
    long each node still booting has been booting (it starts work that much before a
    node launched now would); ``reach_share``: the share of that reach that counts
    toward the backlog (the rest serves jobs that arrive meanwhile)."""
    b, r = max(0, stream.backlog), max(0, stream.running)
    d = max(stream.job_seconds, 1e-3)
    mpps = max(1, stream.mpps)
    slots = r + min(b, math.ceil(b * d / stream.target_latency))
    why = f"{b} due + {r} running, {d:.2f}s/job, target {stream.target_latency:g}s"
    if group is not None and slots:
        # Jobs the nodes in service start before a new node could boot need no new node.
        reach = group.in_service * mpps * group.boot_seconds / d
        reach += sum(mpps * min(group.boot_seconds, max(0.0, a)) / d for a in booting_for)
        reach *= reach_share
        late = max(0, b - math.floor(reach))
        have = (group.in_service + group.pending) * mpps
        cap = have + min(late, math.ceil(late * d / stream.target_latency))
        if late and not have and group.boot_seconds > stream.target_latency - d:
            # Cold start: every job waits a boot, and that alone passes the target. A slot
            # each: queueing behind each other only adds to a wait already over it.
            slots = cap = max(slots, late)
            why = f"{why}, cold start: a boot ({group.boot_seconds:g}s) passes the target"
        if slots > cap:
            slots = cap
            why = (
                f"{why}, {late} beyond the reach of the {group.in_service} in service"
                f" and {len(booting_for)} booting"
            )
    if stream.rate is not None and slots:
        cap = max(1, math.ceil(stream.rate * d))
        if slots > cap:
            slots, why = cap, f"{why}, rate {stream.rate:g}/s caps slots at {cap}"
    nodes = math.ceil(slots / mpps)
    why = f"{why}: {slots} slots / mpps {mpps} = {nodes} nodes"
    if stream.max_nodes is not None and nodes > stream.max_nodes:
        nodes, why = stream.max_nodes, f"{why}, max_nodes {stream.max_nodes}"
    if nodes < stream.min_nodes:
        nodes, why = stream.min_nodes, f"{why}, min_nodes {stream.min_nodes}"
    return StreamNeed(stream.id, nodes, why)


def _alone(reach_share: float) -> Need:
    """Nodes a stream asks of a group with nothing booting (for :mod:`impetus.scaler.warm`)."""
    return lambda stream, group: stream_need(stream, group, (), reach_share).nodes


def stream_floor(stream: StreamState, busy_share: float = BUSY_SHARE) -> int:
    """Nodes scale-in keeps for a stream that has work: its measured throughput times its
    job time is the worker slots it keeps busy (Little's law), at most ``busy_share`` of
    the slots kept. Never a reason to launch: a fleet that falls behind completes only
    what it can, so its throughput never asks for more than it has."""
    if stream.backlog <= 0 and stream.running <= 0:
        return 0
    busy = stream.throughput * max(stream.job_seconds, 1e-3)
    nodes = math.ceil(math.ceil(busy / busy_share - 1e-9) / max(1, stream.mpps))
    if stream.max_nodes is not None:
        nodes = min(nodes, stream.max_nodes)
    return nodes


def _clamp(value: int, group: GroupState) -> int:
    return max(group.min, min(group.max, value))


def _unneeded_booting(
    group: GroupState, streams: list[StreamState], booting: list[NodeState], now: float
) -> tuple[str, ...]:
    """Booting nodes, newest first, whose work will have started before they arrive.

    The group's work is ``W = sum((B + R / 2) * d / mpps)`` node-seconds (the backlog,
    and half the running jobs' time still to go). A node due in ``r`` seconds (``boot``
    minus how long it has booted) is not needed when the nodes in service and those
    booting that arrive before it can do ``W`` before then:
    ``in_service * r + sum(r - r_k for older nodes k) >= W``. Newest first: a node
    cancelled never counts for an older one."""
    work = sum(
        (max(0, s.backlog) + max(0, s.running) / 2) * max(s.job_seconds, 1e-3) / max(1, s.mpps)
        for s in streams
    )
    due = sorted(
        ((max(0.0, group.boot_seconds - (now - n.started)), n.id) for n in booting), reverse=True
    )
    victims = []
    for i, (r, node_id) in enumerate(due):
        before = group.in_service * r + sum(r - r_k for r_k, _ in due[i + 1 :])
        if before < work:
            break
        victims.append(node_id)
    return tuple(victims)


def decide_group(
    group: GroupState,
    streams: list[StreamState],
    nodes: list[NodeState],
    memory: Memory,
    now: float,
    params: PolicyParams,
) -> GroupDecision:
    """One group's decision; updates ``memory`` (agree counter, drains in flight)."""
    key = group.node_class
    adopt_own_drains(nodes, memory, now)
    booting_for = tuple(now - n.started for n in nodes if n.state == NODE_BOOTING)
    # In service are the nodes that start jobs: not those asked to drain, and not those
    # Auto Scaling calls InService whose agent has not been heard from (an instance is
    # InService once it runs and passes EC2's health checks, well before its user data
    # has started the agent): booting, as for the reach they count in booting_for.
    draining = sum(1 for n in nodes if n.id in memory.draining and n.in_service)
    unheard = sum(1 for n in nodes if n.state == NODE_BOOTING and n.in_service)
    serving = replace(
        group,
        in_service=max(0, group.in_service - draining - unheard),
        pending=group.pending + min(unheard, group.in_service),
    )
    needs = tuple(stream_need(s, serving, booting_for, params.reach_share) for s in streams)
    needed = max((n.nodes for n in needs), default=0)
    floor = max((stream_floor(s, params.busy_share) for s in streams), default=0)
    warm = warm_count(memory, group, streams, now, params, _alone(params.reach_share))
    target = _clamp(needed, group)
    present = {n.id for n in nodes}
    for node_id in [n for n in memory.draining if n not in present]:
        del memory.draining[node_id]  # gone (terminated, or its instance left the group)
    # 1. drained nodes we asked for leave first, each taking one unit of desired with it
    room = max(0, group.desired - group.min)
    terminate = tuple(n.id for n in nodes if n.state == NODE_DRAINED and n.id in memory.draining)[
        :room
    ]
    for node_id in terminate:
        del memory.draining[node_id]
    desired = group.desired - len(terminate)
    leaving = sum(1 for n in nodes if n.id in memory.draining)
    staying = desired - leaving
    base = GroupDecision(
        node_class=key,
        group=group.name,
        previous=group.desired,
        desired=_clamp(desired, group),
        needed=needed,
        floor=floor,
        warm=warm,
        terminate=terminate,
        needs=needs,
    )
    if target > staying:  # 2. scale out at once
        memory.agree[key] = 0
        memory.surplus.pop(key, None)
        new = _clamp(target + leaving, group)
        if new <= desired:
            return replace(base, reason=f"need {needed}, at max {group.max}")
        return replace(
            base,
            desired=new,
            action="scale-out",
            reason=f"need {needed} > {staying} staying ({group.pending} pending): "
            f"desired {desired} -> {new}",
        )
    booting = [n for n in nodes if n.state == NODE_BOOTING and n.id not in memory.draining]
    if target < staying and booting and params.cancel_booting:  # 3a. launches not needed
        # A booting node has never claimed: cancelling it kills nothing (an agent racing
        # to its first claim is drained by the termination lifecycle hook first).
        allowed = min(staying - target, desired - leaving - group.min, len(booting))
        victims = _unneeded_booting(serving, streams, booting, now)[: max(0, allowed)]
        if victims:
            memory.agree[key] = 0
            return replace(
                base,
                terminate=terminate + victims,
                desired=_clamp(desired - len(victims), group),
                action="scale-in",
                reason=f"need {needed} < {staying} staying: cancel {len(victims)} booting",
            )
    keep = max(target, _clamp(floor, group))
    if keep < staying:  # 3. scale in, carefully
        if any(s.backlog > 0 for s in streams):
            memory.surplus.pop(key, None)  # capacity is not idle while jobs wait
        return _scale_in(base, group, nodes, memory, now, params, staying - keep)
    memory.agree[key] = 0
    memory.surplus.pop(key, None)
    why = f"need {needed}, floor {floor}: {staying} staying"
    if terminate:
        why += f"; terminate {len(terminate)} drained node(s)"
    return replace(base, reason=why)


IDLE = "idle node(s)"


def _beyond(warm: int, staying: int) -> str:
    return f" (or beyond the {warm} kept warm)" if warm < staying else ""


def _scale_in(
    base: GroupDecision,
    group: GroupState,
    nodes: list[NodeState],
    memory: Memory,
    now: float,
    params: PolicyParams,
    surplus: int,
) -> GroupDecision:
    """Step 4: drain idle nodes once ticks agree on a surplus; failing those, the least-busy
    node once the surplus has lasted the idle threshold (idle capacity, not an idle node)."""
    key, needed = group.node_class, base.needed
    leaving = sum(1 for n in nodes if n.id in memory.draining)
    staying = base.desired - leaving
    keeps = f"need {needed}, floor {base.floor} < {staying} staying"
    since = memory.surplus.setdefault(key, now)
    stay = [n for n in nodes if n.id not in memory.draining]
    candidates = scale_in_candidates(stay, group, now, params, base.warm)
    allowed = min(surplus, base.desired - leaving - group.min)
    memory.agree[key] = memory.agree.get(key, 0) + 1
    if memory.agree[key] < params.scale_in_ticks:
        return replace(
            base,
            reason=f"{keeps}: scale-in agreed {memory.agree[key]}/{params.scale_in_ticks} ticks",
        )
    threshold = idle_threshold(group, params)
    what = IDLE
    if not candidates and params.consolidate and now - since >= threshold:
        least = consolidation_candidate(stay, group, now, params)
        candidates = [least] if least else []
        what, allowed = f"least-busy node (surplus for {now - since:.0f}s)", min(allowed, 1)
    if not candidates or allowed <= 0:
        return replace(
            base,
            reason=f"{keeps} for {memory.agree[key]} ticks, but no node idle >= "
            f"{threshold:g}s{_beyond(base.warm, staying)} and up >= {params.min_billed:g}s",
        )
    memory.agree[key] = 0
    memory.surplus.pop(key, None)
    victims = tuple(n.id for n in candidates[:allowed])
    if what == IDLE and params.retire_idle:
        # Idle: terminated now. Draining first cost a heartbeat and a DFS poll per node,
        # then the lifecycle hook's wait on top (docs/autoscaling.md, "Leaving").
        return replace(
            base,
            retire=victims,
            desired=_clamp(base.desired - len(victims), group),
            action="scale-in",
            reason=f"{keeps} for {params.scale_in_ticks} ticks: terminate {len(victims)} "
            f"{what} (the lifecycle hook lets a job claimed meanwhile finish)",
        )
    for node_id in victims:
        memory.draining[node_id] = now
    return replace(
        base,
        drain=victims,
        action="scale-in",
        reason=f"{keeps} for {params.scale_in_ticks} ticks: drain {len(victims)} {what}, "
        "terminate once drained",
    )


def decide_with_failed_boots(
    group: GroupState,
    streams: list[StreamState],
    nodes: list[NodeState],
    memory: Memory,
    now: float,
    params: PolicyParams,
) -> GroupDecision:
    """Step 0: failed boots are terminated, with decrement while the group stays at or
    above its min (below, without: the group launches their replacements itself). The
    rest of the decision sees the group without them; a replacement for work that still
    needs one is launched by this or the next decision (it sees the lower capacity)."""
    failed = failed_boots(nodes, now, params)
    recent = [t for t in memory.failed.get(group.node_class, []) if now - t < FAILURE_WINDOW]
    recent += [now] * len(failed)
    if recent:
        memory.failed[group.node_class] = recent
    else:
        memory.failed.pop(group.node_class, None)
    if not failed:
        return decide_group(group, streams, nodes, memory, now, params)
    room = max(0, group.desired - group.min)
    decrement, keep = failed[:room], failed[room:]
    rest = [n for n in nodes if n not in failed]
    fewer = replace(
        group, desired=group.desired - len(decrement), in_service=group.in_service - len(failed)
    )
    decision = decide_group(fewer, streams, rest, memory, now, params)
    ids = ", ".join(n.id for n in failed)
    return replace(
        decision,
        previous=group.desired,
        terminate=tuple(n.id for n in decrement) + decision.terminate,
        replace=tuple(n.id for n in keep),
        failed=tuple(n.id for n in failed),
        reason=f"failed boot: {ids} sent no heartbeat within boot_deadline "
        f"{params.boot_deadline:g}s, terminated; then {decision.reason}",
    )


def decide(
    inputs: PolicyInput, memory: Memory | None = None, params: PolicyParams | None = None
) -> Decision:
    """Decide every group. The given memory is not modified; the new one is returned."""
    params = params or PolicyParams()
    memory = Memory.from_json(memory.to_json() if memory else None)
    groups = []
    for group in inputs.groups:
        streams = [s for s in inputs.streams if s.node_class == group.node_class]
        nodes = [n for n in inputs.nodes if n.node_class == group.node_class]
        groups.append(decide_with_failed_boots(group, streams, nodes, memory, inputs.now, params))
    return Decision(groups=tuple(groups), memory=memory)
