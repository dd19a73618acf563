"""Queue shards that grow (moto in-process): nothing enqueued before or after a growth
is stranded, claimed twice or lost from collection; shards never shrink; DFS grows a
stream from its measured arrival rate."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from impetus.core import codec, jobs, properties
from impetus.core.exceptions import Conflict, InvalidRequest
from impetus.core.jobs import Outcome
from impetus.scaler.growth import Arrivals, grow
from impetus.storage import dynamo, streamcounters
from impetus.storage.jobqueue.layout import ready_pk
from impetus.storage.queue import Queue
from impetus.storage.streamcounters import shard_key

BUSY = ("waiting", "running", "delayed")


def _square(x):
    return x * x


CODE = codec.dump_function(_square)
DIGEST = codec.digest(CODE)


def fork(queue, stream, ids, delay=0.0):
    specs = [
        {
            "id": i,
            "name": "sq",
            "code": DIGEST,
            "args": codec.dumps(1),
            "stage": "s",
            "delay": delay,
        }
        for i in ids
    ]
    return queue.enqueue(stream, specs, {DIGEST: CODE}, codec.PYTHON_VERSION)["accepted"]


def chunks_per_shard(queue, stream, shards):
    return [
        sum(
            1
            for _ in dynamo.query(
                queue.client,
                TableName=queue.jobs.items.queue_table,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": "pk"},
                ExpressionAttributeValues=dynamo.values(pk=ready_pk(stream, k)),
            )
        )
        for k in range(shards)
    ]


def run_all(node, stream, batch=3):
    """Claim and complete until nothing is claimable; returns the job ids run."""
    ran = []
    while claim := node.claim(stream, "n", batch, lease=30):
        ran += [j.id for j in claim.jobs]
        node.complete(claim, {j.id: Outcome(jobs.READY, result=codec.dumps(0)) for j in claim.jobs})
    return ran


def test_jobs_before_and_after_a_growth_are_each_claimed_once_and_all_collected(queue):
    queue.create_stream("g")
    before = fork(queue, "g", [f"a{i:03d}" for i in range(100)])
    stale = Queue(queue.settings)  # a node that read shards = 1 before the growth
    first = stale.claim("g", "n", 5, lease=30)
    queue.update_properties("g", {"shards": 8})
    assert properties.get(queue.get_stream("g")["properties"], "shards") == 8
    after = fork(queue, "g", [f"b{i:03d}" for i in range(200)])
    spread = chunks_per_shard(queue, "g", 8)
    # New jobs land on the new shards: 10 chunks, each on a random one of 8 shards, fill
    # at least 2 of shards 1-7 but with odds of ~1 in 150,000 (at least 4: ~1 in 35).
    assert sum(1 for n in spread[1:] if n) >= 2
    # The stale node still sees one shard (its cache) and claims there; a fresh node
    # visits all eight: together they run every job exactly once.
    stale.complete(first, {j.id: Outcome(jobs.READY, result=codec.dumps(0)) for j in first.jobs})
    ran = [j.id for j in first.jobs] + run_all(stale, "g") + run_all(Queue(queue.settings), "g")
    assert sorted(ran) == sorted(before + after)
    assert queue.recount("g") == {"waiting": 0, "running": 0, "delayed": 0}
    collected = [r["id"] for r in queue.results("g", "s", limit=1000)]
    assert sorted(collected) == sorted(before + after)
    assert queue.ack("g", collected) == 300
    counts = queue.get_stream("g")["counts"]
    assert counts["forked"] == 300 and counts["acked"] == 300
    assert all(counts[c] == 0 for c in ("waiting", "running", "finished"))


def test_delayed_jobs_from_before_a_growth_fall_due_onto_the_grown_shards(queue):
    queue.create_stream("d", {"shards": 2})
    ids = fork(queue, "d", [f"d{i:02d}" for i in range(40)], delay=0.05)
    queue.update_properties("d", {"shards": 6})
    time.sleep(0.1)
    node = Queue(queue.settings)
    assert sorted(run_all(node, "d")) == sorted(ids)
    assert queue.streams.raw_counts("d", BUSY) == queue.recount("d")


def test_recount_cancel_and_delete_visit_every_grown_shard(queue):
    queue.create_stream("r")
    fork(queue, "r", [f"x{i}" for i in range(20)])
    queue.update_properties("r", {"shards": 4})
    fork(queue, "r", [f"y{i}" for i in range(60)])
    assert queue.recount("r") == {"waiting": 80, "running": 0, "delayed": 0}
    assert queue.streams.raw_counts("r", BUSY) == queue.recount("r")
    queue.delete_stream("r")
    assert chunks_per_shard(queue, "r", 4) == [0, 0, 0, 0]
    answer = queue.client.get_item(
        TableName=queue.streams.table, Key=dynamo.serialize({"stream": shard_key("r", 3)})
    )
    assert "Item" not in answer


def test_shards_only_grow_and_within_the_limit(queue):
    queue.create_stream("s", {"shards": 4})
    with pytest.raises(Conflict, match="shards only grow"):
        queue.update_properties("s", {"shards": 2})
    with pytest.raises(InvalidRequest):
        queue.update_properties("s", {"shards": properties.MAX_SHARDS + 1})
    queue.update_properties("s", {"shards": 4, "mpps": 3})  # no change: accepted
    assert queue.get_stream("s")["properties"] == {"shards": 4, "mpps": 3}


def test_a_growth_read_before_another_is_cancelled(queue):
    """Two growers read shards 2: the second transaction is conditioned on what it read,
    so it cannot undo the first's counter items or K."""
    queue.create_stream("c", {"shards": 2})
    stale = queue.streams.get_item("c")
    assert queue.streams.grow_shards("c", 4)
    with pytest.raises(ClientError) as caught:
        queue.client.transact_write_items(
            TransactItems=streamcounters.growth(queue.streams.table, stale, 3, "active")
        )
    assert dynamo.is_condition_failure(caught.value)
    item = queue.streams.get_item("c")
    assert properties.get(item["properties"], "shards") == 4
    assert streamcounters.counter_shards(item) == 4


