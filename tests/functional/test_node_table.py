"""The nodes table's owner (impetus/storage/nodes.py) on moto: heartbeats, the drain mark
that no heartbeat erases, removal, and the two readers (live nodes, every item)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from impetus.storage.nodes import DRAINED, RUNNING, NodeBeat, Nodes, NodeStats


@pytest.fixture
def nodes(queue):
    return Nodes.for_prefix(queue.client, "test")


def beat(node_id, at, state=RUNNING, **stats):
    return NodeBeat(
        node_id=node_id, host="h", pid=7, started=at - 100, at=at, interval=5.0,
        properties={"gpu": "1"}, mpps=2, stats=NodeStats(**stats), state=state,
    )  # fmt: skip


def test_heartbeats_are_listed_while_live_and_removed_on_request(nodes):
    now = time.time()
    assert nodes.heartbeat(beat("n-live", now, streams=["s1"], workers_busy=1, jobs_done=3))
    assert nodes.heartbeat(beat("n-dead", now - 60))  # three beats missed: expired
    (live,) = nodes.live()
    assert live["node"] == "n-live" and live["workers_busy"] == 1 and live["jobs_done"] == 3
    assert live["streams"] == ["s1"] and live["properties"] == {"gpu": "1"}
    assert "expires" not in live and "drain" not in live
    every = nodes.by_node()
    assert set(every) == {"n-live", "n-dead"} and every["n-live"]["expires"] == int(now + 15)
    nodes.remove("n-live")
    assert nodes.live() == [] and set(nodes.by_node()) == {"n-dead"}


def test_idle_since_is_written_only_when_known(nodes):
    nodes.heartbeat(beat("n1", 100.0))
    assert "idle_since" not in nodes.by_node()["n1"]
    nodes.heartbeat(dataclasses.replace(beat("n1", 110.0), idle_since=105.0))
    assert nodes.by_node()["n1"]["idle_since"] == 105.0


def test_a_drain_request_survives_heartbeats_until_the_node_writes_it_back(nodes):
    assert not nodes.request_drain("n1")  # no item: nothing is created for a gone node
    assert nodes.by_node() == {}
    nodes.heartbeat(beat("n1", 100.0, claims=1))
    assert nodes.request_drain("n1")
    assert not nodes.heartbeat(beat("n1", 105.0, claims=1))  # refused: the mark stays
    item = nodes.by_node()["n1"]
    assert item["drain"] is True and item["heartbeat"] == 100.0
    assert nodes.heartbeat(beat("n1", 110.0, state=DRAINED), draining=True)
    item = nodes.by_node()["n1"]
    assert item["drain"] is True and item["heartbeat"] == 110.0 and item["state"] == DRAINED
