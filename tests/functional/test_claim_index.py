"""The queue table's sparse claim index (impetus.storage.tables.CLAIM_INDEX) on moto
in-process: claims Query it, so the fully claimed chunks at a partition's head are not
read; chunks enter it when ready and leave it when their last waiting job is taken."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from bench.costmeter import CostMeter
from impetus.core import codec, jobs
from impetus.core.jobs import Outcome
from impetus.storage import dynamo
from impetus.storage.jobqueue.layout import CLAIM_KEYS, CLAIM_PAGE
from impetus.storage.queue import Queue
from impetus.storage.streams import CLAIM_INDEX_FLAG
from impetus.storage.tables import CLAIM_INDEX
from tests.functional.test_queue import enqueue, spec

SPENT = 60  # fully claimed, completed, unacknowledged chunks at the partition's head


class QueryLog:
    """Every Query the queue's client sends: its parameters and what it evaluated
    (moto's ConsumedCapacity is a constant; ScannedCount is the items read before the
    filter, what AWS bills a Query on)."""

    def __init__(self, client: Any) -> None:
        self.queries: list[dict[str, Any]] = []
        events = client.meta.events
        events.register("before-parameter-build.dynamodb.Query", self._before)
        events.register("after-call.dynamodb.Query", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        self.queries.append({"params": dict(params)})

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        self.queries[-1]["scanned"] = parsed.get("ScannedCount")

    def claim_queries(self, pk: str) -> list[dict[str, Any]]:
        """The claim Queries of ready partition ``pk`` (on the index or the table)."""
        return [
            q
            for q in self.queries
            if q["params"].get("ExpressionAttributeValues", {}).get(":pk") == {"S": pk}
            and "#cursor < #n" in q["params"].get("FilterExpression", "")
        ]


def index_keys(queue: Any) -> set[str]:
    """The sort keys of every chunk in the claim index."""
    client = queue.jobs.items.client
    return {
        item["sk"]
        for item in dynamo.scan(
            client, TableName=queue.jobs.items.queue_table, IndexName=CLAIM_INDEX.name
        )
    }


def chunk_keys(queue: Any, pk: str) -> list[str]:
    return [c["sk"] for c in queue.jobs.items.chunks_in(pk, "#sk", consistent=True)]


def make_old_style(queue: Any, stream: str) -> None:
    """What a stream created before the index looks like: no flag on its item, and no
    index keys on its chunks."""
    items = queue.jobs.items
    client = items.client
    client.update_item(
        TableName=items.streams.table,
        Key=dynamo.serialize({"stream": stream}),
        UpdateExpression="REMOVE #flag",
        ExpressionAttributeNames={"#flag": CLAIM_INDEX_FLAG},
    )
    for chunk in dynamo.scan(client, TableName=items.queue_table):
        client.update_item(
            TableName=items.queue_table,
            Key=dynamo.serialize({"pk": chunk["pk"], "sk": chunk["sk"]}),
            UpdateExpression="REMOVE #cpk, #csk",
            ExpressionAttributeNames=dynamo.names("#cpk #csk"),
        )
    items.forget(stream)  # the claimer's cached copy of the stream item


def spend_head(queue: Any, stream: str) -> None:
    """SPENT one-job chunks, each claimed whole and completed, none acknowledged: they
    stay at the head of the partition, results and all."""
    enqueue(queue, stream, [spec(f"old{i:02d}", priority=-100 + i) for i in range(SPENT)])
    for _ in range(SPENT):
        claim = queue.claim(stream, "n1", 5, lease=60)
        assert claim is not None
        queue.complete(
            claim, {j.id: Outcome(jobs.READY, result=codec.dumps(1)) for j in claim.jobs}
        )


def test_claim_behind_a_head_of_spent_chunks_reads_only_the_claimable_one(queue):
    queue.create_stream("s")
    spend_head(queue, "s")
    assert len(chunk_keys(queue, "s#0")) == SPENT  # all still there, not acknowledged
    assert index_keys(queue) == set()  # none of them claimable
    enqueue(queue, "s", [spec("new", priority=10)])  # sorts after every spent chunk

    log = QueryLog(queue.jobs.items.client)
    claim = queue.claim("s", "n1", 5, lease=60)

    assert [j.id for j in claim.jobs] == ["new"]
    [query] = log.claim_queries("s#0")
    assert query["params"]["IndexName"] == CLAIM_INDEX.name
    assert "ConsistentRead" not in query["params"]
    assert query["scanned"] == 1  # the new chunk only, not the SPENT ones before it


def test_the_cost_meter_bills_the_index_apart(queue):
    """bench/costmeter.py: the claim's Query is the "claim index" kind on its shard's
    index partition, eventually consistent (half a unit for one small entry), and the
    claim that takes the chunk's last job also writes the index (the entry's removal)."""
    queue.create_stream("s")
    spend_head(queue, "s")
    enqueue(queue, "s", [spec("new", priority=10)])
    meter = CostMeter(boto3.client("dynamodb"), queue.settings.table_prefix)
    metered = Queue(queue.settings, client=meter.instrument(boto3.client("dynamodb")))

    assert [j.id for j in metered.claim("s", "n1", 5, lease=60).jobs] == ["new"]

    usage = meter.reset()
    query = usage.by_key[("node", "queue", "claim index", "Query")]
    assert (query.requests, query.rcu) == (1, 0.5)
    assert usage.by_key[("node", "queue", "shard partition", "Query")].requests == 0
    removal = usage.by_key[("node", "queue", "claim index", "UpdateItem")]
    assert (removal.requests, removal.wcu) == (1, 1.0)
    assert list(usage.per_key[("node", "queue", "claim index")]) == ["s#0"]


def test_an_old_style_stream_reads_its_spent_head_and_still_claims(queue):
    """The contrast (and the upgrade rule): a stream without the flag Queries its
    partition, strongly consistent, and evaluates a page of spent chunks per claim."""
    queue.create_stream("s")
    spend_head(queue, "s")
    enqueue(queue, "s", [spec("new", priority=10)])
    make_old_style(queue, "s")

    log = QueryLog(queue.jobs.items.client)
    claim = queue.claim("s", "n1", 5, lease=60)

    assert [j.id for j in claim.jobs] == ["new"]
    queries = log.claim_queries("s#0")
    assert all("IndexName" not in q["params"] for q in queries)
    assert all(q["params"]["ConsistentRead"] for q in queries)
    assert sum(q["scanned"] for q in queries) >= CLAIM_PAGE


def test_old_style_stream_is_fully_claimable(queue):
    """Chunks written before the index (no index keys) on a stream without the flag:
    every job is claimed, in priority order, and none twice."""
    queue.create_stream("s")
    enqueue(queue, "s", [spec(f"a{i:02d}", priority=1) for i in range(25)])
    enqueue(queue, "s", [spec("first", priority=-5)])
    make_old_style(queue, "s")
    assert index_keys(queue) == set()

    claimed = []
    while claim := queue.claim("s", "n1", 7, lease=60):
        claimed += [j.id for j in claim.jobs]
    assert claimed[0] == "first"
    assert sorted(claimed) == sorted(["first"] + [f"a{i:02d}" for i in range(25)])


def test_index_holds_partly_claimed_chunks_not_fully_claimed_ones(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec(f"a{i}", priority=0) for i in range(3)])
    enqueue(queue, "s", [spec(f"b{i}", priority=1) for i in range(2)])
    a_sk, b_sk = chunk_keys(queue, "s#0")
    assert index_keys(queue) == {a_sk, b_sk}

    assert [j.id for j in queue.claim("s", "n1", 3, lease=60).jobs] == ["a0", "a1", "a2"]
    assert index_keys(queue) == {b_sk}  # fully claimed: out
    assert [j.id for j in queue.claim("s", "n1", 1, lease=60).jobs] == ["b0"]
    assert index_keys(queue) == {b_sk}  # partly claimed: still in, with its new cursor
    [entry] = dynamo.scan(
        queue.jobs.items.client, TableName=queue.jobs.items.queue_table, IndexName="claimable"
    )
    assert entry["cursor"] == 1 and entry["n"] == 2
    assert "jobs" not in entry and "claims" not in entry  # only a candidate's fields
    assert [j.id for j in queue.claim("s", "n1", 5, lease=60).jobs] == ["b1"]
    assert index_keys(queue) == set()
    assert queue.claim("s", "n1", 5, lease=60) is None


def test_cancel_of_the_last_waiting_job_takes_the_chunk_out_of_the_index(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec(f"a{i}") for i in range(3)])
    [sk] = chunk_keys(queue, "s#0")
    queue.claim("s", "n1", 1, lease=60)  # a0 runs
    assert queue.cancel_jobs("s", ["a2"])["cancelled"] == ["a2"]
    assert index_keys(queue) == {sk}  # a1 still waits
    assert queue.cancel_jobs("s", ["a1"])["cancelled"] == ["a1"]
    assert index_keys(queue) == set()
    assert queue.claim("s", "n1", 5, lease=60) is None
    assert chunk_keys(queue, "s#0") == [sk]  # kept for a0's result


def test_a_released_job_is_claimable_again_through_the_index(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a"), spec("b")])
    claim = queue.claim("s", "n1", 5, lease=60)
    assert index_keys(queue) == set()
    queue.release(claim)
    assert len(index_keys(queue)) == 1  # the re-queued chunk

    log = QueryLog(queue.jobs.items.client)
    again = queue.claim("s", "n2", 5, lease=60)
    assert sorted(j.id for j in again.jobs) == ["a", "b"]
    assert log.claim_queries("s#0")[0]["params"]["IndexName"] == CLAIM_INDEX.name


def test_a_higher_priority_chunk_enqueued_later_is_claimed_first(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("low", priority=5)])
    enqueue(queue, "s", [spec("high", priority=-1)])
    enqueue(queue, "s", [spec("mid", priority=0)])
    order = []
    while claim := queue.claim("s", "n1", 1, lease=60):
        order += [j.id for j in claim.jobs]
    assert order == ["high", "mid", "low"]


def test_a_delayed_chunk_joins_the_index_when_it_falls_due(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("later", delay=0.05)])
    [delayed] = list(queue.jobs.items.chunks_in("s#delayed", "#pk, #sk, #cpk"))
    assert not set(CLAIM_KEYS) & set(delayed)  # never in the index while delayed
    assert index_keys(queue) == set()
    time.sleep(0.1)
    claim = queue.claim("s", "n1", 5, lease=60)
    assert [j.id for j in claim.jobs] == ["later"]
    assert index_keys(queue) == set()


def test_oldest_due_reads_the_index(queue):
    queue.create_stream("s")
    assert queue.oldest_waiting_age(["s"], time.time()) == 0.0
    enqueue(queue, "s", [spec("a")])
    log = QueryLog(queue.jobs.items.client)
    assert queue.oldest_waiting_age(["s"], time.time() + 5) >= 4.0
    assert log.claim_queries("s#0")[0]["params"]["IndexName"] == CLAIM_INDEX.name


def test_new_streams_carry_the_flag(queue):
    queue.create_stream("s")
    assert queue.streams.get_item("s")[CLAIM_INDEX_FLAG] is True


def test_the_query_wrapper_refuses_consistent_reads_on_an_index():
    """Before any request (no client is even needed): AWS would answer a
    ValidationException."""
    with pytest.raises(ValueError, match="ConsistentRead on the global secondary index"):
        dynamo.query(None, TableName="t", IndexName=CLAIM_INDEX.name, ConsistentRead=True)
    dynamo.query(None, TableName="t", IndexName=CLAIM_INDEX.name)  # lazy: no request yet


def test_the_recount_mends_chunks_of_node_agents_older_than_the_index(queue):
    """During a rollout, agents of the code before the index may serve a new stream:
    their re-queued chunks lack the index keys (unseen by index claims: stranded once
    those agents are gone), their last claims leave the keys. DFS's recount mends both."""
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a0", priority=0), spec("a1", priority=0)])
    enqueue(queue, "s", [spec("b", priority=1)])
    a_sk, b_sk = chunk_keys(queue, "s#0")
    client, table = queue.jobs.items.client, queue.jobs.items.queue_table
    old_style = {"pk": "s#0", "sk": a_sk}
    client.update_item(
        TableName=table,
        Key=dynamo.serialize(old_style),
        UpdateExpression="REMOVE #cpk, #csk",
        ExpressionAttributeNames=dynamo.names("#cpk #csk"),
    )
    assert [j.id for j in queue.claim("s", "n1", 5, lease=60).jobs] == ["b"]
    client.update_item(  # as an old agent's claim of b would have left it
        TableName=table,
        Key=dynamo.serialize({"pk": "s#0", "sk": b_sk}),
        UpdateExpression="SET #cpk = :pk, #csk = :sk",
        ExpressionAttributeNames=dynamo.names("#cpk #csk"),
        ExpressionAttributeValues=dynamo.values(pk="s#0", sk=b_sk),
    )
    assert index_keys(queue) == {b_sk}
    assert queue.claim("s", "n1", 5, lease=60) is None  # a0 and a1 unseen

    assert queue.recount("s")["waiting"] == 2

    assert index_keys(queue) == {a_sk}
    assert sorted(j.id for j in queue.claim("s", "n1", 5, lease=60).jobs) == ["a0", "a1"]
    queue.recount("s")
    assert index_keys(queue) == set()  # nothing more to mend
