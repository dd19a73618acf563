"""Counter audit: the counters DFS and the agents act on, checked against the queue.

A stream's ``waiting``, ``running`` and ``delayed`` counters are written apart from the
queue writes they count (agents buffer their deltas; a process can die between a write
and its count), so they can drift. Drift is not harmless: ``waiting`` at 0 while jobs
wait strands them (agents claim only from streams with waiting work, DFS scales only for
it: the fleet would stay at zero), and a phantom backlog keeps nodes up for nothing.

So DFS recounts each stream from its queue partitions (``Queue.recount``) every
``AUDIT_EVERY`` seconds and compares. Counters legitimately lag the queue: an agent's
delta is written within :data:`impetus.storage.counters.MAX_DELTA_AGE` seconds or dropped. So a
difference is corrected only when the *same* difference is seen again at least
``CONFIRM_AFTER`` (longer than that age) seconds later, and then with one conditional
write that applies only if the counters have not moved since they were read
(``Streams.correct``): a delta still on its way is not counted twice (unless one write
hangs in retries past the confirmation window, up to its SDK retry budget; the next audit
corrects that too).

The counters are spread over K counter items (:mod:`impetus.storage.streamcounters`).
The audit reads the stream item and all K in one consistent pass, recounts the queue
over the shards that item names, and writes the correction on the stream item in one
transaction that checks every counter item still holds what was read, and the stream
item its counters, K and shards: a writer only ever writes to a counter item below the
K it saw, and K only grows, so any delta landing after the read is on an item the
transaction checks (or it changed K), and cancels it. Streams from before the counter
items are given theirs here first (their counts stay on the stream item, still summed).

A busy stream whose counters never hold still is corrected at its next quiet moment;
the streams drift hurts, stranded and phantom ones, are quiet. Worst case, stranded work
gets its node ``AUDIT_EVERY + CONFIRM_AFTER`` (6 minutes) after the drift.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from impetus.core import properties
from impetus.scaler import budget
from impetus.storage.counters import MAX_DELTA_AGE
from impetus.storage.jobqueue.recount import RECOUNTED
from impetus.storage.queue import Queue
from impetus.storage.streamcounters import counter_shards, counters_for

log = logging.getLogger(__name__)

AUDIT_EVERY = 300.0  # seconds between audits of one stream
CONFIRM_AFTER = 2 * MAX_DELTA_AGE  # a difference must hold this long to be corrected
# Queue partitions the audit recounts per DFS tick at most: ~1 consistent Query each, a
# few ms; streams of 1 shard: 1,000 a tick (each is due every 300 s).
AUDIT_PARTITIONS = 2000


@dataclass
class Suspect:
    seen_at: float
    difference: dict[str, int]


@dataclass
class Auditor:
    """Per process (a warm Lambda container, the local ticker): when each stream was
    audited, and differences waiting for confirmation."""

    every: float = AUDIT_EVERY
    confirm_after: float = CONFIRM_AFTER
    per_tick: int = budget.AUDIT_STREAMS_PER_TICK

    def __post_init__(self) -> None:
        self.audited_at: dict[str, float] = {}
        self.suspects: dict[str, Suspect] = {}

    def due(self, stream_id: str, now: float) -> bool:
        suspect = self.suspects.get(stream_id)
        if suspect is not None:
            return now - suspect.seen_at >= self.confirm_after
        return now - self.audited_at.get(stream_id, float("-inf")) >= self.every

    def judge(self, stream_id: str, now: float, difference: dict[str, int]) -> bool:
        """Record what an audit found; True when it confirms the previous difference."""
        self.audited_at[stream_id] = now
        previous = self.suspects.pop(stream_id, None)
        if not any(difference.values()):
            return False
        if previous is not None and previous.difference == difference:
            return True
        self.suspects[stream_id] = Suspect(now, difference)
        return False

    def forget(self, live: set[str]) -> None:
        for table in (self.audited_at, self.suspects):
            for stream_id in [s for s in table if s not in live]:
                del table[stream_id]


def audit(
    queue: Queue, listing: list[dict[str, Any]], now: float, auditor: Auditor, full: bool = True
) -> int:
    """Audit the streams that are due, at most ``budget.AUDIT_STREAMS_PER_TICK`` streams
    and AUDIT_PARTITIONS queue partitions a tick (a recount Queries each of a stream's
    shards: up to 257), on the tick's request pool; the due streams past that budget stay
    due for the next tick (those audited longest ago go first). Returns how many were
    corrected. ``full``: the listing holds every stream (what it lacks is gone and
    forgotten); DFS's ticks between sweeps list the active streams and the suspects only
    (impetus.scaler.activity)."""
    if full:
        auditor.forget({s["id"] for s in listing})
    chosen = choose(listing, now, auditor)

    def one(sid: str) -> int:
        try:
            return _audit_one(queue, sid, now, auditor)
        except Exception:
            log.exception("auditing stream %s failed", sid)
            return 0

    return sum(budget.fan_out(one, chosen))


def choose(listing: list[dict[str, Any]], now: float, auditor: Auditor) -> list[str]:
    """This tick's audits: the due streams, longest unaudited first, within the budget."""
    due = [s for s in listing if auditor.due(s["id"], now)]
    due.sort(key=lambda s: (auditor.audited_at.get(s["id"], float("-inf")), s["id"]))
    chosen: list[str] = []
    budget_left = AUDIT_PARTITIONS
    for stream in due[: auditor.per_tick]:
        partitions = properties.get(stream.get("properties", {}), "shards") + 1
        if partitions > budget_left and budget_left < AUDIT_PARTITIONS:
            break  # the tick's share is spent (one stream alone may exceed it)
        budget_left -= partitions
        chosen.append(stream["id"])
    return chosen


def _audit_one(queue: Queue, sid: str, now: float, auditor: Auditor) -> int:
    reading = queue.streams.read_counts(sid)
    shards = properties.get(reading.item.get("properties", {}), "shards")
    if counter_shards(reading.item) < counters_for(shards):  # from before the counter items
        queue.streams.grow_shards(sid, shards)
        log.info("stream %s: counters spread over %d counter items", sid, shards)
        return 0  # the next audit reads them
    seen = reading.totals(RECOUNTED)
    truth = queue.recount(sid, shards)  # the shards the correction is conditioned on
    difference = {k: truth[k] - seen[k] for k in RECOUNTED}
    if not auditor.judge(sid, now, difference):
        return 0
    if queue.streams.correct(reading, truth):
        log.warning("stream %s: counters %s corrected to the queue's %s", sid, seen, truth)
        return 1
    auditor.suspects[sid] = Suspect(now, difference)  # they moved meanwhile: look again soon
    return 0
