"""The scaling policy, one test per rule (impetus/scaler/policy.py)."""

from __future__ import annotations

from dataclasses import replace

from impetus.scaler.model import (
    NODE_BOOTING,
    NODE_DRAINED,
    NODE_DRAINING,
    GroupState,
    Memory,
    NodeState,
    PolicyInput,
    StreamState,
)
from impetus.scaler.params import PolicyParams
from impetus.scaler.policy import decide, stream_need

NOW = 10_000.0


def group(**kw) -> GroupState:
    base = dict(node_class="default", name="asg", min=0, max=20, desired=0, in_service=0, pending=0)
    return GroupState(**{**base, **kw})


def stream(**kw) -> StreamState:
    base = dict(id="s", backlog=0, running=0, mpps=2, job_seconds=1.0, target_latency=30.0)
    return StreamState(**{**base, **kw})


def idle_node(node_id: str, idle_for: float, **kw) -> NodeState:
    base = dict(
        id=node_id,
        node_class="default",
        heartbeat=NOW,
        busy=False,
        idle_since=NOW - idle_for,
        started=NOW - 1000,
    )
    return NodeState(**{**base, **kw})


def booting(node_id: str, booted_for: float, **kw) -> NodeState:
    base = dict(
        id=node_id,
        node_class="default",
        heartbeat=0.0,
        busy=False,
        idle_since=None,
        started=NOW - booted_for,
        state=NODE_BOOTING,
    )
    return NodeState(**{**base, **kw})


def pending(node_id: str, booted_for: float) -> NodeState:
    """A launched instance Auto Scaling does not call InService yet."""
    return booting(node_id, booted_for, in_service=False)


def one(streams=(), nodes=(), groups=(), memory=None, params=None, now=NOW):
    decision = decide(PolicyInput(now, tuple(streams), tuple(nodes), tuple(groups)), memory, params)
    return decision.groups[0], decision.memory


def test_scales_from_zero_on_the_first_due_job():
    d, _ = one([stream(backlog=1)], groups=[group()])
    assert (d.action, d.desired) == ("scale-out", 1)


def test_scale_out_is_sized_to_drain_the_backlog_within_target_latency():
    # 300 due jobs of 2 s within 30 s need 20 slots; mpps 4 -> 5 nodes (a 20 s boot
    # leaves time within the target: not a cold start past it).
    quick = group(boot_seconds=20.0)
    d, _ = one([stream(backlog=300, job_seconds=2.0, mpps=4)], groups=[quick])
    assert d.desired == 5
    # A tighter target asks for more.
    d, _ = one([stream(backlog=300, job_seconds=2.0, mpps=4, target_latency=5)], groups=[quick])
    assert d.desired == 20


def test_a_cold_start_whose_boot_passes_the_target_gives_each_job_a_slot():
    # Nothing in service or booting, a 60 s boot against a 30 s target: every job waits a
    # boot already, so 300 jobs ask for 300 slots (75 nodes of 4), up to the group's max.
    s = stream(backlog=300, job_seconds=2.0, mpps=4)
    d, _ = one([s], groups=[group(max=100, boot_seconds=60.0)])
    assert d.desired == 75
    d, _ = one([s], groups=[group(max=20, boot_seconds=60.0)])
    assert d.desired == 20
    # With a node in service it is no cold start: the target-latency sizing applies.
    warm = group(max=100, boot_seconds=60.0, desired=1, in_service=1)
    d, _ = one([replace(s, backlog=600)], [idle_node("i-1", 0)], [warm])
    assert 1 < d.desired < 75


def test_pending_nodes_are_counted_so_repeated_ticks_do_not_launch_twice():
    s = stream(backlog=300, job_seconds=2.0, mpps=4)
    first, memory = one([s], groups=[group()])
    again, _ = one([s], groups=[group(desired=first.desired, pending=first.desired)], memory=memory)
    assert again.desired == first.desired and again.action == "hold"


