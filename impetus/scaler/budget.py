"""The DFS tick's request budget: how many per-stream requests one tick makes at most,
and how many it has in flight at once.

A tick's per-stream work (reaps, audits, delayed-job counts, ttl checks, the oldest-wait
sample) is bounded per tick and rotates over the streams, and runs on a pool of
:data:`REQUEST_CONCURRENCY` threads (one boto3 client: thread-safe,
https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html#multithreading-or-multiprocessing-with-clients),
so a tick's wall time is about requests x latency / concurrency, not requests x latency.

Arithmetic at 10,000 nodes and 10,000 busy streams, 10 ms a request
(``impetus.capacity.limits.DDB_REQUEST_SECONDS``), against the DFS Lambda's 50 s timeout.
Pooled (per stream, 16 at once):

* reaps: a GetItem of the stream's properties and a Query per shard on its ring (2 at
  1 shard, up to 9; counted 3). A rotating slice of :data:`REAP_STREAMS_PER_TICK` = 500
  busy streams a tick: 1,500; plus the streams of nodes found dead, at most
  :data:`DEAD_NODE_REAPS_PER_TICK` = 1,000 a tick (3,000), the rare case. Every busy
  stream is reaped within ceil(10,000 / 500) = 20 ticks: 200 s while work flows (a tick
  every 10 s), 20 minutes on the once-a-minute schedule.
* audits: at most :data:`AUDIT_STREAMS_PER_TICK` = 250 due streams (and
  ``audit.AUDIT_PARTITIONS`` partitions), 4 requests each at 1 shard (the stream item, a
  consistent BatchGet of its counter items, a Query of the ready shard and one of the
  delayed partition): 1,000. At 10,000 busy streams one is audited every 400 s, not 300.
* due delayed jobs: a Query per stream holding delayed jobs, at most
  :data:`DELAYED_STREAMS_PER_TICK` = 500 a tick, rotating (the others count 0 due for
  that tick): 500.
* the oldest-wait metric: a GetItem and up to 8 Queries (``OLDEST_SAMPLE``) for each of
  the :data:`OLDEST_STREAMS_PER_TICK` = 20 streams with the largest backlog: 180.
* ttl checks: a GetItem per stream past its ttl by creation, once per ttl per stream
  (remembered), at most :data:`EXPIRE_CHECKS_PER_TICK` = 200 a tick.

Sequential: the listing (2 reads of the active-streams record and 10,000 / 100 = 100
BatchGetItems; a sweep Scans the streams table instead, ~10 MB with the counter items:
~10-20 pages of 1 MB, https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.Pagination),
the nodes Scan (10,000 items of ~0.5 KB: 5 pages), ~10 fixed (decisions, Auto Scaling,
the fleet size).

A plain tick: 3,380 pooled + 117 sequential ~ 3,500 requests: 3,380 x 10 ms / 16 +
117 x 10 ms = 2.1 + 1.2 = 3.3 s; with 1,000 dead nodes' streams: 6,500, 5.2 s.
A sweep: 3,380 pooled + ~35 sequential ~ 3,400 requests: 2.1 + 0.4 = 2.5 s; 6,400 and
4.4 s with the dead nodes' streams. All well within half the 50 s timeout; one after
another the same requests would take 35-65 s (before the budget: 304 s and 784 s).
"""

from __future__ import annotations

import bisect
import contextvars
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
    # Each item runs in its own copy of the caller's context: context-bound state (the
    # cost meter's actor, a logging context) follows the work onto the pool's threads.
    contexts = [contextvars.copy_context() for _ in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(lambda c, i: c.run(work, i), contexts, items))


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
