"""What an idle node costs when the fleet is large (issue 19: 10,000 idle nodes <= $1/h),
and that it costs no promptness, liveness, lease or drain.

A real node agent runs in a thread against moto in-process; its DynamoDB requests are
counted by bench/costmeter.py's CostMeter, units as AWS bills them. The fleet size is
what DFS publishes in the active-streams heads (impetus.scaler.fleetsize); here the test
publishes it through the same call, as if thousands of other nodes were alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from bench.costmeter import CostMeter, Usage
from impetus.scaler import collect, fleetsize
from impetus.scaler.model import NODE_RUNNING
from impetus.storage.activestreams import (
    IDLE_READS_PER_SECOND,
    ActiveStreams,
    ActiveView,
    idle_interval,
    replica_of,
)
from impetus.storage.nodes import NodeBeat, Nodes
from impetus.storage.queue import Queue
from lambdas.dfs.handler import handler
from node_agent.agent import Agent
from node_agent.config import NodeSettings
from tests.functional import test_dfs_handler as dfs
from tests.functional.test_idle_poll_scaling import fork

env = dfs.env  # the DFS handler's fixture: tables, an Auto Scaling group, DFS's environment

POLL = 0.2
FLEET = 2000  # published: each idle node reads the head every FLEET / 1,000 = 2 s
WINDOW = 6.0


@contextmanager
def agent_running(queue: Queue, client: Any = None, **settings: Any) -> Iterator[Agent]:
    node = NodeSettings(
        node_id="idle-node",
        mpps=1,
        aws=queue.settings,
        poll_interval=POLL,
        **{"heartbeat_interval": 0.5, "lease": 2.0, **settings},
    )
    agent = Agent(node, client=client or boto3.client("dynamodb"))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.request_stop()
        agent.request_stop()
        thread.join(timeout=30)
        assert not thread.is_alive()


def idle_window(queue: Queue, fleet: int) -> Usage:
    """An idle agent's requests over WINDOW seconds with ``fleet`` published."""
    queue.create_stream("quiet")
    if fleet:
        queue.streams.active.publish_fleet(fleet)
    meter = CostMeter(boto3.client("dynamodb"), queue.settings.table_prefix)
    client = meter.instrument(boto3.client("dynamodb"))
    with agent_running(queue, client):
        wait_for_idle_beat(queue)  # its first listing and its first idle beat are behind it
        meter.reset()
        time.sleep(WINDOW)
        return meter.reset()


def wait_for_idle_beat(queue: Queue, timeout: float = 10.0) -> None:
    """Until the agent's item says it is idle (from then on it beats at the idle
    cadence); a fixed sleep was too short on a loaded machine."""
    nodes = Nodes.for_prefix(queue.client, queue.settings.table_prefix)
    deadline = time.monotonic() + timeout
    while "idle_since" not in nodes.by_node().get("idle-node", {}):
        assert time.monotonic() < deadline, "the agent never reported itself idle"
        time.sleep(0.05)
    time.sleep(0.2)  # the beat's write is done; its next one is the idle cadence's


def per_second(usage: Usage, op: str) -> float:
    return usage.dynamodb[op].requests / WINDOW


def test_an_idle_agents_reads_and_beats_fall_with_the_published_fleet(queue):
    usage = idle_window(queue, FLEET)
    reads, beats = per_second(usage, "GetItem"), per_second(usage, "PutItem")
    rru = usage.dynamodb["GetItem"].rcu / WINDOW
    print(f"idle node, fleet {FLEET}: {reads:.2f} head reads/s ({rru:.2f} RRU/s),")
    print(f"  {beats:.2f} beats/s, all ops {dict(usage.dynamodb)}")
    interval = idle_interval(FLEET, POLL)
    assert interval == FLEET / IDLE_READS_PER_SECOND == 2.0
    # Waits are 0.5x..1.5x the interval: at most WINDOW / (interval / 2) reads, and about
    # WINDOW / interval of them; at POLL it would be 40.
    assert 1 <= usage.dynamodb["GetItem"].requests <= WINDOW / (interval / 2) + 1
    assert rru <= reads * 0.5 + 1e-9  # eventually consistent, a small item: 0.5 units
    # An idle node holding nothing beats every 55 s: none in this window (at 0.5 s
    # while busy it would write 16 items).
    assert usage.dynamodb["PutItem"].requests == 0
    assert "Scan" not in usage.dynamodb


def test_without_a_published_fleet_an_idle_agent_polls_at_its_interval(queue):
    usage = idle_window(queue, 0)
    assert usage.dynamodb["GetItem"].requests >= WINDOW / POLL / 2


