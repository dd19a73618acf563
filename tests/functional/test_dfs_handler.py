"""The DFS Lambda handler on moto in-process: desired capacity follows the backlog, the
chosen idle node is drained then terminated with decrement, limits are enforced, lease
reaping, decision log, metrics, the API's nudge."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from impetus.cli import main
from impetus.core import codec
from impetus.scaler import metrics, nudge, tick
from impetus.scaler.config import DfsSettings
from impetus.scaler.model import GroupDecision, GroupState
from impetus.storage import dynamo
from impetus.storage.decisions import DecisionLog
from impetus.storage.streams import is_idle
from impetus.storage.tables import NODES, TABLES
from lambdas.dfs.handler import handler


def _square(x):
    return x * x


CODE = codec.dump_function(_square)
DIGEST = codec.digest(CODE)


@pytest.fixture
def env(queue, monkeypatch):
    """Tables, one Auto Scaling group (min 0, max 3) and DFS's environment."""
    ec2 = boto3.client("ec2")
    ec2.create_launch_template(
        LaunchTemplateName="impetus-node",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    asg = boto3.client("autoscaling")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="impetus-default",
        LaunchTemplate={"LaunchTemplateName": "impetus-node", "Version": "$Latest"},
        MinSize=0,
        MaxSize=3,
        DesiredCapacity=0,
        AvailabilityZones=["us-east-1a"],
    )
    monkeypatch.setenv("IMPETUS_NODE_GROUPS", json.dumps({"default": "impetus-default"}))
    monkeypatch.setenv("IMPETUS_DFS_SCALE_IN_TICKS", "2")
    monkeypatch.setenv("IMPETUS_DFS_IDLE_SECONDS", "0")
    monkeypatch.setenv("IMPETUS_BOOT_SECONDS", "0")
    monkeypatch.setattr(tick, "_metrics", metrics.MinuteBuffer())  # a fresh process's
    return {"queue": queue, "asg": asg, "ddb": queue.client}


def fork(queue, stream, n):
    specs = [
        {"name": "_square", "code": DIGEST, "args": codec.dumps(i), "stage": "s1"} for i in range(n)
    ]
    queue.enqueue(stream, specs, {DIGEST: CODE}, codec.PYTHON_VERSION)


def group(asg):
    return asg.describe_auto_scaling_groups(AutoScalingGroupNames=["impetus-default"])[
        "AutoScalingGroups"
    ][0]


def in_service(asg):
    return sorted(i["InstanceId"] for i in group(asg)["Instances"])


def heartbeat(ddb, node_id, busy=False, state="running", jobs_done=0):
    """What a node agent writes (impetus.storage.nodes.NodeBeat.item), without its drain flag."""
    table = TABLES[NODES].physical_name("test")
    now = time.time()
    old = dynamo.deserialize(
        ddb.get_item(TableName=table, Key=dynamo.serialize({"node": node_id})).get("Item", {})
    )
    item = {
        "node": node_id,
        "heartbeat": now,
        "started": now - 100,
        "expires": int(now + 60),
        "claims": 1 if busy else 0,
        "workers_busy": 1 if busy else 0,
        "jobs_done": jobs_done,
        "state": state,
    }
    if old.get("drain"):
        item["drain"] = True
    ddb.put_item(TableName=table, Item=dynamo.serialize(item))


def node_item(ddb, node_id):
    table = TABLES[NODES].physical_name("test")
    answer = ddb.get_item(TableName=table, Key=dynamo.serialize({"node": node_id}))
    return dynamo.deserialize(answer.get("Item", {}))


def test_scales_from_zero_on_the_first_job_and_does_not_launch_twice(env):
    queue, asg = env["queue"], env["asg"]
    queue.create_stream("s", {"mpps": 2})
    handler({}, None)
    assert group(asg)["DesiredCapacity"] == 0
    fork(queue, "s", 1)
    handler({}, None)
    assert group(asg)["DesiredCapacity"] == 1
    handler({}, None)  # the same backlog: no second launch
    assert group(asg)["DesiredCapacity"] == 1 and len(in_service(asg)) == 1


