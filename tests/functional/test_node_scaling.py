"""The node side of autoscaling (node_agent/scaling.py): scale-in protection on moto,
drain on request through the nodes table (impetus/storage/nodes.py), drain on a
termination lifecycle hook.

moto implements no lifecycle waits (no Terminating:Wait, no CompleteLifecycleAction),
so the hook test stubs the Auto Scaling API responses with botocore's Stubber."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from impetus.core.config import AwsSettings
from impetus.storage import dynamo
from impetus.storage.nodes import NodeBeat, Nodes, NodeStats
from impetus.storage.tables import NODES, TABLES
from node_agent.scaling import DRAINED, DRAINING, RUNNING, Scaling


@pytest.fixture
def instance(queue):
    boto3.client("ec2").create_launch_template(
        LaunchTemplateName="impetus-node",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    asg = boto3.client("autoscaling")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="g",
        LaunchTemplate={"LaunchTemplateName": "impetus-node", "Version": "$Latest"},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )
    (one,) = asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
    return {"id": one["InstanceId"], "asg": asg, "ddb": queue.client}


def protected(asg, instance_id):
    found = asg.describe_auto_scaling_instances(InstanceIds=[instance_id])
    return found["AutoScalingInstances"][0]["ProtectedFromScaleIn"]


def item(node_id, claims=0, state=RUNNING, heartbeat=1.0, jobs_done=0):
    return NodeBeat(
        node_id=node_id,
        host="h",
        pid=1,
        started=0.0,
        at=heartbeat,
        interval=5.0,
        properties={},
        mpps=1,
        stats=NodeStats(claims=claims, jobs_done=jobs_done),
        state=state,
    )


def nodes(ddb):
    return Nodes.for_prefix(ddb, "test")


def scaling_of(node_id, ddb, on_terminate=lambda: None, asg=None):
    return Scaling(node_id, AwsSettings.from_env(), nodes(ddb), on_terminate, asg=asg)


def request_drain(ddb, node_id):
    return nodes(ddb).request_drain(node_id)  # what DFS does (impetus/scaler/actuate.py)


def read(ddb, node_id):
    table = TABLES[NODES].physical_name("test")
    got = ddb.get_item(TableName=table, Key=dynamo.serialize({"node": node_id}))
    return dynamo.deserialize(got["Item"])


def test_protection_is_on_while_holding_jobs_and_off_when_idle(instance):
    scaling = scaling_of(instance["id"], instance["ddb"])
    assert scaling.instance_id == instance["id"]
    scaling.holding()
    assert protected(instance["asg"], instance["id"])
    scaling.on_beat(holds_jobs=True)
    assert protected(instance["asg"], instance["id"])
    scaling.on_beat(holds_jobs=False)
    assert not protected(instance["asg"], instance["id"])


def test_a_drain_request_is_never_overwritten_and_stops_claiming(instance):
    ddb, node = instance["ddb"], instance["id"]
    scaling = scaling_of(node, ddb)
    scaling.write_item(item(node, claims=1))
    assert not scaling.draining and scaling.state(False, True) == RUNNING
    assert request_drain(ddb, node)  # what DFS does
    scaling.write_item(item(node, claims=1))  # the next heartbeat learns it, keeps the mark
    assert scaling.draining and read(ddb, node)["drain"] is True
    assert scaling.state(False, holds_jobs=True) == DRAINING
    assert scaling.state(False, holds_jobs=False) == DRAINED
    scaling.write_item(item(node, state=DRAINED))
    assert read(ddb, node)["state"] == DRAINED and read(ddb, node)["drain"] is True


def test_the_heartbeat_reports_since_when_the_node_holds_nothing(instance):
    ddb, node = instance["ddb"], instance["id"]
    scaling = scaling_of(node, ddb)
    scaling.write_item(item(node, claims=1, heartbeat=10.0, jobs_done=3))
    assert "idle_since" not in read(ddb, node)  # busy: no idle_since
    scaling.write_item(item(node, heartbeat=15.0, jobs_done=4))
    scaling.write_item(item(node, heartbeat=20.0, jobs_done=4))
    assert read(ddb, node)["idle_since"] == 15.0  # the first beat that saw it idle
    scaling.write_item(item(node, heartbeat=25.0, jobs_done=6))  # worked in between
    assert read(ddb, node)["idle_since"] == 25.0
    scaling.holding()  # a claim starts a new spell even before the next beat shows it
    scaling.write_item(item(node, heartbeat=30.0, jobs_done=6))
    assert read(ddb, node)["idle_since"] == 30.0


def lifecycle_state(node, state):
    return {
        "AutoScalingInstances": [
            {
                "InstanceId": node,
                "AutoScalingGroupName": "g",
                "AvailabilityZone": "us-east-1a",
                "LifecycleState": state,
                "HealthStatus": "HEALTHY",
                "ProtectedFromScaleIn": False,
            }
        ]
    }


def stub_hook_and_completion(stubber, node):
    """The group's hooks (a launch one and a termination one), then the completion."""
    stubber.add_response(
        "describe_lifecycle_hooks",
        {
            "LifecycleHooks": [
                {
                    "LifecycleHookName": "launch",
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                },
                {
                    "LifecycleHookName": "drain",
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
                },
            ]
        },
        {"AutoScalingGroupName": "g"},
    )
    stubber.add_response(
        "complete_lifecycle_action",
        {},
        {
            "LifecycleHookName": "drain",
            "AutoScalingGroupName": "g",
            "LifecycleActionResult": "CONTINUE",
            "InstanceId": node,
        },
    )


