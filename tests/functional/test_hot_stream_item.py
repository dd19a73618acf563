"""A busy stream's item and its delayed partition stay cool (issue 19, wave 2).

A real node agent runs in a thread against moto in-process; bench/costmeter.py's
CostMeter counts every DynamoDB request by key, as AWS bills it. Nothing of ours is
mocked. Measured: a busy node's reads of the stream's item per second (it read it on
each listing and every 2 s to claim), the claims' Queries of the delayed partition (one
every 0.5 s per claimer, whatever the stream held), and that changes still arrive:
a property change, a delete, a delayed job due.
"""

from __future__ import annotations

import time

import boto3
import pytest

from bench.costmeter import CostMeter, Usage
from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.storage.jobqueue import items as queue_items
from impetus.storage.jobqueue.layout import PROMOTE_EVERY
from impetus.storage.queue import Queue
from tests.functional.test_idle_poll_scaling import running_agent

WINDOW = 4.0  # seconds measured


def _nap(x):
    import time

    time.sleep(0.05)
    return x


CODE = codec.dump_function(_nap)
DIGEST = codec.digest(CODE)


def fork(queue: Queue, stream: str, n: int, delay: float = 0.0) -> list[str]:
    specs = [
        {"name": "_nap", "code": DIGEST, "args": codec.dumps(i), "stage": "s1", "delay": delay}
        for i in range(n)
    ]
    return queue.enqueue(stream, specs, {DIGEST: CODE}, codec.PYTHON_VERSION)["accepted"]


def item_reads(usage: Usage, stream: str) -> int:
    count = usage.per_key[("node", "streams", "stream item")].get(stream)
    return count.requests if count else 0


def delayed_queries(usage: Usage) -> int:
    return sum(
        c.requests
        for (_, table, kind, op), c in usage.by_key.items()
        if kind == "delayed partition" and op == "Query"
    )


def metered_queue(settings: AwsSettings) -> tuple[Queue, CostMeter]:
    meter = CostMeter(boto3.client("dynamodb"), settings.table_prefix)
    return Queue(settings, client=meter.instrument(boto3.client("dynamodb"))), meter


def finished(queue: Queue, stream: str) -> int:
    return queue.get_stream(stream)["counts"]["finished"]


def test_a_busy_node_reads_the_stream_item_rarely(queue):
    queue.create_stream("hot", {"mpps": 1})
    fork(queue, "hot", 400)  # 0.05 s each, one at a time: ~20 s of work
    meter = CostMeter(boto3.client("dynamodb"), queue.settings.table_prefix)
    client = meter.instrument(boto3.client("dynamodb"))
    with running_agent(queue.settings, client) as agent:
        while finished(queue, "hot") < 5:
            time.sleep(0.1)
        meter.reset()
        time.sleep(WINDOW)
        usage = meter.reset()
        assert "hot" in agent.tracker.streams
    done = usage.by_key[("node", "queue", "shard partition", "UpdateItem")].requests
    reads = item_reads(usage, "hot")
    queries = delayed_queries(usage)
    print(
        f"busy node, {WINDOW} s: {done} claims, stream-item reads {reads}, "
        f"delayed Queries {queries}"
    )
    assert done >= 10  # it was busy claiming
    # It read the item on each listing (5 a second here) and every 2 s to claim; now once
    # a minute (impetus.storage.markeditems.ITEM_TTL): none in this window.
    assert reads == 0
    assert queries == 0  # nothing was ever delayed on this stream


def test_a_property_change_and_a_delete_reach_a_busy_node_at_its_next_listing(queue):
    queue.create_stream("hot", {"mpps": 1, "idle_timeout": 60})
    fork(queue, "hot", 400)
    with running_agent(queue.settings, boto3.client("dynamodb")) as agent:
        while "hot" not in agent.tracker.streams:
            time.sleep(0.05)
        queue.update_properties("hot", {"frequency": 7})
        started = time.monotonic()
        while agent.tracker.streams["hot"].params.frequency != 7:
            assert time.monotonic() - started < 3.0  # a listing (0.2 s here), not a minute
            time.sleep(0.05)
        print(f"property change seen in {time.monotonic() - started:.2f} s")
        queue.delete_stream("hot")
        started = time.monotonic()
        while "hot" in agent.tracker.streams:
            assert time.monotonic() - started < 5.0  # a listing, once its jobs in hand end
            time.sleep(0.05)
        print(f"delete seen in {time.monotonic() - started:.2f} s")


def test_claims_query_the_delayed_partition_only_while_something_may_be_due(
    aws, monkeypatch: pytest.MonkeyPatch
):
    # A hint step of 1 s (60 s in production) to see the Queries stop within the test.
    monkeypatch.setattr(queue_items, "DELAY_HINT_STEP_MS", 1000)
    from impetus.local.provision import provision

    settings = AwsSettings(table_prefix="delays")
    provision(settings)
    queue, meter = metered_queue(settings)
    queue.create_stream("d")
    fork(queue, "d", 20)
    meter.reset()
    for _ in range(4):  # each claim past PROMOTE_EVERY since the last
        assert queue.claim("d", "n1", 5, lease=60)
        time.sleep(PROMOTE_EVERY + 0.05)
    assert delayed_queries(meter.reset()) == 0  # nothing delayed: not one Query
    # A delayed job: claimable once due (plus at most PROMOTE_EVERY), not before.
    [job] = fork(queue, "d", 1, delay=1.0)
    forked = time.monotonic()
    while True:
        claim = queue.claim("d", "n1", 20, lease=60)
        if claim and job in [j.id for j in claim.jobs]:
            break
        assert time.monotonic() - forked < 1.0 + PROMOTE_EVERY + 2.5  # PROPS_TTL, slack
        time.sleep(0.05)
    waited = time.monotonic() - forked
    print(f"delayed 1 s, claimed after {waited:.2f} s")
    assert waited >= 0.95
    # Once a Query after DELAYED_UNTIL (+ the clock slack) found nothing due: no more.
    time.sleep(4.0)
    queue.claim("d", "n1", 1, lease=60)  # the Query that finds it clear
    meter.reset()
    for _ in range(3):
        queue.claim("d", "n1", 1, lease=60)
        time.sleep(PROMOTE_EVERY + 0.05)
    assert delayed_queries(meter.reset()) == 0
