"""How DFS turns what it reads into policy inputs (impetus/scaler/collect.py)."""

from __future__ import annotations

from impetus.scaler import collect
from impetus.scaler.model import NODE_BOOTING, NODE_DRAINING, NODE_RUNNING, Memory

INSTANCE = {"InstanceId": "i-1", "LifecycleState": "InService", "ProtectedFromScaleIn": False}


def test_idle_since_holds_while_the_node_does_nothing_and_resets_on_work():
    memory = Memory()
    item = {"node": "i-1", "heartbeat": 100.0, "claims": 0, "workers_busy": 0, "jobs_done": 5}
    first = collect.node_state("default", INSTANCE, item, memory, now=100.0)
    later = collect.node_state("default", INSTANCE, item, memory, now=130.0)
    assert first.idle_since == later.idle_since == 100.0 and first.state == NODE_RUNNING
    worked = collect.node_state("default", INSTANCE, {**item, "jobs_done": 9}, memory, now=140.0)
    assert worked.idle_since == 140.0  # it ran jobs between two ticks: idle only since now
    busy = collect.node_state("default", INSTANCE, {**item, "claims": 1}, memory, now=150.0)
    assert busy.busy and busy.idle_since is None and "i-1" not in memory.idle


def test_idle_since_reported_by_the_agent_wins_over_the_first_tick_that_saw_it():
    memory = Memory()
    item = {"node": "i-1", "heartbeat": 100.0, "claims": 0, "jobs_done": 5, "idle_since": 93.0}
    seen = collect.node_state("default", INSTANCE, item, memory, now=101.0)
    assert seen.idle_since == 93.0  # not 101: the node knows when it went idle
    future = collect.node_state("default", INSTANCE, {**item, "idle_since": 500.0}, memory, 102.0)
    assert future.idle_since == 102.0  # a clock ahead of DFS's never makes it idle longer


def test_a_node_without_heartbeat_is_booting_and_a_drain_request_shows():
    booting = collect.node_state("default", INSTANCE, None, Memory(), now=1.0)
    assert booting.state == NODE_BOOTING and booting.heartbeat == 0
    asked = collect.node_state("default", INSTANCE, {"node": "i-1", "drain": True}, Memory(), 1.0)
    assert asked.state == NODE_DRAINING


def test_a_booting_node_started_when_a_tick_first_saw_it():
    memory = Memory()
    collect.node_state("default", INSTANCE, None, memory, now=50.0)
    later = collect.node_state("default", INSTANCE, None, memory, now=60.0)
    assert later.started == 50.0  # how long it has booted counts toward the reach
    item = {"node": "i-1", "heartbeat": 70.0, "started": 65.0, "claims": 0}
    assert collect.node_state("default", INSTANCE, item, memory, now=70.0).started == 65.0


def test_group_state_counts_in_service_and_pending():
    described = {
        "AutoScalingGroupName": "g",
        "MinSize": 0,
        "MaxSize": 5,
        "DesiredCapacity": 3,
        "Instances": [
            {"InstanceId": "a", "LifecycleState": "InService"},
            {"InstanceId": "b", "LifecycleState": "Pending"},
            {"InstanceId": "c", "LifecycleState": "Pending:Wait"},
        ],
    }
    g = collect.group_state("default", described, 60.0)
    assert (g.desired, g.in_service, g.pending, g.max) == (3, 1, 2, 5)


def test_stream_states_take_properties_defaults_and_due_delayed_jobs():
    memory = Memory(jobs={"gone": [0, 0, 0, 1.0]})
    listing = [
        {
            "id": "s",
            "properties": {"mpps": 3, "node_class": "gpu", "max_nodes": 2},
            "counts": {"waiting": 4, "running": 1, "finished": 0, "acked": 0},
        }
    ]
    (s,) = collect.stream_states(listing, memory, now=10.0, due={"s": 6})
    assert (s.backlog, s.running, s.mpps, s.node_class, s.max_nodes) == (10, 1, 3, "gpu", 2)
    assert s.target_latency == 30.0 and s.min_nodes == 0 and s.rate is None
    assert set(memory.jobs) == {"s"}  # samples of deleted streams are dropped


def test_autoscaling_properties_are_validated():
    import pytest

    from impetus.core import properties
    from impetus.core.exceptions import InvalidRequest

    ok = properties.validate({"target_latency": 5, "min_nodes": 1, "max_nodes": 3, "rate": 2})
    assert ok["target_latency"] == 5.0 and ok["rate"] == 2.0
    assert properties.get({}, "node_class") == "default" and properties.get({}, "max_nodes") is None
    for bad in (
        {"min_nodes": 3, "max_nodes": 1},
        {"node_class": "no spaces"},
        {"target_latency": 0},
        {"rate": 0},
        {"max_nodes": True},
    ):
        with pytest.raises(InvalidRequest):
            properties.validate(bad)