def test_no_new_nodes_for_backlog_the_nodes_in_service_reach_before_a_boot():
    # 4 nodes x 4 slots run 2 s jobs: in a 60 s boot they start 480 jobs, half of them
    # (reach_share 0.5) for the backlog: 200 due need no new node.
    s = stream(backlog=200, running=16, job_seconds=2.0, mpps=4)
    d, _ = one([s], groups=[group(desired=4, in_service=4)])
    assert d.desired == 4 and "beyond the reach" in d.needs[0].reason


def test_only_a_share_of_the_reach_counts_the_rest_serves_arrivals():
    # 400 due: beyond half the reach (240) by 160 jobs, so new nodes; with the whole
    # reach counted (share 1, no arrivals assumed) none.
    s = stream(backlog=400, running=16, job_seconds=2.0, mpps=4)
    g = group(desired=4, in_service=4)
    d, _ = one([s], groups=[g])
    assert d.action == "scale-out" and d.desired > 4
    d, _ = one([s], groups=[g], params=PolicyParams(reach_share=1.0))
    assert d.desired == 4 and d.action == "hold"


def test_nodes_booting_for_a_while_count_toward_the_reach():
    # 200 due 2 s jobs, nothing in service, 5 nodes launched 40 s ago: they start work
    # 40 s before a node launched now could, 5 x 4 slots x 40 s / 2 s = 400 jobs, half
    # of them for the backlog: enough, though a 5 s target alone would ask for 20 nodes.
    s = stream(backlog=200, job_seconds=2.0, mpps=4, target_latency=5.0)
    g = group(desired=5, pending=5)
    booting = [pending(f"i-{i}", 40) for i in range(5)]
    d, _ = one([s], booting, [g])
    assert d.desired == 5 and d.action == "hold" and "and 5 booting" in d.needs[0].reason
    fresh = [replace(n, started=NOW - 1) for n in booting]  # just launched: they reach little
    d, _ = one([s], fresh, [g])
    assert d.desired > 5 and d.action == "scale-out"


def test_an_instance_in_service_whose_agent_is_not_heard_from_counts_once_as_booting():
    # Auto Scaling calls an instance InService once it runs, a minute before its agent
    # beats. One such node, booting for 90 s: its reach (4 slots x 60 s / 2 s = 120 jobs,
    # half for the backlog) is counted once, so 100 due jobs ask for a second node;
    # counted both in service and booting (120 jobs for the backlog) they did not.
    s = stream(backlog=100, job_seconds=2.0, mpps=4)
    g = group(desired=1, in_service=1)
    d, _ = one([s], [booting("i-slow", 90)], [g])
    assert (d.action, d.desired) == ("scale-out", 2)
    d, _ = one([s], [idle_node("i-up", 0, busy=True, idle_since=None)], [g])
    assert d.action == "scale-out"  # heard from: the same reach, in service
    d, _ = one([stream(backlog=50, job_seconds=2.0, mpps=4)], [booting("i-slow", 90)], [g])
    assert d.action == "hold" and d.desired == 1  # within its reach


def test_a_booting_node_is_kept_while_the_backlog_outlasts_its_boot():
    # 1 node in service, 2 booting (due in 10 s and 40 s); 100 due 2 s jobs on 4 slots are
    # 50 node-s of work: before the later one arrives, the others do 40 + 30 = 70: cancel
    # it; before the earlier one, only 10: keep it even though the need formula is lower.
    g = group(desired=3, in_service=1, pending=2)
    nodes = [
        idle_node("i-up", 0, busy=True, idle_since=None),
        pending("i-soon", 50),
        pending("i-late", 20),
    ]
    d, _ = one([stream(backlog=100, job_seconds=2.0, mpps=4)], nodes, [g])
    assert d.terminate == ("i-late",) and d.desired == 2


def test_min_nodes_and_max_nodes_of_a_stream_are_respected():
    d, _ = one([stream(min_nodes=2)], groups=[group()])
    assert d.desired == 2
    d, _ = one([stream(backlog=10_000, max_nodes=3)], groups=[group()])
    assert d.desired == 3


