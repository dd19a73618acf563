"""The queue-shard rule (a shard per half a partition's measured load) and the arrival
rate DFS measures it from."""

from __future__ import annotations

from impetus.core import properties
from impetus.scaler.growth import Arrivals
from impetus.storage import shardrule as layout
from impetus.storage.streamcounters import MAX_COUNTER_SHARDS, counters_for, fold

# Counter writes per job at most, unbuffered (docs/architecture.md, "Queue shards"): the
# fork's one per request, a claim's, a completion's and an ack's, each per chunk of 20 at
# worst one per 5 jobs; node agents merge theirs into one flush per stream and second.
COUNTER_WRITES_PER_JOB = 0.2


def test_a_shard_carries_half_a_partition_of_the_measured_per_job_units():
    per_shard = layout.SHARD_HEADROOM * min(
        layout.PARTITION_WCU / layout.QUEUE_WCU_PER_JOB,
        layout.PARTITION_RCU / layout.QUEUE_RCU_PER_JOB,
    )
    assert 780 < per_shard < 800  # reads bind: 1,500 RCU/s / 1.9 RCU per job
    assert layout.shards_for(0, 64) == 1
    assert layout.shards_for(per_shard, 64) == 1
    assert layout.shards_for(per_shard + 1, 64) == 2
    assert layout.shards_for(10_000, 64) == 13
    assert layout.shards_for(1_000_000, properties.MAX_SHARDS) == properties.MAX_SHARDS
    # at the load the rule allows, no shard's partition passes half its limits
    for rate in (500, 5_000, 40_000, 100_000):
        shards = layout.shards_for(rate, properties.MAX_SHARDS)
        assert rate / shards * layout.QUEUE_WCU_PER_JOB <= 0.5 * layout.PARTITION_WCU
        assert rate / shards * layout.QUEUE_RCU_PER_JOB <= 0.5 * layout.PARTITION_RCU


def test_one_stream_at_100000_jobs_per_second_fits_the_maximum_at_half_the_limits():
    shards = layout.shards_for(100_000, properties.MAX_SHARDS)
    assert shards == 127 < properties.MAX_SHARDS  # room: ~200,000 jobs/s at 256
    assert 100_000 / shards * layout.QUEUE_RCU_PER_JOB <= 0.5 * layout.PARTITION_RCU
    assert 100_000 / shards * layout.QUEUE_WCU_PER_JOB <= 0.5 * layout.PARTITION_WCU
    # the counter items: K capped below the transaction limit, each under half its writes
    k = counters_for(shards)
    assert k == MAX_COUNTER_SHARDS < 100
    assert 100_000 * COUNTER_WRITES_PER_JOB / k <= 0.5 * layout.PARTITION_WCU
    assert counters_for(3) == 3


def test_the_arrival_rate_is_measured_over_a_whole_window():
    arrivals = Arrivals(window=60)
    assert arrivals.rate("s", 0.0, 100) is None
    assert arrivals.rate("s", 59.0, 5_000) is None
    assert arrivals.rate("s", 60.0, 6_100) == 100.0
    assert arrivals.rate("s", 90.0, 9_000) is None  # a new window began at 60
    assert arrivals.rate("s", 120.0, 6_100 + 1_200) == 20.0
    assert arrivals.rate("s", 130.0, 5) is None  # re-created: the counter went back
    arrivals.forget(set())
    assert arrivals.began == {}


def test_fold_sums_counter_items_into_their_streams_and_drops_orphans():
    items = [
        {"stream": "a", "waiting": 2, "forked": 5, "counter_shards": 2},
        {"stream": "a#c0", "counter_of": "a", "waiting": 3, "forked": 1},
        {"stream": "a#c1", "counter_of": "a", "waiting": -1},
        {"stream": "gone#c0", "counter_of": "gone", "waiting": 9},
        {"stream": "b", "waiting": 1},
    ]
    folded = {i["stream"]: i for i in fold(items)}
    assert set(folded) == {"a", "b"}
    assert folded["a"]["waiting"] == 4 and folded["a"]["forked"] == 6
    assert folded["b"]["waiting"] == 1
