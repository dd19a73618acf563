"""When the DFS Lambda ticks again within one invocation (impetus/scaler/tick.follow_up)."""

from __future__ import annotations

from test_dfs_policy import NOW, group, idle_node, stream

from impetus.scaler import tick
from impetus.scaler.model import Memory, NodeState, PolicyInput, StreamState
from impetus.scaler.params import PolicyParams
from impetus.scaler.policy import decide


def next_in(streams=(), nodes=(), groups=(), memory=None):
    inputs = PolicyInput(NOW, tuple(streams), tuple(nodes), tuple(groups))
    decision = decide(inputs, memory, PolicyParams())
    return tick.follow_up(inputs, decision, PolicyParams(), tick.is_active(inputs, decision))


def test_every_10_seconds_while_work_waits_and_not_at_all_when_nothing_is_up():
    assert next_in([stream(backlog=5)], groups=[group()]) == tick.FOLLOW_UP
    assert next_in([StreamState("s", 0, 0)], groups=[group()]) is None


def test_right_when_the_next_idle_node_reaches_the_idle_threshold():
    nodes = [idle_node("i-1", 25.0), idle_node("i-2", 10.0)]
    g = group(desired=2, in_service=2)
    assert next_in([stream()], nodes, [g]) == 5.0  # i-1 reaches 30 s idle (boot/2) in 5 s
    # no surplus (min keeps both): no hurry, and nothing to follow
    assert next_in([stream()], nodes, [group(desired=2, in_service=2, min=2)]) is None
    # past the threshold already (waiting for the ticks to agree): the usual pace
    assert next_in([stream()], [idle_node("i-1", 70.0)], [group(desired=1, in_service=1)]) == 10


def test_right_when_an_idle_node_has_run_its_billing_minimum():
    young = idle_node("i-1", 40.0, started=NOW - 52)  # idle long enough, up 52 s of 60
    assert next_in([stream()], [young], [group(desired=1, in_service=1)]) == 8.0


def test_every_2_seconds_while_a_drain_is_in_flight():
    draining = NodeState("i-1", "default", NOW, False, NOW - 100, NOW - 500, state="draining")
    memory = Memory(draining={"i-1": NOW - 3})
    got = next_in([stream()], [draining], [group(desired=1, in_service=1)], memory)
    assert got == tick.DRAIN_POLL