def test_node_class_picks_the_group_that_serves_the_stream():
    gpu = group(node_class="gpu", name="gpu-asg")
    decision = decide(PolicyInput(NOW, (stream(backlog=50, node_class="gpu"),), (), (group(), gpu)))
    by_class = {g.node_class: g for g in decision.groups}
    assert by_class["default"].desired == 0 and by_class["gpu"].desired >= 1


def test_rate_caps_nodes_at_what_the_rate_keeps_busy():
    # 1 job/s of 2 s jobs keeps 2 slots busy: one node of mpps 2, whatever the backlog.
    d, _ = one([stream(backlog=5000, job_seconds=2.0, rate=1.0)], groups=[group()])
    assert d.desired == 1 and "rate" in d.needs[0].reason


def test_desired_is_never_set_outside_the_group_limits():
    d, _ = one([stream(backlog=10_000)], groups=[group(max=3)])
    assert d.desired == 3
    d, _ = one([], groups=[group(min=2, desired=2, in_service=2)])
    assert d.desired == 2 and not (d.drain or d.retire)


def test_scale_in_needs_k_consecutive_ticks_and_then_terminates_the_idle_node():
    g = group(desired=1, in_service=1)
    memory = Memory()
    node = idle_node("i-1", idle_for=120)
    for tick in range(2):
        d, memory = one([], [node], [g], memory=memory, now=NOW + tick)
        assert not (d.drain or d.retire) and d.desired == 1, tick
    d, memory = one([], [node], [g], memory=memory, now=NOW + 2)
    assert d.action == "scale-in" and d.retire == ("i-1",) and not d.drain
    assert d.desired == 0  # terminated with decrement: the group never picks a victim
    assert not memory.draining  # nothing to wait for: the lifecycle hook holds the rest


def test_without_retire_idle_the_idle_node_is_drained_then_terminated():
    params = PolicyParams(scale_in_ticks=1, retire_idle=False)
    g = group(desired=1, in_service=1)
    d, memory = one([], [idle_node("i-1", idle_for=120)], [g], params=params)
    assert d.drain == ("i-1",) and not d.retire and d.desired == 1
    assert "i-1" in memory.draining


def test_a_tick_with_work_resets_the_scale_in_agreement():
    g = group(desired=1, in_service=1)
    node = idle_node("i-1", idle_for=120)
    _, memory = one([], [node], [g])
    _, memory = one([], [node], [g], memory=memory)
    _, memory = one([stream(running=1)], [node], [g], memory=memory)  # work came back
    d, _ = one([], [node], [g], memory=memory)
    assert not (d.drain or d.retire)


def test_scale_in_only_nodes_idle_for_half_their_boot_time_by_default():
    params = PolicyParams(scale_in_ticks=1)
    g = group(desired=1, in_service=1, boot_seconds=90)
    d, _ = one([], [idle_node("i-1", idle_for=40)], [g], params=params)
    assert not d.retire  # idle 40 s < half of boot 90 s
    d, _ = one([], [idle_node("i-1", idle_for=45)], [g], params=params)
    assert d.retire == ("i-1",)
    assert "idle >= 45s" in one([], [idle_node("i-1", 44)], [g], params=params)[0].reason


def test_an_idle_floor_overrides_the_boot_estimate():
    params = PolicyParams(scale_in_ticks=1, idle_floor=10)
    g = group(desired=1, in_service=1, boot_seconds=90)
    assert not one([], [idle_node("i-1", idle_for=9)], [g], params=params)[0].retire
    assert one([], [idle_node("i-1", idle_for=10)], [g], params=params)[0].retire == ("i-1",)


def test_a_node_leaves_only_once_its_60_second_billing_minimum_is_paid():
    params = PolicyParams(scale_in_ticks=1, idle_floor=5)
    g = group(desired=1, in_service=1, boot_seconds=10)
    young = idle_node("i-1", idle_for=30, started=NOW - 59)  # idle, but up only 59 s
    d, _ = one([], [young], [g], params=params)
    assert not (d.drain or d.retire) and "up >= 60s" in d.reason
    d, _ = one([], [replace(young, started=NOW - 60)], [g], params=params)
    assert d.retire == ("i-1",)
    # with no billing minimum (the local stack) the idle floor alone decides
    d, _ = one([], [young], [g], params=PolicyParams(scale_in_ticks=1, idle_floor=5, min_billed=0))
    assert d.retire == ("i-1",)