def test_a_job_forked_to_an_idle_stream_is_picked_up_within_the_stretched_interval(queue):
    queue.create_stream("s")
    queue.streams.active.publish_fleet(3000)  # an idle poll every 1.5 s to 4.5 s
    with agent_running(queue) as agent:
        time.sleep(1.0)
        assert not agent.pool.runs  # idle: nothing tracked
        started = time.monotonic()
        fork(queue, "s")
        while queue.get_stream("s")["counts"]["finished"] < 1:
            assert time.monotonic() - started < 4.5 + 10, queue.get_stream("s")
            time.sleep(0.05)
    print(f"picked up and finished in {time.monotonic() - started:.2f} s (interval 3 s)")


def _items(queue: Queue) -> dict[str, dict[str, Any]]:
    return Nodes.for_settings(boto3.client("dynamodb"), queue.settings).by_node()


def test_an_idle_node_stays_live_between_rare_beats_and_dies_after_due_plus_grace(queue):
    nodes = Nodes.for_settings(boto3.client("dynamodb"), queue.settings)
    with agent_running(queue, idle_heartbeat_interval=3.0) as agent:
        deadline = time.monotonic() + 10  # its first beat (later on a loaded machine)
        while "idle-node" not in _items(queue):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        first = _items(queue)["idle-node"]
        assert float(first["due"]) - float(first["heartbeat"]) == 3.0  # idle cadence
        assert float(first["expires"]) >= float(first["due"])  # + grace 2 x 0.5 s
        seen, started = set(), time.monotonic()
        for _ in range(25):  # ~5 s: beats at 3 s, never stale in between
            item = _items(queue)["idle-node"]
            seen.add(item["heartbeat"])
            now = time.time()
            assert [n["node"] for n in nodes.live(now)] == ["idle-node"]
            assert now <= collect_fresh_until(item, now)
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        assert 2 <= len(seen) <= elapsed / 3.0 + 2  # ~every 3 s, not every 0.5 s
        agent.heartbeat.stop()  # it stops beating (the process hangs, say)
        last = _items(queue)["idle-node"]
        time.sleep(max(0.0, float(last["expires"]) + 1 - time.time()))
        assert nodes.live(time.time()) == []
        assert time.time() > collect_fresh_until(last, time.time())


def collect_fresh_until(item: dict[str, Any], now: float) -> float:
    """What DFS makes of the item (impetus.scaler.collect)."""
    instance = {"InstanceId": item["node"], "LifecycleState": "InService"}
    state = collect.node_state("default", instance, item, collect.Memory(), now)
    assert state.state == NODE_RUNNING
    return state.fresh_until


def test_a_busy_node_beats_at_once_and_often_and_keeps_its_lease(queue):
    queue.create_stream("s")

    with agent_running(queue, idle_heartbeat_interval=30.0) as agent:
        time.sleep(1.0)  # idle: its next beat is 30 s away
        fork_sleeper(queue, "s", 4.0)  # runs past two lease lengths (lease 2 s)
        beats: list[float] = []
        started = time.monotonic()
        while queue.get_stream("s")["counts"]["finished"] < 1:
            assert time.monotonic() - started < 20
            item = _items(queue).get("idle-node") or {}
            if item.get("claims") and item["heartbeat"] not in beats:
                beats.append(float(item["heartbeat"]))
            time.sleep(0.1)
        assert agent.jobs_done == 1
        finished = time.time()
        idle = _wait_idle_item(queue)
    since = float(idle["idle_since"])
    # Idle since the first beat after the job (busy cadence 0.5 s), not its last beat:
    # DFS's idle clock starts when the work ended.
    assert beats[-1] < since <= finished + 1.0
    assert float(idle["due"]) - float(idle["heartbeat"]) == 30.0  # quiet again
    counts = queue.get_stream("s")["counts"]
    print(f"beats while busy: {len(beats)}, counts {counts}")
    assert len(beats) >= 5  # every 0.5 s over ~4 s, not once in 30 s
    # One run, its outcome kept: the claim was never lost (a lost lease drops the
    # outcome and the job runs again).
    assert counts["finished"] == 1 and not counts.get("errors")


def _wait_idle_item(queue: Queue) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        item = _items(queue)["idle-node"]
        if item.get("idle_since") is not None and not item.get("claims"):
            return item
        assert time.monotonic() < deadline, item
        time.sleep(0.1)


def _sleep(seconds):
    import time

    time.sleep(seconds)
    return seconds


