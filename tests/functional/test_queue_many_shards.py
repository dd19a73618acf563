"""A stream past the old 64 shards (moto in-process): jobs spread over 256 shards are each
claimed once and all collected, a growth from 64 to 256 strands nothing, and what one
claim, reap or job costs does not grow with the shards (bench/costmeter.py's units)."""

from __future__ import annotations

import math

import pytest

from bench import costmeter
from impetus.core import codec, jobs, properties
from impetus.core.jobs import Outcome
from impetus.storage import shardrule, streamcounters
from impetus.storage.jobqueue.layout import CLAIM_PROBES, REAP_SHARDS
from impetus.storage.queue import Queue
from tests.functional.test_queue_shard_growth import chunks_per_shard, fork

DONE = {"waiting": 0, "running": 0, "delayed": 0}


def drain(
    node: Queue, stream: str, shards: int, jobs_left: int, batch: int = 20, cached: int = 0
) -> list[str]:
    """Claim and complete ``jobs_left`` jobs. A claim Queries only a few
    shards, so a dry claim does not mean an empty queue; but one claimer's dry claims in a
    row never pass a sweep of every shard (else a job could be stranded). A node that
    still had ``cached`` shards in its copy of the properties when the drain began may
    add a sweep of those before its copy expires."""
    ran, dry = [], 0
    sweep = math.ceil(shards / CLAIM_PROBES) + math.ceil(cached / CLAIM_PROBES)
    while len(ran) < jobs_left:
        claim = node.claim(stream, "n", batch, lease=30)
        if claim is None:
            dry += 1
            assert dry <= sweep, f"{dry} dry claims in a row while jobs wait"
            continue
        dry = 0
        ran += [j.id for j in claim.jobs]
        node.complete(claim, {j.id: Outcome(jobs.READY, result=codec.dumps(0)) for j in claim.jobs})
    return ran


def node_finds_nothing(node: Queue, stream: str, shards: int) -> bool:
    """A whole sweep of dry claims: no shard holds a claimable job."""
    return all(
        node.claim(stream, "n", 20, lease=30) is None
        for _ in range(math.ceil(shards / CLAIM_PROBES))
    )


def test_the_maximum_is_past_what_100000_jobs_per_second_need():
    assert properties.MAX_SHARDS == 256
    assert shardrule.shards_for(100_000, properties.MAX_SHARDS) == 127


def test_growth_from_64_to_256_strands_nothing_and_each_job_runs_once(queue):
    queue.create_stream("w", {"shards": 64})
    before = fork(queue, "w", [f"a{i:04d}" for i in range(300)])
    stale = Queue(queue.settings)  # a node that read 64 shards before the growth
    first = stale.claim("w", "n", 20, lease=30)
    assert first is None or len(first.jobs) <= 20
    queue.update_properties("w", {"shards": 256})
    item = queue.streams.get_item("w")
    assert item["properties"]["shards"] == 256
    assert streamcounters.counter_shards(item) == streamcounters.MAX_COUNTER_SHARDS == 64
    after = fork(queue, "w", [f"b{i:04d}" for i in range(1000)])
    spread = chunks_per_shard(queue, "w", 256)
    assert sum(1 for n in spread[64:] if n) >= 20  # new jobs land on shards 64..255
    assert sum(spread) == 15 + 50
    ran = [] if first is None else [j.id for j in first.jobs]
    if first is not None:
        stale.complete(
            first, {j.id: Outcome(jobs.READY, result=codec.dumps(0)) for j in first.jobs}
        )
    ran += drain(stale, "w", 256, 650 - len(ran), cached=64)
    ran += drain(Queue(queue.settings), "w", 256, 1300 - len(ran))
    assert node_finds_nothing(Queue(queue.settings), "w", 256)
    assert len(ran) == len(set(ran)) == 1300  # each job claimed once
    assert sorted(ran) == sorted(before + after)
    assert queue.recount("w") == DONE
    collected = [r["id"] for r in queue.results("w", "s", limit=2000)]
    assert sorted(collected) == sorted(before + after)
    assert queue.ack("w", collected) == 1300
    counts = queue.get_stream("w")["counts"]
    assert counts["forked"] == counts["acked"] == 1300
    assert all(counts[c] == 0 for c in ("waiting", "running", "finished"))
    queue.delete_stream("w")
    assert sum(chunks_per_shard(queue, "w", 256)) == 0


def test_a_stream_created_with_256_shards_has_64_counter_items(queue):
    queue.create_stream("c", {"shards": 256})
    item = queue.streams.get_item("c")
    assert streamcounters.counter_shards(item) == 64
    assert queue.streams.grow_shards("c", 256) is False  # nothing to add
    ids = fork(queue, "c", [f"c{i}" for i in range(100)])
    assert queue.get_stream("c")["counts"]["waiting"] == len(ids)