def test_the_idle_rule_still_waits_for_k_ticks_and_never_takes_a_busy_node():
    params = PolicyParams(idle_floor=0, min_billed=0)  # the loosest rule: 3 ticks still
    g = group(desired=2, in_service=2)
    nodes = [idle_node("i-1", 0), idle_node("i-2", 0, busy=True, idle_since=None)]
    memory = None
    for tick in range(2):
        d, memory = one([], nodes, [g], memory=memory, params=params, now=NOW + tick)
        assert not (d.drain or d.retire), tick
    d, _ = one([], nodes, [g], memory=memory, params=params, now=NOW + 2)
    assert d.retire == ("i-1",)  # the idle one only; the busy one keeps its job


def test_busy_or_protected_nodes_are_never_drained():
    params = PolicyParams(scale_in_ticks=1)
    g = group(desired=2, in_service=2)
    busy = idle_node("i-1", idle_for=0, busy=True, idle_since=None)
    protected = idle_node("i-2", idle_for=500, protected=True)
    d, _ = one([], [busy, protected], [g], params=params)
    assert not (d.drain or d.retire)


def test_drained_nodes_are_terminated_with_decrement_not_left_to_the_group():
    params = PolicyParams(scale_in_ticks=1, retire_idle=False)
    g = group(desired=2, in_service=2)
    nodes = [idle_node("i-1", 500), idle_node("i-2", 100)]
    d, memory = one([stream(running=1, mpps=2)], nodes, [g], params=params)
    assert d.drain == ("i-1",) and d.desired == 2  # the longest idle, desired unchanged
    drained = [idle_node("i-1", 510, state=NODE_DRAINED), nodes[1]]
    d, memory = one([stream(running=1, mpps=2)], drained, [g], memory=memory, params=params)
    assert d.terminate == ("i-1",) and d.desired == 1


def test_a_node_draining_on_its_own_is_replaced_at_once_and_terminated_once_drained():
    # A Spot notice: the agent drains, DFS did not ask. Two nodes busy, 100 due: one
    # of them noticed: it starts nothing more, so a replacement is launched now (not two
    # minutes later, when EC2 reclaims it); drained, it goes with decrement.
    g = group(desired=2, in_service=2)
    s = stream(running=8, backlog=100, mpps=4, job_seconds=2.0)
    noticed = busy_node("i-spot", 4, state=NODE_DRAINING)
    d, memory = one([s], [noticed, busy_node("i-ok", 4)], [g])
    assert (d.action, d.desired) == ("scale-out", 3) and "i-spot" in memory.draining
    g = group(desired=3, in_service=2, pending=1)
    done = idle_node("i-spot", 0, state=NODE_DRAINED)
    d, memory = one([s], [done, busy_node("i-ok", 4)], [g], memory=memory)
    assert d.terminate == ("i-spot",) and "i-spot" not in memory.draining
    d, _ = one([s], [noticed, busy_node("i-ok", 4)], [group(desired=2, in_service=2)])
    assert d.terminate == ()  # still draining: it finishes its jobs first


def test_a_draining_node_is_not_counted_as_capacity_that_stays():
    g = group(desired=2, in_service=2)
    memory = Memory(draining={"i-1": NOW - 5})
    nodes = [idle_node("i-1", 100, state=NODE_DRAINING), idle_node("i-2", 0, busy=True)]
    d, _ = one([stream(running=4, backlog=100, mpps=2)], nodes, [g], memory=memory)
    # i-2 stays; more is needed: desired grows past the node that is leaving.
    assert d.action == "scale-out" and d.desired > 2


