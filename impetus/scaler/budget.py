"""The DFS tick's request budget: how many per-stream requests one tick makes at most,
and how many it has in flight at once.

A tick's per-stream work (reaps, audits, delayed-job counts, ttl checks, the oldest-wait
sample) is bounded per tick and rotates over the streams, and runs on a pool of
:data:`REQUEST_CONCURRENCY` threads (one boto3 client: thread-safe,
https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html#multithreading-or-multiprocessing-with-clients),
so a tick's wall time is about requests x latency / concurrency, not requests x latency.

Arithmetic at 10,000 nodes and 10,000 busy streams (1 shard each), 10 ms a request
(``impetus.capacity.limits.DDB_REQUEST_SECONDS``), against the DFS Lambda's 50 s timeout:

* a reap is 3 requests (the stream item's properties, a Query of its ready shard, one of
  the next shard on its ring... at 1 shard: a GetItem and one Query; counted as 3 for
  safety and for streams of 2+ shards). A plain tick reaps a rotating slice of
  :data:`REAP_STREAMS_PER_TICK` = 500 busy streams (1,500 requests) plus the streams of
  nodes found dead, at most :data:`DEAD_NODE_REAPS_PER_TICK` = 1,000 (3,000 requests),
  the rare case. Every busy stream is reaped within ceil(10,000 / 500) = 20 ticks:
  200 s while work flows (a tick every 10 s), 20 minutes on the once-a-minute schedule.
* the listing: 2 reads of the active-streams record + 10,000 / 100 = 100 BatchGetItems;
  the nodes: a Scan of ~10,000 items of ~0.5 KB, 5 MB = 5 pages of 1 MB
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.Pagination).
* delayed-job counts: one Query per stream with delayed jobs, at most
  :data:`DELAYED_STREAMS_PER_TICK` = 500 a tick (the others count 0 due this tick: their
  promotion by the claimers makes them backlog anyway).
* the oldest-wait metric: up to 8 Queries (``OLDEST_SAMPLE``) + 1 GetItem for each of the
  :data:`OLDEST_STREAMS_PER_TICK` = 20 streams with the largest backlog: 180 requests.
* the audit: :data:`AUDIT_STREAMS_PER_TICK` = 250 due streams a tick at most (and
  ``audit.AUDIT_PARTITIONS`` partitions), ~3 requests each (a consistent BatchGet of the
  stream's counter items, a Query per partition: ready shard and delayed): 750.
* the ttl check: a GetItem per stream past its ttl by creation, once per ttl per stream
  (remembered), at most :data:`EXPIRE_CHECKS_PER_TICK` = 200 a tick.

A plain tick: 1,500 (reaps) + 102 + 5 + 500 + 180 + 750 + a few (decisions, Auto
Scaling) ~ 3,050 requests, 4,550 with dead nodes' reaps; a sweep adds a Scan of the
streams table (10,000 items of ~1 KB with their counter items: ~20 pages) and 200 ttl
GetItems: ~3,300 (4,800). At 10 ms a request and 16 in flight: ~1.9 s (2.9 s) a plain
tick, ~2.1 s (3.0 s) a sweep, well within half the 50 s timeout (run one after another
they would take 30-48 s: the budget alone is not enough, the pool is).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

REQUEST_CONCURRENCY = 16  # per-stream requests a tick has in flight at once
REAP_STREAMS_PER_TICK = 500  # the rotating slice of busy streams reaped each tick
DEAD_NODE_REAPS_PER_TICK = 1000  # streams of dead nodes reaped a tick; the rest wait
AUDIT_STREAMS_PER_TICK = 250  # due streams audited a tick; the rest stay due
DELAYED_STREAMS_PER_TICK = 500  # streams whose due delayed jobs are counted a tick
OLDEST_STREAMS_PER_TICK = 20  # streams the oldest-wait metric samples (largest backlog)
EXPIRE_CHECKS_PER_TICK = 200  # lease reads of streams that may be past their ttl
# The lease DFS assumes a dead node held (node_agent.config.DEFAULT_LEASE): its streams
# are reaped once this has passed since its last heartbeat (which renewed its leases).
# A node run with a longer lease is still reaped within the rotation's bound.
ASSUMED_LEASE = 60.0

T = TypeVar("T")
R = TypeVar("R")


def fan_out(work: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """``[work(i) for i in items]`` on up to ``workers`` threads (default
    :data:`REQUEST_CONCURRENCY`); results in the order of ``items``. ``work`` must catch
    its own errors if one item's failure must not stop the others."""
    items = list(items)
    workers = REQUEST_CONCURRENCY if workers is None else workers
    if workers <= 1 or len(items) <= 1:
        return [work(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(work, items))


class Rotation:
    """A slice of at most ``size`` ids a tick, each slice starting after the last id of
    the previous one (ids sorted; new and gone ids need no bookkeeping): every id that
    stays is taken within ceil(ids / size) slices."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cursor = ""

    def take(self, ids: Iterable[str]) -> list[str]:
        ring = sorted(set(ids))
        start = bisect.bisect_right(ring, self.cursor)
        chosen = (ring[start:] + ring[:start])[: self.size]
        if chosen:
            self.cursor = chosen[-1]
        return chosen
