"""Streams whose client is gone: deleted a ``ttl`` after its last activity.

A client that is killed (SIGKILL, a closed notebook, a lost laptop) cannot delete its
stream; its queued jobs, results and store would stay, and nodes kept for it would run
on. The client's activity shows in its collector lease (impetus.session.CollectorLease),
whose expiry it pushes forward every 10 s: a stream not ``keep`` whose lease expired
(or that never had one since it was created) more than its ``ttl`` ago is deleted by the
DFS tick, through ``Queue.delete_stream`` like a client's delete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from impetus.core import properties
from impetus.scaler import budget
from impetus.storage.queue import Queue

log = logging.getLogger(__name__)


def last_activity(item: dict[str, Any]) -> float:
    """When the stream's client was last seen: its lease's expiry, else its creation."""
    lease = item.get("collector") or {}
    return max(float(item.get("created") or 0), float(lease.get("expires") or 0))


def is_expired(stream: dict[str, Any], now: float) -> bool:
    """Cheap test on a listing entry: might the stream be past its ttl? (no lease read)"""
    props = stream.get("properties") or {}
    if stream.get("status", "active") != "active" or properties.get(props, "keep"):
        return False
    return now - float(stream.get("created") or now) > float(properties.get(props, "ttl"))


@dataclass
class ExpiryCheck:
    """Per process: when each stream may next be past its ttl. A stream whose client is
    alive is read once per ttl, not at every sweep; a cold start reads each once again."""

    per_tick: int = budget.EXPIRE_CHECKS_PER_TICK
    not_before: dict[str, float] = field(default_factory=dict)

    def candidates(self, listing: list[dict[str, Any]], now: float) -> list[str]:
        """Streams that may be past their ttl and are due a look, at most ``per_tick``
        (oldest first; the rest wait for the next tick)."""
        maybe = [
            s
            for s in listing
            if is_expired(s, now) and self.not_before.get(s["id"], float("-inf")) <= now
        ]
        maybe.sort(key=lambda s: (float(s.get("created") or 0), s["id"]))
        return [s["id"] for s in maybe[: self.per_tick]]

    def forget(self, live: set[str]) -> None:
        """Drop what is remembered of streams no longer listed (at a full listing)."""
        self.not_before = {s: t for s, t in self.not_before.items() if s in live}


def expire_streams(
    queue: Queue, listing: list[dict[str, Any]], now: float, check: ExpiryCheck | None = None
) -> list[str]:
    """Delete the listed streams past their ttl; returns their ids."""
    check = check or ExpiryCheck()

    def one(sid: str) -> str | None:
        try:
            item = queue.streams.get_item(sid)
            ttl = float(properties.get(item.get("properties") or {}, "ttl"))
            idle = now - last_activity(item)
            if idle <= ttl:
                check.not_before[sid] = last_activity(item) + ttl
                return None
            log.warning("stream %s: no client for %.0f s (ttl %.0f s): deleting it", sid, idle, ttl)
            queue.delete_stream(sid)
        except Exception:  # deleted meanwhile, or a transient error: the next tick retries
            log.exception("expiring stream %s failed", sid)
            return None
        check.not_before.pop(sid, None)
        return sid

    return [sid for sid in budget.fan_out(one, check.candidates(listing, now)) if sid]
