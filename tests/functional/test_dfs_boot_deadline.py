"""Nodes that never boot are replaced, not billed forever; DFS's metrics go out once a
minute, not once a tick. DFS ticks on moto (autoscaling + ec2) with a controllable clock."""

from __future__ import annotations

import time

import boto3

from impetus.scaler import tick
from impetus.scaler.config import DfsSettings
from impetus.storage.decisions import DecisionLog
from tests.functional.test_dfs_handler import env, fork, group, in_service  # noqa: F401


def test_an_instance_that_never_heartbeats_is_terminated_after_the_deadline(env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("IMPETUS_DFS_BOOT_DEADLINE", "600")
    asg = env["asg"]
    env["queue"].create_stream("s", {"min_nodes": 1})  # keeps one node: none is cancelled
    asg.set_desired_capacity(AutoScalingGroupName="impetus-default", DesiredCapacity=1)
    (silent,) = in_service(asg)
    settings, t0 = DfsSettings.from_env(), time.time()
    tick.run(settings, now=t0)  # first seen: its boot clock starts
    tick.run(settings, now=t0 + 599)
    assert in_service(asg) == [silent] and group(asg)["DesiredCapacity"] == 1  # not before
    result = tick.run(settings, now=t0 + 601)
    (chosen,) = result.groups
    assert list(chosen["failed"]) == list(chosen["terminate"]) == [silent]  # with decrement
    assert chosen["done"][0] == f"terminated {silent} (failed boot)"
    assert chosen["done"][1] == "desired 0 -> 1"  # the next decision launches a replacement
    assert silent not in in_service(asg) and group(asg)["DesiredCapacity"] == 1
    (entry,) = [e for e in DecisionLog.from_settings().recent() if e["decision"]["failed"]]
    assert "failed boot" in entry["decision"]["reason"] and silent in entry["decision"]["reason"]


def test_work_that_still_needs_a_node_gets_a_replacement(env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("IMPETUS_DFS_BOOT_DEADLINE", "600")
    queue, asg = env["queue"], env["asg"]
    queue.create_stream("s", {"mpps": 2})
    fork(queue, "s", 1)
    settings, t0 = DfsSettings.from_env(), time.time()
    tick.run(settings, now=t0)  # launches one node for the job
    (silent,) = in_service(asg)
    tick.run(settings, now=t0 + 1)  # sees it booting (DFS launched it at most a tick before)
    tick.run(settings, now=t0 + 602)
    assert group(asg)["DesiredCapacity"] == 1
    (replacement,) = in_service(asg)
    assert replacement != silent


def test_repeated_failures_are_counted_for_the_alarm(env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("IMPETUS_DFS_BOOT_DEADLINE", "100")
    queue = env["queue"]
    queue.create_stream("s", {"mpps": 2})
    fork(queue, "s", 1)
    settings, t0 = DfsSettings.from_env(), time.time()
    for i in range(7):  # launch, see it boot, fail and replace, ...: three failures
        tick.run(settings, now=t0 + i * 101)
    memory = DecisionLog.from_settings().load_memory()
    assert len(memory.failed["default"]) == 3


class Counter:
    def __init__(self, client):
        self.calls = 0
        client.meta.events.register("before-call.cloudwatch.PutMetricData", self)

    def __call__(self, **kwargs):
        self.calls += 1


def test_metrics_are_put_once_a_minute_not_once_a_tick(env):  # noqa: F811
    queue = env["queue"]
    queue.create_stream("s", {"mpps": 2})
    fork(queue, "s", 3)
    settings = DfsSettings.from_env()
    clients = tick.Clients.create(settings)
    counter = Counter(clients.cloudwatch)
    start = (int(time.time()) // 60 + 1) * 60  # a minute's start
    for i in range(24):  # two minutes of ticks every 5 s
        tick.run(settings, clients, now=start + 5 * i)
    assert counter.calls == 2  # one per minute (the first tick of each), not 24
    tick.run(settings, clients, now=start + 120)
    assert counter.calls == 3
    cw = boto3.client("cloudwatch")
    metrics = cw.list_metrics(Namespace="Impetus")["Metrics"]
    assert all(d["Name"] != "Stream" for m in metrics for d in m["Dimensions"])