def test_scale_in_never_goes_below_the_group_minimum():
    params = PolicyParams(scale_in_ticks=1)
    g = group(min=1, desired=2, in_service=2)
    d, _ = one([], [idle_node("i-1", 500), idle_node("i-2", 400)], [g], params=params)
    assert len(d.retire) == 1


def test_every_decision_has_a_reason():
    d, _ = one([stream(backlog=3)], groups=[group()])
    assert "need 2" in d.reason and "cold start" in d.needs[0].reason
    d, _ = one([stream(backlog=3)], groups=[group(boot_seconds=20.0)])
    assert "need 1" in d.reason and "3 due" in stream_need(stream(backlog=3)).reason


def test_surplus_nodes_still_booting_are_cancelled_at_once_newest_first():
    g = group(desired=3, in_service=1, pending=2)
    nodes = [
        idle_node("i-up", 0, busy=True, idle_since=None),
        pending("i-old", 30),
        pending("i-new", 5),
    ]
    d, _ = one([stream(running=2, mpps=2)], nodes, [g])  # one node's work: two surplus
    assert d.terminate == ("i-new", "i-old") and d.desired == 1 and not d.drain
    d, _ = one([stream(running=2, backlog=2, mpps=2)], nodes, [g], params=PolicyParams())
    assert "i-up" not in d.terminate  # a node that heartbeats is never cancelled


def test_a_node_without_heartbeat_past_the_boot_deadline_is_terminated_with_decrement():
    params = PolicyParams(boot_deadline=600)
    g = group(desired=2, in_service=2)
    s = stream(min_nodes=2)
    d, _ = one([s], [booting("young", 599), booting("old", 601)], [g], params=params)
    assert d.failed == ("old",) and "old" in d.terminate and "young" not in d.terminate
    # the rest of the decision saw one node fewer: it asks for the replacement at once
    assert (d.previous, d.desired, d.action) == (2, 2, "scale-out")
    assert d.reason.startswith("failed boot: old sent no heartbeat within boot_deadline 600s")


def test_a_pending_instance_is_not_a_failed_boot_and_failures_are_remembered():
    params = PolicyParams(boot_deadline=600)
    g = group(desired=1, pending=1)
    d, memory = one(
        [stream(min_nodes=1)], [booting("p", 900, in_service=False)], [g], params=params
    )
    assert d.failed == () and memory.failed == {}
    g = group(desired=1, in_service=1)
    d, memory = one([stream(min_nodes=1)], [booting("i", 900)], [g], params=params)
    assert memory.failed == {"default": [NOW]}


def test_at_the_groups_min_a_failed_boot_is_replaced_without_decrement():
    params = PolicyParams(boot_deadline=600)
    g = group(min=1, desired=1, in_service=1)
    d, _ = one([], [booting("stuck", 700)], [g], params=params)
    assert d.replace == ("stuck",) and d.terminate == () and d.desired == 1


def busy_node(node_id: str, jobs: int, **kw) -> NodeState:
    base = dict(
        id=node_id,
        node_class="default",
        heartbeat=NOW,
        busy=True,
        idle_since=None,
        started=NOW - 1000,
        protected=True,  # agents hold protection while busy
        jobs=jobs,
    )
    return NodeState(**{**base, **kw})


def test_the_floor_keeps_the_slots_a_stream_keeps_busy_and_never_launches():
    # 6 jobs/s of 2 s keep 12 slots busy; at most 75 % of the slots kept: 16 slots, 4 nodes.
    s = stream(running=2, mpps=4, job_seconds=2.0, throughput=6.0)
    nodes = [idle_node(f"i-{k}", 500.0) for k in range(6)]
    d, _ = one([s], nodes, [group(desired=6, in_service=6)], params=PolicyParams(scale_in_ticks=1))
    assert (d.floor, d.action, len(d.retire)) == (4, "scale-in", 2)
    # The floor is no reason to launch: an empty group gets what the need formula says.
    d, _ = one([replace(s, running=0, backlog=1)], groups=[group()])
    assert (d.floor, d.desired) == (4, 1)
    # A stream with nothing due or running keeps nothing, whatever it did before.
    d, _ = one([replace(s, running=0)], nodes, [group(desired=6, in_service=6)])
    assert d.floor == 0


