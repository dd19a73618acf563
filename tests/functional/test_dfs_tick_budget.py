"""A DFS tick's requests are bounded by its budget (impetus/scaler/budget.py), however
many streams are busy, and nothing is lost: every busy stream is reaped within
ceil(streams / slice) ticks, and a dead node's streams as soon as its lease has run out.

moto in-process; every DynamoDB request is counted by bench/costmeter.py's CostMeter.
Leases expire in real time (the reap compares them with the clock), so the tests use
short leases and pass the tick's ``now`` only to step the per-stream reap interval.
"""

from __future__ import annotations

import math
import time

import boto3

from bench.costmeter import CostMeter
from impetus.core import codec
from impetus.scaler import audit, reaping
from impetus.scaler.activity import Activity
from impetus.storage.nodes import NodeBeat, Nodes, NodeStats
from impetus.storage.queue import Queue
from impetus.storage.tables import NODES, table_names_for

STREAMS = 40  # ~0.25 s each to set up on moto (a mark is 16 writes)
LIVE = 900.0  # a live node's lease: outlasts the test
SLICE = 5  # the tiny reap budget of these tests: ceil(40 / 5) = 8 ticks


def _square(x):
    return x * x


CODE = codec.dump_function(_square)
DIGEST = codec.digest(CODE)


def name(i: int) -> str:
    return f"b{i:03d}"


def busy_streams(queue: Queue, lease: float, short: set[int] = frozenset()) -> None:
    """STREAMS streams, one job each, claimed by a node (the ``short`` ones with a lease
    that expires at once: their node is dead)."""
    for i in range(STREAMS):
        sid = name(i)
        queue.create_stream(sid)
        spec = {"name": "_square", "code": DIGEST, "args": codec.dumps(i), "stage": "s1"}
        queue.enqueue(sid, [spec], {DIGEST: CODE}, codec.PYTHON_VERSION)
        node = "dead-node" if i in short else "live-node"
        claim = queue.claim(sid, node, max_jobs=1, lease=0.3 if i in short else lease)
        assert claim is not None and claim.jobs
        queue.streams.count(sid, waiting=-1, running=1)
    time.sleep(0.5)  # the short leases are past


def metered(queue: Queue) -> tuple[Queue, CostMeter]:
    meter = CostMeter(boto3.client("dynamodb"), queue.settings.table_prefix)
    return Queue(queue.settings, client=meter.instrument(boto3.client("dynamodb"))), meter


def test_one_tick_reaps_and_audits_within_the_budget(queue):
    busy_streams(queue, lease=LIVE)
    listing, full = Activity().listing(queue, time.time())
    assert full and len(listing) == STREAMS
    metered_queue, meter = metered(queue)
    bounded = reaping.Reaping(per_tick=SLICE)
    meter.reset()
    assert bounded.reap(metered_queue, listing, time.time()) == 0  # every lease is live
    reaps = meter.reset().dynamodb_requests
    assert 0 < reaps <= 3 * SLICE  # a GetItem and a Query or two a stream
    unbounded = reaping.Reaping(per_tick=STREAMS)
    unbounded.reap(metered_queue, listing, time.time())
    assert meter.reset().dynamodb_requests >= STREAMS + 3 * SLICE  # what the budget saves

    auditor = audit.Auditor(per_tick=SLICE)
    audit.audit(metered_queue, listing, time.time(), auditor)
    assert meter.reset().dynamodb_requests <= 4 * SLICE
    assert len(auditor.audited_at) == SLICE  # the other due streams wait
    audit.audit(metered_queue, listing, time.time(), auditor)
    assert len(auditor.audited_at) == 2 * SLICE  # ... for the next tick


def test_every_stream_is_reaped_within_ceil_streams_over_slice_ticks(queue):
    busy_streams(queue, lease=LIVE, short=set(range(STREAMS)))  # every node died
    listing, _ = Activity().listing(queue, time.time())
    reaper = reaping.Reaping(per_tick=SLICE)
    ticks = math.ceil(STREAMS / SLICE)
    released, start = [], time.time()
    for tick in range(ticks):  # ticks REAP_EVERY apart, as a busy DFS ticks
        released.append(reaper.reap(queue, listing, start + tick * reaping.REAP_EVERY))
    assert released[:-1] == [SLICE] * (ticks - 1)  # one slice a tick, no stream twice
    assert sum(released) == STREAMS  # all returned, none lost
    for i in (0, STREAMS // 2, STREAMS - 1):
        assert queue.claim(name(i), "new-node", max_jobs=1, lease=30).jobs  # back in the queue


def _dead_node(queue: Queue, node: str, streams: list[str], beat_at: float) -> dict[str, dict]:
    """A node item whose last heartbeat was at ``beat_at`` (expired since), listing
    ``streams``; returns the node items DFS reads."""
    nodes = Nodes(queue.client, table_names_for(queue.settings)[NODES])
    stats = NodeStats(streams=streams, workers_total=1, workers_busy=1, claims=1)
    beat = NodeBeat(node, "h", 1, beat_at - 600, beat_at, 1.0, {}, 1, stats, grace=1.0)
    assert nodes.heartbeat(beat)
    return nodes.by_node()


def test_dead_nodes_streams_are_reaped_outside_the_slice_once_their_lease_ran_out(queue):
    """Two dead nodes: one whose last beat was long ago, held b032; one that beat 10 s
    ago, held b024 (its lease may run for another 50 s). Both streams are far from the
    rotation's first slices: each is reaped on the first tick after its lease ran out."""
    busy_streams(queue, lease=LIVE, short={24, 32})
    listing, _ = Activity().listing(queue, time.time())
    now = time.time()
    lease = reaping.budget.ASSUMED_LEASE
    _dead_node(queue, "long-dead", [name(32)], now - 2 * lease)
    items = _dead_node(queue, "just-dead", [name(24)], now - 10)
    reaper = reaping.Reaping(per_tick=SLICE)
    assert reaper.reap(queue, listing, now, items) == 1  # b032
    assert reaper.rotation.cursor < name(24)  # the slice did not reach either
    assert reaper.reap(queue, listing, now + 1, items) == 0  # b024's lease may run
    assert reaper.reap(queue, listing, now - 10 + lease + 0.01, items) == 1  # b024
    assert reaper.rotation.cursor < name(24)
    assert not reaper.wanted
    for i in (24, 32):
        assert queue.claim(name(i), "new-node", max_jobs=1, lease=30).jobs  # back
    assert reaper.reap(queue, listing, now + lease + 1, items) == 0  # each node seen once
    assert reaper.mourned == {"long-dead", "just-dead"}
