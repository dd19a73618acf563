"""DFS's side of the active-streams record (impetus.storage.activestreams).

Each tick lists the streams the record marks (two small consistent reads and one
BatchGetItem per 100 marked streams) instead of Scanning the streams table. Once a
minute (:data:`SWEEP_EVERY`) the tick Scans everything instead, the safety net: a stream
that wants a mark (work waiting, delayed or running, or ``min_nodes`` to keep) but lacks
one in some replica (its marker died between writes, or a mark found its shard full) is
marked again; the ttl expiry and the counter audit, which must see idle streams too,
run on that listing.

Marks are removed here only, and only when it is safe: the API marks a stream when an
enqueue *reads* it idle, then writes the jobs, then adds to the counters. A stream is
unmarked once two ticks at least :data:`UNMARK_AFTER` seconds apart both saw it idle,
with the same ``forked`` count and the same mark token (read before the counters), and
the removal is conditional on that token. An enqueue that read the stream idle wrote a
new token (the condition fails, or its mark lands after the removal); one that read it
busy did so before the first of those ticks (else ``forked`` would differ), so its
counter update lands within a request's lifetime (an API request lasts at most 29 s,
https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html), before the
second tick. What is left, a marker killed mid-request, the sweep finds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from impetus.core import properties
from impetus.storage.activestreams import Snapshot
from impetus.storage.queue import Queue
from impetus.storage.streams import is_idle

log = logging.getLogger(__name__)

SWEEP_EVERY = 60.0  # seconds between full listings (the safety net; costs O(streams))
UNMARK_AFTER = 60.0  # seconds a stream stays idle, unchanged, before its mark goes


def wants_mark(stream: dict[str, Any]) -> bool:
    """Work waits, is delayed or runs (by the counters), or nodes are kept for it."""
    props = stream.get("properties") or {}
    return not is_idle(stream["counts"]) or int(properties.get(props, "min_nodes") or 0) > 0


@dataclass
class IdleSeen:
    token: str
    forked: int
    since: float


@dataclass
class Activity:
    """Per process (a warm Lambda container, the local ticker), like the reap times: a
    cold start only delays a sweep's repairs or an unmark, never loses a mark."""

    sweep_every: float = SWEEP_EVERY
    unmark_after: float = UNMARK_AFTER
    swept_at: float = float("-inf")
    idle: dict[str, IdleSeen] = field(default_factory=dict)

    def sweep_due(self, now: float) -> bool:
        """A minute since the last sweep (or the clock went back: sweep then too)."""
        return not 0 <= now - self.swept_at < self.sweep_every

    def listing(
        self, queue: Queue, now: float, extra: Iterable[str] = ()
    ) -> tuple[list[dict[str, Any]], bool]:
        """(the streams this tick looks at, whether that is every stream). ``extra``:
        streams to describe even if unmarked (the audit's suspects)."""
        if self.sweep_due(now):
            return self.sweep(queue, now), True
        snapshot = queue.streams.active.snapshot()
        if snapshot.overflow:
            return queue.list_streams(), True
        listing = queue.streams.describe_many(sorted(set(snapshot.marks) | set(extra)))
        self.forget_idle(queue, snapshot, listing, now)
        return listing, False

    def sweep(self, queue: Queue, now: float) -> list[dict[str, Any]]:
        """Every stream; marks what lacks a mark it wants, in any replica."""
        self.swept_at = now
        replicas = queue.streams.active.every_replica()
        listing = queue.list_streams()
        self.repair(queue, replicas, listing)
        self.forget_idle(queue, Snapshot(replicas[0]), listing, now)
        return listing

    @staticmethod
    def repair(queue: Queue, replicas: list[dict[str, str]], listing: list[dict[str, Any]]) -> int:
        """Mark every stream that wants a mark and lacks one (or holds different tokens
        in different replicas: a marker died midway). Returns how many."""
        repaired = 0
        for stream in listing:
            sid = stream["id"]
            tokens = {marks.get(sid) for marks in replicas}
            if not wants_mark(stream) or (None not in tokens and len(tokens) == 1):
                continue
            log.warning("stream %s wants work but its active mark was missing: marked", sid)
            queue.streams.active.mark(sid)
            repaired += 1
        return repaired

    def forget_idle(
        self, queue: Queue, snapshot: Snapshot, listing: list[dict[str, Any]], now: float
    ) -> int:
        """Unmark streams that stayed idle and unchanged long enough, or are gone.
        ``listing`` must describe every stream ``snapshot`` marks (read after it)."""
        by_id = {s["id"]: s for s in listing}
        removed = 0
        for sid, token in snapshot.marks.items():
            stream = by_id.get(sid)
            if stream is not None and wants_mark(stream):
                self.idle.pop(sid, None)
                continue
            if stream is not None and not self._idle_long_enough(sid, token, stream, now):
                continue
            if queue.streams.active.unmark(sid, token):
                log.info("stream %s: %s, active mark removed", sid, "idle" if stream else "gone")
                removed += 1
            self.idle.pop(sid, None)
        for sid in [s for s in self.idle if s not in snapshot.marks]:
            del self.idle[sid]
        return removed

    def _idle_long_enough(self, sid: str, token: str, stream: dict[str, Any], now: float) -> bool:
        forked = int(stream["counts"].get("forked") or 0)
        seen = self.idle.get(sid)
        if seen is None or seen.token != token or seen.forked != forked:
            self.idle[sid] = IdleSeen(token, forked, now)
            return False
        return now - seen.since >= self.unmark_after
