"""When the DFS Lambda ticks again within one invocation (impetus/scaler/tick.follow_up)."""

from __future__ import annotations

from test_dfs_policy import NOW, group, idle_node, stream

from impetus.scaler import tick
from impetus.scaler.model import Memory, NodeState, PolicyInput, StreamState
from impetus.scaler.params import PolicyParams
from impetus.scaler.policy import decide


def next_in(streams=(), nodes=(), groups=(), memory=None, params=None):
    params = params or PolicyParams()
    inputs = PolicyInput(NOW, tuple(streams), tuple(nodes), tuple(groups))
    decision = decide(inputs, memory, params)
    return tick.follow_up(inputs, decision, params, tick.is_active(inputs, decision))


def agreed() -> Memory:
    """Ticks have agreed on a scale-in already (it only waits for a node that may leave)."""
    return Memory(agree={"default": 3})


NO_WARM = PolicyParams(warm_window=None)  # every idle node waits for the threshold


def test_every_10_seconds_while_work_waits_and_not_at_all_when_nothing_is_up():
    assert next_in([stream(backlog=5)], groups=[group()]) == tick.FOLLOW_UP
    assert next_in([StreamState("s", 0, 0)], groups=[group()]) is None


def test_right_when_the_next_idle_node_reaches_the_idle_threshold():
    nodes = [idle_node("i-1", 25.0), idle_node("i-2", 10.0)]
    g = group(desired=2, in_service=2)
    # i-1 reaches 30 s idle (boot/2) in 5 s
    assert next_in([stream()], nodes, [g], agreed(), NO_WARM) == 5.0
    # no surplus (min keeps both): no hurry, and nothing to follow
    assert next_in([stream()], nodes, [group(desired=2, in_service=2, min=2)]) is None


def test_every_2_seconds_while_the_ticks_agree_on_a_scale_in():
    nodes = [idle_node("i-1", 25.0), idle_node("i-2", 10.0)]
    g = group(desired=2, in_service=2)
    assert next_in([stream()], nodes, [g], params=NO_WARM) == tick.AGREE_POLL
    # past the threshold already, the agreement not yet reached: 2 s, not 10
    past = [idle_node("i-1", 70.0)]
    assert next_in([stream()], past, [group(desired=1, in_service=1)]) == tick.AGREE_POLL


def test_right_when_an_idle_node_has_run_its_billing_minimum():
    young = idle_node("i-1", 40.0, started=NOW - 52)  # idle long enough, up 52 s of 60
    assert next_in([stream()], [young], [group(desired=1, in_service=1)], agreed(), NO_WARM) == 8


def test_right_when_the_quiet_streams_let_the_nodes_beyond_the_warm_ones_leave():
    nodes = [idle_node("i-1", 3.0), idle_node("i-2", 3.0)]
    g = group(desired=2, in_service=2)
    memory = Memory(agree={"default": 3}, quiet={"default": NOW - 2})  # quiet for 2 s of 5
    assert next_in([stream()], nodes, [g], memory) == 3.0
    # beyond the warm ones (none: no load in the window) a node leaves once billed
    young = [idle_node("i-1", 3.0, started=NOW - 56)]
    memory = Memory(agree={"default": 3}, quiet={"default": NOW - 10})
    assert next_in([stream()], young, [group(desired=1, in_service=1)], memory) == 4.0


def test_every_2_seconds_while_a_drain_is_in_flight():
    draining = NodeState("i-1", "default", NOW, False, NOW - 100, NOW - 500, state="draining")
    memory = Memory(draining={"i-1": NOW - 3})
    got = next_in([stream()], [draining], [group(desired=1, in_service=1)], memory)
    assert got == tick.DRAIN_POLL
