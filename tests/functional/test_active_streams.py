"""The active-streams record on moto in-process: enqueues mark, DFS unmarks only what
stayed idle and unchanged, the sweep repairs missed marks, a full shard falls back to the
full listing, a node's cached view re-reads only what moved, and reaping still finds
expired leases (impetus.storage.activestreams, impetus.scaler.activity)."""

from __future__ import annotations

import time

import boto3
import pytest

from bench.costmeter import CostMeter
from impetus.core import codec
from impetus.scaler import tick
from impetus.scaler.activity import Activity
from impetus.storage import dynamo
from impetus.storage.activestreams import (
    REPLICAS,
    ActiveStreams,
    ActiveView,
    shard_key,
    shard_of,
)
from node_agent.reaper import Reaper


def _square(x):
    return x * x


CODE = codec.dump_function(_square)
DIGEST = codec.digest(CODE)


def fork(queue, stream: str, n: int = 1) -> None:
    specs = [
        {"name": "_square", "code": DIGEST, "args": codec.dumps(i), "stage": "s1"} for i in range(n)
    ]
    queue.enqueue(stream, specs, {DIGEST: CODE}, codec.PYTHON_VERSION)


def marks(queue) -> dict[str, str]:
    return queue.streams.active.snapshot().marks


def test_an_enqueue_to_an_idle_stream_marks_it_in_every_replica(queue):
    queue.create_stream("s")
    assert marks(queue) == {}  # created, no work: not marked
    fork(queue, "s")
    token = marks(queue)["s"]
    assert all(r == {"s": token} for r in queue.streams.active.every_replica())
    fork(queue, "s")  # the stream was not idle: no second mark
    assert marks(queue)["s"] == token


def test_dfs_unmarks_a_stream_only_after_it_stayed_idle_and_unchanged(queue):
    queue.create_stream("s")
    fork(queue, "s")
    activity = Activity(unmark_after=10)
    activity.listing(queue, 0.0)  # a sweep: busy, kept
    queue.streams.count("s", waiting=-1)  # its work is gone (as if done)
    activity.listing(queue, 1.0)  # idle seen first
    activity.listing(queue, 5.0)
    assert "s" in marks(queue)  # not for long enough yet
    queue.streams.count("s", forked=1)  # a fork counted in between (was read busy)
    activity.listing(queue, 12.0)
    assert "s" in marks(queue)  # the fork restarts the wait
    activity.listing(queue, 23.0)
    assert marks(queue) == {}
    assert all(r == {} for r in queue.streams.active.every_replica())


def test_a_mark_renewed_meanwhile_is_not_removed(queue):
    queue.create_stream("s")
    fork(queue, "s")
    activity = Activity(unmark_after=10)
    queue.streams.count("s", waiting=-1)
    activity.listing(queue, 0.0)  # idle seen, with the first token
    queue.streams.active.mark("s")  # an enqueue that read the stream idle
    activity.listing(queue, 20.0)
    assert "s" in marks(queue)


def test_a_deleted_streams_mark_goes_at_the_next_tick(queue):
    queue.create_stream("s")
    fork(queue, "s")
    activity = Activity()
    activity.listing(queue, 0.0)
    queue.delete_stream("s")
    listing, full = activity.listing(queue, 1.0)
    assert (listing, full) == ([], False) and marks(queue) == {}


def test_the_sweep_marks_streams_whose_mark_was_missed(queue):
    queue.create_stream("lost")
    queue.streams.count("lost", waiting=2)  # work without a mark: a marker died
    queue.create_stream("torn")
    fork(queue, "torn")
    token = marks(queue)["torn"]
    queue.client.update_item(  # one replica lost its mark (a marker died midway)
        TableName=queue.streams.table,
        Key=dynamo.serialize({"stream": shard_key(REPLICAS - 1, shard_of("torn"))}),
        UpdateExpression="REMOVE #m",
        ExpressionAttributeNames={"#m": "m:torn"},
    )
    queue.create_stream("quiet")
    activity = Activity()
    listing, full = activity.listing(queue, 0.0)
    assert full and {s["id"] for s in listing} == {"lost", "torn", "quiet"}
    assert set(marks(queue)) == {"lost", "torn"} and marks(queue)["torn"] != token
    assert all(set(r) == {"lost", "torn"} for r in queue.streams.active.every_replica())
    listing, full = activity.listing(queue, 1.0)  # between sweeps: the marked ones only
    assert not full and {s["id"] for s in listing} == {"lost", "torn"}