def test_drain_request_for_a_gone_node_is_refused(instance):
    assert not request_drain(instance["ddb"], "i-gone")


def test_termination_lifecycle_hook_drains_then_completes_the_action(instance):
    asg = boto3.client("autoscaling")
    stubber = Stubber(asg)
    node = "i-0123456789abcdef0"
    stubber.add_response(
        "describe_auto_scaling_instances",
        lifecycle_state(node, "Terminating:Wait"),
        {"InstanceIds": [node]},
    )
    stub_hook_and_completion(stubber, node)
    stops = []
    with stubber:
        scaling = scaling_of(node, instance["ddb"], lambda: stops.append(1), asg=asg)
        scaling._protected = False  # nothing to switch off: only the lifecycle check runs
        scaling.on_beat(holds_jobs=False)
        assert scaling.draining and stops == [1]
        scaling.finish()
        stubber.assert_no_pending_responses()


def test_a_node_dfs_retired_stops_and_completes_the_lifecycle_action_at_once(instance, monkeypatch):
    """DFS terminated the instance, then marked it ``leave``: the next beat stops the
    agent, and ``finish`` waits for Terminating:Wait (first still Terminating) and
    completes the hook itself, without waiting for a lifecycle check."""
    monkeypatch.setattr("node_agent.scaling.LEAVE_POLL", 0.01)
    ddb, asg = instance["ddb"], boto3.client("autoscaling")
    node = "i-0123456789abcdef1"
    stubber = Stubber(asg)
    for state in ("Terminating", "Terminating:Wait"):
        stubber.add_response(
            "describe_auto_scaling_instances", lifecycle_state(node, state), {"InstanceIds": [node]}
        )
    stub_hook_and_completion(stubber, node)
    stops = []
    scaling = scaling_of(node, ddb, lambda: stops.append(1), asg=asg)
    scaling.write_item(item(node))
    assert nodes(ddb).request_drain(node, leave=True)  # what DFS does after terminating
    scaling.write_item(item(node, heartbeat=2.0))
    assert scaling.draining and stops == [1] and read(ddb, node)["state"] == DRAINED
    with stubber:
        scaling.finish()
        stubber.assert_no_pending_responses()


def test_a_plain_drain_request_does_not_stop_the_node(instance):
    ddb = instance["ddb"]
    stops = []
    scaling = scaling_of("n-plain", ddb, lambda: stops.append(1))
    scaling.write_item(item("n-plain"))
    assert nodes(ddb).drain_requested("n-plain") is False
    request_drain(ddb, "n-plain")
    assert nodes(ddb).drain_requested("n-plain") is True
    scaling.write_item(item("n-plain", heartbeat=2.0))
    assert scaling.draining and stops == []  # it waits, drained, for DFS to terminate it