def fork_sleeper(queue: Queue, stream: str, seconds: float) -> None:
    from impetus.core import codec

    code = codec.dump_function(_sleep)
    spec = {"name": "_sleep", "code": codec.digest(code), "args": codec.dumps(seconds)}
    queue.enqueue(stream, [{**spec, "stage": "s1"}], {spec["code"]: code}, codec.PYTHON_VERSION)


def test_an_idle_node_drains_promptly_when_dfs_signals_it(queue):
    nodes = Nodes.for_settings(boto3.client("dynamodb"), queue.settings)
    with agent_running(queue, idle_heartbeat_interval=60.0) as agent:
        time.sleep(1.0)  # its first beat is written; the next one is a minute away
        asked = time.monotonic()
        assert nodes.request_drain("idle-node")
        fleetsize.signal_drains(queue.streams.active, ["idle-node"])
        while _items(queue)["idle-node"].get("state") != "drained":
            assert time.monotonic() - asked < 5, _items(queue)["idle-node"]
            time.sleep(0.1)
        assert agent.scaling.draining
    print(f"drained {time.monotonic() - asked:.2f} s after the request (idle beat 60 s)")


def test_fleet_notice_publishes_on_change_only(queue):
    notice, active = fleetsize.FleetNotice(), queue.streams.active
    assert notice.publish(active, 5000, now=100.0)
    assert active.head(0, consistent=True).fleet == 5000
    assert not notice.publish(active, 5200, now=110.0)  # within 10 %
    assert notice.publish(active, 6000, now=120.0)
    assert all(active.head(r, consistent=True).fleet == 6000 for r in range(active.replicas))
    assert notice.publish(active, 6000, now=120.0 + fleetsize.REPUBLISH)


def test_live_count_uses_each_nodes_own_due_time():
    now = 1_000_000.0
    common: dict[str, Any] = {"host": "h", "pid": 1, "started": now - 500, "properties": {}}
    beats = [
        NodeBeat(node_id="idle", at=now - 60, interval=55, grace=10, mpps=1, **common),
        NodeBeat(node_id="busy", at=now - 4, interval=5, grace=10, mpps=1, **common),
        NodeBeat(node_id="dead-idle", at=now - 70, interval=55, grace=10, mpps=1, **common),
        NodeBeat(node_id="dead-busy", at=now - 16, interval=5, grace=10, mpps=1, **common),
    ]
    items = [b.item() for b in beats]
    assert fleetsize.live_count(items, now) == 2


def test_a_dfs_tick_publishes_the_fleet_and_signals_its_drains(env):
    queue, asg, ddb = env["queue"], env["asg"], env["ddb"]
    queue.create_stream("s", {"mpps": 2})
    asg.set_desired_capacity(AutoScalingGroupName="impetus-default", DesiredCapacity=2)
    nodes = dfs.in_service(asg)
    for node in nodes:
        dfs.heartbeat(ddb, node)
    active = queue.streams.active
    handler({}, None)  # tick 1: two live nodes; agrees on a surplus
    assert [active.head(r, consistent=True).fleet for r in range(active.replicas)] == [2] * 8
    handler({}, None)  # tick 2: drains the idle nodes (nothing to do)
    drained = [n for n in nodes if dfs.node_item(ddb, n).get("drain")]
    assert drained
    for node in drained:  # each one's replica carries the signal its idle agent polls
        assert active.head(replica_of(node, active.replicas), consistent=True).drains >= 1


def test_an_idle_view_rereads_only_the_shards_it_holds_marks_from(queue):
    meter = CostMeter(boto3.client("dynamodb"), queue.settings.table_prefix)
    writer = queue.streams.active
    reader = ActiveStreams(meter.instrument(boto3.client("dynamodb")), writer.table)
    view = ActiveView(reader, replica=0)
    view.snapshot(now=0.0)  # the first snapshot reads every shard
    meter.reset()
    for minute in range(1, 9):  # eight minutes idle: only the head, no shard re-read
        assert view.snapshot(now=60.0 * minute + 1).marks == {}
    idle = meter.reset()
    assert dict(idle.dynamodb).keys() == {"GetItem"}
    token = writer.mark("s")
    assert set(view.snapshot(now=500.0).marks) == {"s"}  # its version moved: read
    writer.unmark("s", token)
    meter.reset()
    assert view.snapshot(now=561.0).marks == {}  # the held shard is re-read: unmark seen
    assert meter.reset().dynamodb["BatchGetItem"].requests == 1
    assert view.snapshot(now=601.0).marks == {}  # the full safety-net re-read
    assert meter.reset().dynamodb["BatchGetItem"].requests == 1