def consolidation_ticks(nodes, s, g, params, ticks):
    """Decisions of ``ticks`` ticks a second apart, memory carried."""
    memory, out = None, []
    for k in range(ticks):
        d, memory = one([s], nodes, [g], memory=memory, params=params, now=NOW + k)
        out.append(d)
    return out


def test_capacity_idle_for_the_threshold_drains_the_least_busy_node():
    # Three nodes, each a little busy (agents spread work): none is idle, but the stream
    # needs one node and keeps one busy. Once that surplus has lasted the idle threshold
    # (10 s here), the node holding the fewest jobs drains: it finishes them first.
    s = stream(running=4, mpps=4, job_seconds=2.0, throughput=1.0)
    nodes = [busy_node("i-a", 2), busy_node("i-b", 1), busy_node("i-c", 1, started=NOW - 30)]
    params = PolicyParams(idle_floor=10.0)
    decisions = consolidation_ticks(nodes, s, group(desired=3, in_service=3), params, 12)
    drains = [(k, d.drain) for k, d in enumerate(decisions) if d.drain]
    # i-c holds as few jobs but has not paid its billing minimum (60 s): i-b goes, once.
    assert drains == [(10, ("i-b",))]
    assert "least-busy" in decisions[10].reason


def test_waiting_jobs_restart_the_surplus_clock_and_consolidation_can_be_off():
    nodes = [busy_node("i-a", 2), busy_node("i-b", 1), busy_node("i-c", 1)]
    g = group(desired=3, in_service=3)
    params = PolicyParams(idle_floor=10.0)
    waiting = stream(backlog=1, running=4, mpps=4, job_seconds=2.0, throughput=1.0)
    assert not any(d.drain for d in consolidation_ticks(nodes, waiting, g, params, 15))
    calm = replace(waiting, backlog=0)
    off = replace(params, consolidate=False)
    assert not any(d.drain for d in consolidation_ticks(nodes, calm, g, off, 15))


def test_a_node_protected_while_idle_is_never_consolidated():
    # Agents drop protection once idle: an idle node still protected was protected by
    # someone else, and stays.
    s = stream(running=1, mpps=4, job_seconds=2.0, throughput=0.5)
    nodes = [busy_node("i-a", 1), idle_node("i-b", 0.0, protected=True)]
    params = PolicyParams(idle_floor=5.0)
    decisions = consolidation_ticks(nodes, s, group(desired=2, in_service=2), params, 10)
    assert [d.drain for d in decisions if d.drain] == [("i-a",)]


def test_nodes_asked_to_drain_do_not_count_toward_the_reach():
    # Two nodes in service, one of them draining: the reach (jobs started before a new
    # node boots) is one node's, so a backlog beyond it asks for a node.
    s = stream(backlog=100, running=8, mpps=4, job_seconds=2.0)
    nodes = [busy_node("i-a", 4), busy_node("i-b", 4, state=NODE_DRAINING)]
    g = group(desired=2, in_service=2)
    memory = Memory(draining={"i-b": NOW - 5})
    d, _ = one([s], nodes, [g], memory=memory)
    assert d.action == "scale-out"
    d, _ = one([s], [nodes[0], replace(nodes[1], state="running")], [g])
    assert d.action != "scale-out"


def test_a_node_is_trusted_until_its_own_expiry_not_a_fixed_staleness():
    # Idle agents beat about once a minute and write when their next beat is due (plus a
    # grace) as `expires`: a 64 s old beat that promised one by now + 1 still counts.
    params = PolicyParams(scale_in_ticks=1)
    g = group(desired=2, in_service=2)
    quiet = idle_node("i-quiet", 500.0, heartbeat=NOW - 64, fresh_until=NOW + 1)
    d, _ = one([], [quiet], [g], params=params)
    assert d.retire == ("i-quiet",)
    late = replace(quiet, fresh_until=NOW - 1)
    d, _ = one([], [late], [g], params=params)
    assert d.retire == ()
