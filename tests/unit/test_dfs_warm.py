"""Warm capacity (impetus/scaler/warm.py): after a batch, idle nodes beyond those that
would start the recent peak load without a launch leave once billed."""

from __future__ import annotations

from dataclasses import replace

from test_dfs_policy import NOW, group, idle_node, one, stream

from impetus.scaler import warm
from impetus.scaler.model import Memory
from impetus.scaler.params import PolicyParams
from impetus.scaler.policy import stream_need


def need(s, g):
    return stream_need(s, g, (), PolicyParams().reach_share).nodes


def test_warm_nodes_is_the_fewest_whose_reach_starts_the_load_without_a_launch():
    # mpps 2, 1 s jobs, 60 s boots: half of a node's reach in a boot is 60 jobs
    g = group(max=20, boot_seconds=60)
    assert warm.warm_nodes(stream(backlog=130), g, need) == 3
    assert warm.warm_nodes(stream(backlog=100, running=30), g, need) == 3  # running counts
    assert warm.warm_nodes(stream(backlog=120), g, need) == 2
    assert warm.warm_nodes(stream(), g, need) == 0
    for load in (1, 59, 61, 500, 5000):  # the definition: need(k) <= k, and not for k - 1
        k = warm.warm_nodes(stream(backlog=load), g, need)
        due = stream(backlog=load)
        assert need(due, replace(g, in_service=k)) <= k or k == g.max
        assert k == 0 or need(due, replace(g, in_service=k - 1)) > k - 1


def test_the_recent_peak_lasts_the_window_and_memory_keeps_only_what_can_still_win():
    memory = Memory()
    assert warm.recent_peak(memory, "g", 0.0, 8, window=120) == 8
    assert warm.recent_peak(memory, "g", 10.0, 3, window=120) == 8
    assert warm.recent_peak(memory, "g", 20.0, 5, window=120) == 8
    assert memory.warm["g"] == [[0.0, 8], [20.0, 5]]  # 3 can never be the peak again
    assert warm.recent_peak(memory, "g", 125.0, 0, window=120) == 5  # 8 left the window
    assert warm.recent_peak(memory, "g", 200.0, 0, window=120) == 0
    assert "g" not in memory.warm
    assert Memory.from_json(Memory(warm={"g": [[1, 2]]}, quiet={"g": 3}).to_json()).warm == {
        "g": [[1.0, 2.0]]
    }


def batch_then_quiet(idle_for: float, quiet_for: float, params: PolicyParams | None = None):
    """Four idle nodes after a batch of 100 jobs, the stream quiet for ``quiet_for`` s."""
    memory = Memory(
        agree={"default": 3}, warm={"default": [[NOW - 30, 2]]}, quiet={"default": NOW - quiet_for}
    )
    nodes = [idle_node(f"i-{k}", idle_for - k) for k in range(4)]
    return one([stream()], nodes, [group(desired=4, in_service=4)], memory, params)[0]


def test_after_a_batch_the_nodes_beyond_the_warm_ones_leave_before_the_idle_threshold():
    d = batch_then_quiet(idle_for=10, quiet_for=10)
    assert d.warm == 2 and d.retire == ("i-0", "i-1")  # the longest idle go; 2 stay warm
    assert d.desired == 2 and d.action == "scale-in"
    # the warm ones leave at the idle threshold (30 s, half a boot)
    assert batch_then_quiet(idle_for=40, quiet_for=40).retire == ("i-0", "i-1", "i-2", "i-3")


def test_nobody_leaves_early_until_the_streams_have_been_quiet_a_few_seconds():
    d = batch_then_quiet(idle_for=10, quiet_for=warm.QUIET_SECONDS - 1)
    assert not d.retire and "no node idle >= 30s" in d.reason
    # work due or running: every node is warm, and the quiet clock starts again
    memory = Memory(agree={"default": 3}, quiet={"default": NOW - 60})
    nodes = [idle_node("i-0", 10), idle_node("i-1", 10, busy=True, idle_since=None)]
    d, memory = one([stream(running=1)], nodes, [group(desired=2, in_service=2)], memory)
    assert not d.retire and d.warm == 20 and "default" not in memory.quiet


def test_without_a_warm_window_every_idle_node_waits_for_the_threshold():
    params = PolicyParams(warm_window=None)
    assert not batch_then_quiet(idle_for=10, quiet_for=10, params=params).retire


def test_a_node_beyond_the_warm_ones_still_pays_its_billing_minimum_first():
    memory = Memory(agree={"default": 3}, quiet={"default": NOW - 10})
    young = idle_node("i-0", 10, started=NOW - 59)
    g = group(desired=1, in_service=1)
    d, _ = one([stream()], [young], [g], memory)
    assert not d.retire
    d, _ = one([stream()], [replace(young, started=NOW - 60)], [g], memory)
    assert d.retire == ("i-0",)
