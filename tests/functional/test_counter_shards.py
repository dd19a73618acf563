"""Backlog counters sharded over counter items (moto in-process): writers spread over
them, every reader sums them exactly, the stream item takes no counter write, the audit
corrects a sharded counter without counting a delta twice, old streams keep working and
are migrated by the audit, and a deleted stream leaves no counter item."""

from __future__ import annotations

import threading

from impetus.core import codec, jobs
from impetus.core.config import AwsSettings
from impetus.core.jobs import Outcome
from impetus.local.motoserver import MotoServer
from impetus.local.provision import provision
from impetus.scaler.audit import Auditor, audit
from impetus.storage import dynamo
from impetus.storage.counters import BufferedCounters
from impetus.storage.queue import Queue
from impetus.storage.streamcounters import COUNTER_SHARDS, COUNTERS, shard_key

BUSY = ("waiting", "running", "delayed")


def _square(x):
    return x * x


CODE = codec.dump_function(_square)
DIGEST = codec.digest(CODE)


def fork(queue, stream, n):
    specs = [{"name": "sq", "code": DIGEST, "args": codec.dumps(i), "stage": "s"} for i in range(n)]
    queue.enqueue(stream, specs, {DIGEST: CODE}, codec.PYTHON_VERSION)


def raw_item(queue, key):
    answer = queue.client.get_item(
        TableName=queue.streams.table, Key=dynamo.serialize({"stream": key}), ConsistentRead=True
    )
    return dynamo.deserialize(answer["Item"]) if "Item" in answer else None


def shard_values(queue, stream, shards):
    return [raw_item(queue, shard_key(stream, k)) for k in range(shards)]


def test_concurrent_writers_spread_over_the_shards_and_every_reader_sums_exactly():
    """8 node agents, each with its own client, buffering its deltas and flushing from its
    own thread, against a real (serialised) moto server: in-process moto does not make
    concurrent ADDs atomic, DynamoDB and the server do. Each counter item takes a share,
    every reader's sum is exact, and the stream item takes no counter write."""
    with MotoServer() as server:
        settings = AwsSettings(endpoint_url=server.endpoint_url, table_prefix="shards")
        provision(settings)
        queue = Queue(settings)
        queue.create_stream("hot", {"shards": 8})
        agents = [BufferedCounters(Queue(settings).streams, interval=0.0) for _ in range(8)]

        def work(i: int, counters: BufferedCounters) -> None:
            for step in range(40):
                counters.count("hot", waiting=-1, running=1, forked=i + 1)
                counters.count("hot", running=-1, finished=1, errors=step % 2)
                counters.maybe_flush()  # interval 0: one UpdateItem a call, on one item
            counters.flush()

        threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(agents)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = {"waiting": -320, "finished": 320, "errors": 160, "forked": 40 * 36}
        expected = {c: expected.get(c, 0) for c in COUNTERS}
        shards = shard_values(queue, "hot", 8)
        assert all(s["finished"] > 0 for s in shards)  # every counter item took writes
        assert max(s["finished"] for s in shards) < 320  # none took them all
        assert queue.streams.raw_counts("hot", COUNTERS) == expected
        listed = next(s for s in queue.list_streams() if s["id"] == "hot")["counts"]
        described = queue.get_stream("hot")["counts"]
        assert listed == described == {c: max(0, v) for c, v in expected.items()}
        own = raw_item(queue, "hot")
        assert all(own[c] == 0 for c in COUNTERS)


def test_the_queue_counts_on_the_counter_items_and_listing_shows_streams_only(queue):
    queue.create_stream("q", {"shards": 4})
    fork(queue, "q", 30)
    claim = queue.claim("q", "n1", 5, lease=30)
    queue.complete(claim, {j.id: Outcome(jobs.READY, result=codec.dumps(0)) for j in claim.jobs})
    counts = queue.get_stream("q")["counts"]
    assert counts["forked"] == 30 and counts["waiting"] == 25 and counts["finished"] == 5
    assert [s["id"] for s in queue.list_streams()] == ["q"]  # no counter item listed
    assert raw_item(queue, "q")["forked"] == 0 and raw_item(queue, "q")[COUNTER_SHARDS] == 4


def test_the_audit_corrects_a_drifted_sharded_counter(queue):
    queue.create_stream("d", {"shards": 4})
    fork(queue, "d", 12)
    queue.streams.counters._add(shard_key("d", 3), {"waiting": -12, "running": 2})  # lost
    before = shard_values(queue, "d", 4)  # the fork's +12 landed on a random one of them
    auditor = Auditor(confirm_after=5)
    assert audit(queue, queue.list_streams(), 0.0, auditor) == 0  # first sight
    assert audit(queue, queue.list_streams(), 5.0, auditor) == 1
    assert queue.streams.raw_counts("d", BUSY) == {"waiting": 12, "running": 0, "delayed": 0}
    assert queue.recount("d") == queue.streams.raw_counts("d", BUSY)
    assert raw_item(queue, "d")["waiting"] == 12  # the correction sits on the stream item
    assert shard_values(queue, "d", 4) == before  # the counter items untouched