def test_work_stranded_by_a_drifted_counter_still_gets_a_node(env, monkeypatch):
    """The waiting counter lost its jobs (a count that died with its process): DFS's
    audit finds them in the queue, restores the counter, and the fleet scales out."""
    from impetus.scaler.audit import Auditor

    monkeypatch.setattr(tick, "_auditor", Auditor(confirm_after=5))
    queue, asg = env["queue"], env["asg"]
    queue.create_stream("s", {"mpps": 2})
    fork(queue, "s", 3)
    queue.streams.count("s", waiting=-3)
    settings = DfsSettings.from_env()
    now = time.time()
    first = tick.run(settings, now=now)
    assert first.corrected == 0 and group(asg)["DesiredCapacity"] == 0  # nothing seen yet
    second = tick.run(settings, now=now + 6)
    assert second.corrected == 1
    assert queue.get_stream("s")["counts"]["waiting"] == 3
    tick.run(settings, now=now + 7)
    assert group(asg)["DesiredCapacity"] == 1


def test_desired_follows_the_backlog_and_never_exceeds_max(env):
    queue, asg = env["queue"], env["asg"]
    queue.create_stream("s", {"mpps": 2, "target_latency": 1.0})
    fork(queue, "s", 200)  # asks for far more than MaxSize 3; moto would accept it
    result = handler({}, None)
    g = group(asg)
    assert g["DesiredCapacity"] == 3 and g["MaxSize"] == 3
    assert result["last"]["groups"][0]["needed"] > 3


def test_never_below_min_even_with_nothing_to_do(env):
    asg = env["asg"]
    asg.update_auto_scaling_group(AutoScalingGroupName="impetus-default", MinSize=1)
    asg.set_desired_capacity(AutoScalingGroupName="impetus-default", DesiredCapacity=1)
    (node,) = in_service(asg)
    heartbeat(env["ddb"], node)
    for _ in range(4):
        handler({}, None)
    assert group(asg)["DesiredCapacity"] == 1 and in_service(asg) == [node]
    assert not node_item(env["ddb"], node).get("drain")


def test_the_chosen_idle_node_is_terminated_with_decrement_and_told_to_leave(env):
    queue, asg, ddb = env["queue"], env["asg"], env["ddb"]
    queue.create_stream("s", {"mpps": 2})
    asg.set_desired_capacity(AutoScalingGroupName="impetus-default", DesiredCapacity=2)
    busy, idle = in_service(asg)
    fork(queue, "s", 1)
    claim = queue.claim("s", busy, 1, lease=60)  # the busy node runs the one job
    assert claim
    heartbeat(ddb, busy, busy=True)
    heartbeat(ddb, idle)
    handler({}, None)  # tick 1 agrees on a surplus
    assert not node_item(ddb, idle).get("drain") and len(in_service(asg)) == 2
    result = handler({}, None)  # tick 2: the idle node leaves, not the busy one
    g = group(asg)
    assert g["DesiredCapacity"] == 1 and in_service(asg) == [busy]
    assert f"retired {idle}" in result["last"]["groups"][0]["done"]
    # its agent learns it must stop (a job claimed meanwhile finishes under the hook)
    assert node_item(ddb, idle)["drain"] == "leave" and not node_item(ddb, busy).get("drain")


class Context:
    """A Lambda context whose remaining time runs down with the handler's sleeps."""

    def __init__(self, seconds):
        self.left = seconds

    def get_remaining_time_in_millis(self):
        return int(self.left * 1000)


def test_one_invocation_follows_an_idle_node_until_it_has_left(env, monkeypatch):
    queue, asg, ddb = env["queue"], env["asg"], env["ddb"]
    queue.create_stream("s", {"mpps": 2})
    asg.set_desired_capacity(AutoScalingGroupName="impetus-default", DesiredCapacity=1)
    (idle,) = in_service(asg)
    heartbeat(ddb, idle)
    context, sleeps = Context(90.0), []

    def sleep(seconds):
        sleeps.append(seconds)
        context.left -= seconds

    monkeypatch.setattr("lambdas.dfs.handler.time.sleep", sleep)
    result = handler({}, context)
    assert in_service(asg) == [] and group(asg)["DesiredCapacity"] == 0
    # agree over ticks AGREE_POLL apart, retire the node, then stop: no drain to poll for
    assert sleeps == [tick.AGREE_POLL] and result["ticks"] == 2
    assert result["last"]["next_in"] is None


def test_actuate_refuses_desired_outside_the_limits(env):
    from impetus.scaler import actuate

    g = GroupState("default", "impetus-default", 0, 3, 0, 0, 0)
    bad = GroupDecision("default", "impetus-default", previous=0, desired=5, needed=5)
    with pytest.raises(actuate.LimitError):
        actuate.apply(bad, g, env["asg"], env["ddb"], "test")
    assert group(env["asg"])["DesiredCapacity"] == 0


