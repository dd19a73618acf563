"""Queue shards grown from each stream's arrival rate (DFS, every tick).

The arrival rate is the stream's ``forked`` counter (every enqueued job adds 1, nothing
takes away) over at least ``RATE_WINDOW`` seconds, from the listing DFS reads anyway: no
extra read. When that rate needs more shards than the stream has
(:func:`impetus.storage.shardrule.shards_for`: each shard at most half of one
partition's writes and reads), DFS grows them (:meth:`impetus.storage.streams.Streams.grow_shards`).

Nothing is stranded by a growth: shards only grow, every reader of the queue (claims,
collection, reaping, the recount, cancel, listing jobs, deletion) visits each shard below
the count it read, and a stale count (a claimer's properties cache, 2 s) is an older,
smaller one whose shards all still exist and are still visited by everyone else. A job
stays where it was enqueued; new jobs spread over all shards.

What it cannot do: react within the window. A burst above the partitions' limit for
less than ``RATE_WINDOW`` is absorbed by DynamoDB's burst capacity (up to 300 s of a
partition's unused throughput) or throttled and retried by the SDK
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html);
a stream that expects such bursts should be created with its ``shards``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from impetus.core import properties
from impetus.storage.queue import Queue
from impetus.storage.shardrule import shards_for

log = logging.getLogger(__name__)

RATE_WINDOW = 60.0  # seconds of arrivals a rate is measured over


@dataclass
class Arrivals:
    """Per process (a warm Lambda container, the local ticker): each stream's ``forked``
    counter when its current window began."""

    window: float = RATE_WINDOW
    began: dict[str, tuple[float, int]] = field(default_factory=dict)

    def rate(self, stream_id: str, now: float, forked: int) -> float | None:
        """Jobs per second since the window began, once it lasted ``window`` seconds
        (then a new one begins); None before."""
        first = self.began.get(stream_id)
        if first is None or forked < first[1]:  # first sight, or a re-created stream
            self.began[stream_id] = (now, forked)
            return None
        if now - first[0] < self.window:
            return None
        self.began[stream_id] = (now, forked)
        return (forked - first[1]) / (now - first[0])

    def forget(self, live: set[str]) -> None:
        for stream_id in [s for s in self.began if s not in live]:
            del self.began[stream_id]


def grow(
    queue: Queue, listing: list[dict[str, Any]], now: float, arrivals: Arrivals
) -> dict[str, int]:
    """Grow the shards of streams whose arrival rate needs more; returns {stream: shards}."""
    arrivals.forget({s["id"] for s in listing})
    grown = {}
    for stream in listing:
        sid = stream["id"]
        rate = arrivals.rate(sid, now, int(stream["counts"].get("forked", 0)))
        if rate is None:
            continue
        have = properties.get(stream.get("properties", {}), "shards")
        wanted = shards_for(rate, properties.MAX_SHARDS)
        if wanted <= have:
            continue
        try:
            if queue.streams.grow_shards(sid, wanted):
                log.info("stream %s: %.0f jobs/s, shards %d -> %d", sid, rate, have, wanted)
                grown[sid] = wanted
        except Exception:
            log.exception("growing the shards of stream %s failed", sid)
    return grown