def test_dfs_grows_a_stream_from_its_arrival_rate(queue):
    queue.create_stream("busy")
    queue.create_stream("calm")
    arrivals = Arrivals(window=60)
    assert grow(queue, queue.list_streams(), 0.0, arrivals) == {}  # first sight: no rate
    # 3,000 jobs/s for a minute on "busy" (the arrival counter, as enqueues write it),
    # 100 jobs/s on "calm": one shard carries ~790 jobs/s at half a partition.
    queue.streams.count("busy", forked=180_000)
    queue.streams.count("calm", forked=6_000)
    assert grow(queue, queue.list_streams(), 30.0, arrivals) == {}  # window not over
    assert grow(queue, queue.list_streams(), 60.0, arrivals) == {"busy": 4}
    listed = {s["id"]: s for s in queue.list_streams()}
    assert properties.get(listed["busy"]["properties"], "shards") == 4
    assert properties.get(listed["calm"]["properties"], "shards") == 1
    assert listed["busy"]["counts"]["forked"] == 180_000  # counts kept across the growth
    ids = fork(queue, "busy", [f"j{i:03d}" for i in range(80)])
    assert sorted(run_all(Queue(queue.settings), "busy")) == sorted(ids)
    # the rate fell: no shrink, no growth
    assert grow(queue, queue.list_streams(), 120.0, arrivals) == {}
    assert properties.get(queue.get_stream("busy")["properties"], "shards") == 4


def test_a_declared_rate_chooses_the_shards_at_creation(queue):
    created, _ = queue.create_stream("fast", {"rate": 10_000.0})
    assert created["properties"]["shards"] == 13  # ceil(10,000 / 789)
    assert queue.streams.raw_counts("fast", ("waiting",)) == {"waiting": 0}
    item = queue.streams.get_item("fast")
    assert streamcounters.counter_shards(item) == 13
    given, _ = queue.create_stream("given", {"rate": 10_000.0, "shards": 2})
    assert given["properties"]["shards"] == 2  # an explicit count wins
    plain, _ = queue.create_stream("plain")
    assert "shards" not in plain["properties"]