def test_reaps_expired_leases(env):
    queue = env["queue"]
    queue.create_stream("reap-me", {"lease": 5})
    fork(queue, "reap-me", 2)
    claim = queue.claim("reap-me", "dead-node", 2, lease=5)
    assert claim
    ddb = env["ddb"]
    # Age the lease: rewrite its expiry into the past.
    ddb.update_item(
        TableName=queue.tables["queue"],
        Key=dynamo.serialize({"pk": claim.pk, "sk": claim.sk}),
        UpdateExpression="SET #c.#id.#e = :past",
        ExpressionAttributeNames={"#c": "claims", "#id": claim.claim_id, "#e": "expires"},
        ExpressionAttributeValues=dynamo.values(past=time.time() - 1),
    )
    result = tick.run(DfsSettings.from_env())
    assert result.reaped == 2 and queue.get_stream("reap-me")["counts"]["waiting"] == 2


def test_decisions_are_logged_with_reasons_and_shown_by_the_cli(env, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path))  # no local stack's settings here
    queue = env["queue"]
    queue.create_stream("s", {"mpps": 2})
    fork(queue, "s", 3)
    handler({}, None)
    entries = DecisionLog.from_settings().recent()
    assert entries and entries[-1]["decision"]["action"] == "scale-out"
    assert entries[-1]["inputs"]["streams"][0]["backlog"] == 3
    assert main(["dfs", "log"]) == 0
    out = capsys.readouterr().out
    assert "scale-out" in out and "desired 0->1" in out
    assert main(["dfs", "log", "--json"]) == 0
    logged = json.loads(capsys.readouterr().out)  # one array, as every listing
    assert [e["decision"]["action"] for e in logged][-1] == "scale-out"


def test_metrics_are_published(env):
    env["queue"].create_stream("s")
    fork(env["queue"], "s", 4)
    handler({}, None)
    cw = boto3.client("cloudwatch")
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="Impetus")["Metrics"]}
    assert {"Desired", "InService", "BusyWorkers", "FailedBootsLastHour"} <= names
    assert not names & {"Backlog", "Running"}  # no metric per stream unless asked
    assert all(
        d["Name"] != "Stream"
        for m in cw.list_metrics(Namespace="Impetus")["Metrics"]
        for d in m["Dimensions"]
    )


def test_per_stream_metrics_when_asked(env, monkeypatch):
    monkeypatch.setenv("IMPETUS_DFS_STREAM_METRICS", "1")
    env["queue"].create_stream("s")
    fork(env["queue"], "s", 4)
    handler({}, None)
    cw = boto3.client("cloudwatch")
    streams = {
        d["Value"]
        for m in cw.list_metrics(Namespace="Impetus", MetricName="Backlog")["Metrics"]
        for d in m["Dimensions"]
        if d["Name"] == "Stream"
    }
    assert streams == {"s"}


def _fleet_values(cw, name: str) -> list[float]:
    """Datapoints of a fleet-wide metric (no dimensions: what the dashboard reads)."""
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc)
    points = cw.get_metric_statistics(
        Namespace="Impetus",
        MetricName=name,
        StartTime=now - datetime.timedelta(minutes=5),
        EndTime=now + datetime.timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    return [p["Maximum"] for p in points]


def test_fleet_metrics_feed_the_dashboard_and_alarms(env):
    env["queue"].create_stream("s")
    fork(env["queue"], "s", 4)
    time.sleep(1.1)  # the head job has waited at least a second
    handler({}, None)
    cw = boto3.client("cloudwatch")
    assert _fleet_values(cw, "WaitingJobs") == [4.0]
    assert _fleet_values(cw, "OldestWaitingJobAge")[0] >= 1.0
    assert _fleet_values(cw, "BusyWorkers") == [0.0]
    assert _fleet_values(cw, "JobErrors") == [0.0]


def test_nudge_invokes_dfs_asynchronously_and_never_raises(monkeypatch):
    calls = []

    class Recorder:
        def invoke(self, **kwargs):
            calls.append(kwargs)

    class Broken:
        def invoke(self, **kwargs):
            raise RuntimeError("throttled")

    monkeypatch.delenv("IMPETUS_DFS_FUNCTION", raising=False)
    assert not nudge.nudge("s", Recorder())
    monkeypatch.setenv("IMPETUS_DFS_FUNCTION", "impetus-dfs")
    assert nudge.nudge("s", Recorder())
    assert calls[0]["InvocationType"] == "Event" and calls[0]["FunctionName"] == "impetus-dfs"
    assert not nudge.nudge("s", Broken())
    assert is_idle({"waiting": 0, "running": 0}) and is_idle({"waiting": -1})  # drifted
    assert not is_idle({"waiting": 1}) and not is_idle({"delayed": 2})
