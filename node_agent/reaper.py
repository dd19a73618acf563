"""Lease reaping from the nodes, until DFS takes the job over.

A node that died leaves its claims behind; their jobs return to the queue once their
leases expire and someone reaps them. Every node reaps the streams with running jobs a
few times a minute: the reap writes are conditional, so nodes racing for the same
expired claim cannot both move it.
"""

from __future__ import annotations

import logging
from typing import Any

from impetus.storage.streams import may_hold_claims

log = logging.getLogger(__name__)

REAP_EVERY = 10.0  # seconds between reaps of one stream


class Reaper:
    def __init__(self, queue: Any, interval: float = REAP_EVERY) -> None:
        self.queue = queue
        self.interval = interval
        self._last: dict[str, float] = {}

    def maybe_reap(self, listing: list[dict[str, Any]], now: float) -> int:
        """Reap every listed stream that is not idle, at most once per ``interval`` s."""
        released = 0
        for stream in listing:
            sid = stream["id"]
            if not may_hold_claims(stream):  # not only "running": counters can drift
                continue
            if now - self._last.get(sid, -self.interval) < self.interval:
                continue
            self._last[sid] = now
            try:
                n = self.queue.reap(sid)
            except Exception:
                log.exception("reaping stream %s failed", sid)
                continue
            if n:
                log.warning("stream %s: %d jobs of expired leases returned to the queue", sid, n)
            released += n
        return released