@pytest.fixture
def metered(queue):
    meter = costmeter.CostMeter(queue.client, queue.settings.table_prefix)
    client = meter.instrument(Queue(queue.settings).client)
    return meter, Queue(queue.settings, client=client)


def claim_costs(meter, node, stream, claims):
    """(Queries, RCU of Queries, WCU of UpdateItems) of each fruitful claim."""
    costs = []
    for _ in range(claims):
        meter.reset()
        claim = node.claim(stream, "n", 5, lease=30)  # 4 claims a chunk
        usage = meter.reset()
        query = usage.dynamodb["Query"]
        assert query.requests <= CLAIM_PROBES + 1  # + the delayed partition's promotion
        if claim is not None:
            costs.append((query.requests, query.rcu, usage.dynamodb["UpdateItem"].requests))
    return costs


def test_a_claim_costs_the_same_with_256_shards_as_with_1(metered, queue):
    meter, node = metered
    queue.create_stream("one")
    queue.create_stream("many", {"shards": 256})
    fork(queue, "one", [f"o{i}" for i in range(400)])
    fork(queue, "many", [f"m{i}" for i in range(400)])
    one = claim_costs(meter, node, "one", 10)
    many = claim_costs(meter, node, "many", 60)
    assert len(one) == 10 and len(many) >= 10
    # A claim that finds work on its first probe: the same Query and write as on 1 shard
    # (the claimer stays on a shard while it has work, so most claims do: 3 of a chunk's 4
    # on a sparse queue of 20 chunks over 256 shards; under load, nearly all).
    first_probe = [c for c in many if c[0] <= 2]
    assert len(first_probe) >= len(many) / 2
    # Per Query: claims read the claim index, where a Query costs the minimum (half a
    # unit) on 1 shard as on 256, so one dry probe before the fruitful one doubles the sum.
    assert max(c[1] / c[0] for c in first_probe) <= max(c[1] / c[0] for c in one)
    # Counter writes ride along: one UpdateItem for the claim, one for its count.
    assert {c[2] for c in first_probe} == {c[2] for c in one} == {2}


def test_a_reap_reads_a_bounded_number_of_shards(metered, queue):
    meter, node = metered
    queue.create_stream("r", {"shards": 256})
    fork(queue, "r", [f"r{i}" for i in range(200)])
    meter.reset()
    node.reap("r")
    assert meter.reset().dynamodb["Query"].requests == REAP_SHARDS
    reaps = math.ceil(256 / REAP_SHARDS)
    for _ in range(reaps - 1):
        node.reap("r")
    # the reaper's ring came round: every shard was read once
    assert meter.reset().dynamodb["Query"].requests == 256 - REAP_SHARDS


def test_units_per_job_across_256_shards_stay_within_the_rule(metered, queue):
    """The full life of jobs on a 256-shard stream (enqueue, claims, completions,
    collection, acks): the queue-table requests spread over the shards' partitions, and
    at most 0.2 counter writes per job (what MAX_COUNTER_SHARDS is sized from)."""
    meter, node = metered
    queue.create_stream("u", {"shards": 256})
    counter_writes, per_partition = [0], {}

    def count(params, model, **_):
        key = params.get("Key") or params.get("ExpressionAttributeValues") or {}
        value = (key.get("stream") or key.get("pk") or key.get(":pk") or {}).get("S", "")
        if model.name == "UpdateItem" and "#c" in value:
            counter_writes[0] += 1
        if value.startswith("u#") and "#c" not in value:
            per_partition[value] = per_partition.get(value, 0) + 1

    node.client.meta.events.register("before-parameter-build.dynamodb", count)
    meter.reset()
    ids = node.enqueue("u", *_specs(1000))["accepted"]
    ran = drain(node, "u", 256, 1000)
    collected = [r["id"] for r in node.results("u", "s", limit=2000)]
    assert node.ack("u", collected) == 1000
    usage = meter.reset()
    assert sorted(ran) == sorted(ids) == sorted(collected)
    print(
        f"per job (all tables): {usage.wcu / 1000:.2f} WCU, {usage.rcu / 1000:.2f} RCU; "
        f"counter writes {counter_writes[0] / 1000:.3f}; partitions {len(per_partition)}, "
        f"busiest {max(per_partition.values())} requests"
    )
    assert counter_writes[0] / 1000 <= 0.2
    assert len(per_partition) >= 40  # 50 chunks: the work spread over the shards
    # no shard's partition takes more than a small multiple of its share of requests
    assert max(per_partition.values()) <= 0.1 * sum(per_partition.values())


def _specs(n):
    from tests.functional.test_queue_shard_growth import CODE, DIGEST

    specs = [
        {"id": f"u{i:05d}", "name": "sq", "code": DIGEST, "args": codec.dumps(1), "stage": "s"}
        for i in range(n)
    ]
    return specs, {DIGEST: CODE}, codec.PYTHON_VERSION
