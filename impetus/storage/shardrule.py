"""How many queue shards a stream needs for its arrival rate (the rule; see
docs/architecture.md, "Queue shards"). Apart from :mod:`impetus.storage.jobqueue.layout`
so that the streams table's code can use it without importing the queue."""

from __future__ import annotations

import math

# One partition serves at most 1,000 write units and 3,000 read units per second
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html);
# a stream's shard takes its share of the work, so it gets a shard per half of that.
PARTITION_WCU = 1000.0
PARTITION_RCU = 3000.0
SHARD_HEADROOM = 0.5  # a shard is planned to run at most at this share of its partition
# Queue-table units per job, measured by bench/costs.py on the fork workload (2000 trivial
# jobs, docs/performance.md): the chunk's put (1 per 20 jobs), claims, completions and
# acknowledgements write 0.43 WCU per job; the claim and collection Queries read 1.9 RCU.
# Since claims read the claim index and carry the jobs' timeline stamps
# (docs/capacity-mix.json) the shard partition takes ~0.6 WCU and ~0.22 RCU a job: the
# read figure kept here gives ~790 jobs/s a shard, under the ~830 at which writes reach
# half the partition; at the rule's rate its writes run near 47 %.
QUEUE_WCU_PER_JOB = 0.43
QUEUE_RCU_PER_JOB = 1.9


def shards_for(rate: float, most: int) -> int:
    """Ready shards for ``rate`` arrivals per second: each shard kept at or under
    SHARD_HEADROOM of its partition's writes and reads (at most ``most``, at least 1).
    About 790 jobs/s a shard (reads bind first), so 64 shards carry ~50,000 jobs/s."""
    per_shard = SHARD_HEADROOM * min(
        PARTITION_WCU / QUEUE_WCU_PER_JOB, PARTITION_RCU / QUEUE_RCU_PER_JOB
    )
    return max(1, min(most, math.ceil(rate / per_shard)))