def test_streams_that_keep_nodes_stay_marked(queue):
    queue.create_stream("kept", {"min_nodes": 1})
    activity = Activity(unmark_after=0)
    activity.listing(queue, 0.0)  # the sweep marks it: DFS must see it every tick
    for now in (1.0, 2.0):
        listing, _ = activity.listing(queue, now)
        assert [s["id"] for s in listing] == ["kept"]


def test_a_full_shard_overflows_to_the_full_listing(queue):
    active = ActiveStreams(queue.client, queue.streams.table, shards=1, replicas=2)
    active.max_per_shard = 1
    queue.streams.active = active
    for sid in ("a", "b"):
        queue.create_stream(sid)
        fork(queue, sid)
    snapshot = active.snapshot()
    assert set(snapshot.marks) == {"a"} and snapshot.overflow  # b did not fit
    view = queue.active_view("n")
    assert {s["id"] for s in queue.list_active_streams(view)} == {"a", "b"}


def test_a_nodes_view_reads_the_shards_only_when_a_version_moved(queue):
    meter = CostMeter(boto3.client("dynamodb"), queue.settings.table_prefix)
    client = meter.instrument(boto3.client("dynamodb"))
    view = ActiveView(ActiveStreams(client, queue.streams.table), replica=3)
    assert view.snapshot(now=0.0).marks == {}  # first look: head and every shard
    meter.reset()
    view.snapshot(now=1.0)
    assert dict(meter.reset().dynamodb).keys() == {"GetItem"}  # the head only
    queue.create_stream("s")
    fork(queue, "s")
    assert set(view.snapshot(now=2.0).marks) == {"s"}
    batch = meter.reset().dynamodb["BatchGetItem"]
    assert batch.requests == 1 and batch.rcu == 1.0  # the one shard that moved
    view.snapshot(now=3.0)
    assert dict(meter.reset().dynamodb).keys() == {"GetItem"}


@pytest.mark.parametrize("reaper", ["node", "dfs"])
def test_expired_leases_of_a_marked_stream_are_still_reaped(queue, reaper):
    queue.create_stream("s")
    fork(queue, "s")
    claim = queue.claim("s", "dead-node", max_jobs=1, lease=0.5)
    assert claim is not None and claim.jobs
    queue.streams.count("s", waiting=-1, running=1)  # what the dead node's counters said
    time.sleep(0.7)
    if reaper == "node":
        listing = queue.list_active_streams(queue.active_view("other-node"))
        assert Reaper(queue, interval=0).maybe_reap(listing, time.monotonic()) == 1
    else:
        listing, _ = Activity().listing(queue, time.time())
        assert tick.reap(queue, listing, time.time() + 1e6) == 1
    assert queue.claim("s", "other-node", max_jobs=1, lease=30).jobs  # back in the queue


def test_a_stream_that_keeps_nodes_is_marked_at_creation_and_when_it_asks_for_them(queue):
    """min_nodes wants nodes before any job: DFS's ticks between sweeps list only marked
    streams, so a stream created (or changed) to keep nodes is marked at once."""
    marked = lambda: set(queue.streams.active.snapshot().marks)  # noqa: E731
    queue.create_stream("keeps", {"min_nodes": 1})
    queue.create_stream("plain", {})
    assert "keeps" in marked() and "plain" not in marked()
    queue.update_properties("plain", {"min_nodes": 2})
    assert "plain" in marked()