def test_a_delta_landing_on_any_counter_item_after_the_read_cancels_the_correction(queue):
    queue.create_stream("c", {"shards": 4})
    fork(queue, "c", 8)
    truth = queue.recount("c")
    for k in range(4):
        reading = queue.streams.read_counts("c")
        queue.streams.counters._add(shard_key("c", k), {"waiting": -1})  # lands in between
        assert not queue.streams.correct(reading, truth)
    assert queue.streams.raw_counts("c", BUSY)["waiting"] == 4  # nothing counted twice
    reading = queue.streams.read_counts("c")
    queue.streams.count("c", finished=1)  # another counter: not what is corrected
    assert queue.streams.correct(reading, truth)
    assert queue.streams.raw_counts("c", BUSY)["waiting"] == 8


def test_a_growth_after_the_read_cancels_the_correction(queue):
    """Writers may use the new counter items at once: a correction read before the growth
    checked none of them, so it must not apply."""
    queue.create_stream("g", {"shards": 2})
    fork(queue, "g", 6)
    reading = queue.streams.read_counts("g")
    assert queue.streams.grow_shards("g", 4)
    assert not queue.streams.correct(reading, {"waiting": 0, "running": 0, "delayed": 0})
    assert queue.streams.raw_counts("g", BUSY)["waiting"] == 6


def test_a_delta_in_flight_is_never_counted_twice(queue):
    """A node's claim is in the queue but its count still in its buffer: the audit sees a
    difference, then the flush lands; the difference changed, so nothing is corrected,
    and the counters end exact."""
    queue.create_stream("f", {"shards": 4})
    fork(queue, "f", 10)
    node = Queue(queue.settings)
    buffered = node.buffer_counters(interval=3600)
    claim = node.claim("f", "n1", 3, lease=30)
    assert len(claim.jobs) == 3
    auditor = Auditor(confirm_after=5)
    assert audit(queue, queue.list_streams(), 0.0, auditor) == 0  # waiting 10, running 0
    buffered.flush()  # the claim's count lands on one counter item
    assert audit(queue, queue.list_streams(), 5.0, auditor) == 0  # no difference now
    assert audit(queue, queue.list_streams(), 10.0, auditor) == 0
    assert queue.streams.raw_counts("f", BUSY) == {"waiting": 7, "running": 3, "delayed": 0}


def _make_old_stream(queue, stream):
    """A stream as created before counter items: counters on its item, no K."""
    queue.create_stream(stream, {"shards": 2})
    for k in range(2):
        queue.client.delete_item(
            TableName=queue.streams.table, Key=dynamo.serialize({"stream": shard_key(stream, k)})
        )
    queue.client.update_item(
        TableName=queue.streams.table,
        Key=dynamo.serialize({"stream": stream}),
        UpdateExpression="REMOVE #cs",
        ExpressionAttributeNames={"#cs": COUNTER_SHARDS},
    )


def test_an_old_stream_keeps_counting_on_its_item_until_the_audit_migrates_it(queue):
    _make_old_stream(queue, "old")
    fork(queue, "old", 5)  # a new Queue: it learns K (none) from the item
    fresh = Queue(queue.settings)
    claim = fresh.claim("old", "n1", 2, lease=30)
    assert len(claim.jobs) == 2
    assert raw_item(queue, "old")["waiting"] == 3 and raw_item(queue, "old")["running"] == 2
    assert audit(queue, queue.list_streams(), 0.0, Auditor()) == 0  # migrates, corrects nothing
    assert raw_item(queue, "old")[COUNTER_SHARDS] == 2
    assert [s["waiting"] for s in shard_values(queue, "old", 2)] == [0, 0]
    after = Queue(queue.settings)  # learns K = 2
    assert len(after.claim("old", "n2", 3, lease=30).jobs) == 3
    counts = queue.get_stream("old")["counts"]
    assert counts["waiting"] == 0 and counts["running"] == 5 and counts["forked"] == 5
    assert raw_item(queue, "old")["waiting"] == 3  # the old counts stay, still summed
    assert sum(s["running"] for s in shard_values(queue, "old", 2)) == 3
    assert queue.recount("old") == queue.streams.raw_counts("old", BUSY)


def test_deleting_a_stream_removes_its_counter_items_and_a_recreation_counts_from_zero(queue):
    queue.create_stream("x", {"shards": 3})
    fork(queue, "x", 4)
    queue.delete_stream("x")
    assert shard_values(queue, "x", 3) == [None, None, None]
    queue.streams.count("x", waiting=5)  # a late count of the deleted stream: dropped
    assert shard_values(queue, "x", 3) == [None, None, None]
    queue.create_stream("x", {"shards": 3})
    assert queue.get_stream("x")["counts"] == dict.fromkeys(COUNTERS, 0)
