"""Which streams this node serves, and with which per-stream parameters.

Pure logic: the agent feeds it ``Queue.list_streams()`` descriptions and tells it which
streams still have jobs in hand; it answers which streams to track and which to drop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from impetus.core.properties import PROPERTIES
from impetus.storage.streams import MARKED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamParams:
    """The stream properties that steer this node (names and defaults: impetus.core.properties)."""

    mpps: int
    frequency: float
    idle_timeout: float
    lease: float
    time_limit: float | None  # seconds a job may run; None: no limit


def _number(properties: dict[str, Any], key: str, default: float) -> float:
    """A numeric property; clients may send numbers as strings. Bad or negative -> default."""
    value = properties.get(key)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        log.warning("ignoring stream property %s=%r: not a number", key, value)
        return default
    return number if number >= 0 else default


def stream_params(
    properties: dict[str, Any], node_mpps: int, lease: float, min_lease: float
) -> StreamParams:
    """A stream's ``mpps`` may only lower the node's; its ``lease`` is kept renewable."""
    mpps = int(_number(properties, "mpps", node_mpps)) or node_mpps
    return StreamParams(
        mpps=max(1, min(node_mpps, mpps)),
        frequency=_number(properties, "frequency", PROPERTIES["frequency"].default),
        idle_timeout=_number(properties, "idle_timeout", PROPERTIES["idle_timeout"].default),
        lease=max(min_lease, _number(properties, "lease", lease)),
        time_limit=_number(properties, "time_limit", 0.0) or None,
    )


def matches(node_filter: dict[str, str], properties: dict[str, Any]) -> bool:
    """Every filter key must be a stream property with an equal value (string compare)."""
    return all(k in properties and str(properties[k]) == v for k, v in node_filter.items())


def has_work(description: dict[str, Any]) -> bool:
    """Waiting jobs, or delayed ones (claiming is what makes them due on this Queue); a
    stream marked active (an uncounted listing, impetus.storage.streams.MARKED) may have
    some, and a claim finds out."""
    if description.get(MARKED):
        return True
    counts = description.get("counts") or {}
    return int(counts.get("waiting") or 0) > 0 or int(counts.get("delayed") or 0) > 0


@dataclass
class TrackedStream:
    id: str
    properties: dict[str, Any]
    params: StreamParams
    last_active: float  # monotonic time work was last seen
    waiting: bool = True  # the last listing showed work (claims are worth trying)


@dataclass
class StreamTracker:
    """Tracks matching streams with work; drops them once idle past their ``idle_timeout``."""

    node_filter: dict[str, str]
    node_mpps: int
    lease: float
    min_lease: float
    streams: dict[str, TrackedStream] = field(default_factory=dict)

    def refresh(
        self, descriptions: Iterable[dict[str, Any]], now: float, active: Callable[[str], bool]
    ) -> tuple[list[str], list[str]]:
        """Apply one listing. ``active(id)``: the node still holds jobs of that stream.

        Returns (added ids, dropped ids).
        """
        listed = {d["id"]: d for d in descriptions if "id" in d}
        added = [sid for sid, d in listed.items() if self._update(sid, d, now)]
        dropped = [
            sid for sid in list(self.streams) if self._expired(sid, sid in listed, now, active)
        ]
        for sid in dropped:
            del self.streams[sid]
        return added, dropped

    def touch(self, stream_id: str, now: float) -> None:
        """Work was just seen (a claim returned jobs)."""
        if stream_id in self.streams:
            self.streams[stream_id].last_active = now

    def _update(self, sid: str, description: dict[str, Any], now: float) -> bool:
        properties = description.get("properties") or {}
        work = has_work(description)
        tracked = self.streams.get(sid)
        if not matches(self.node_filter, properties):
            if tracked is not None:
                tracked.waiting = False  # no new claims; dropped once it is idle
            return False
        params = stream_params(properties, self.node_mpps, self.lease, self.min_lease)
        if tracked is None:
            if not work:
                return False
            self.streams[sid] = TrackedStream(sid, properties, params, now)
            return True
        tracked.properties, tracked.params, tracked.waiting = properties, params, work
        if work:
            tracked.last_active = now
        return False

    def _expired(self, sid: str, listed: bool, now: float, active: Callable[[str], bool]) -> bool:
        tracked = self.streams[sid]
        if active(sid):
            tracked.last_active = now
            return False
        if not listed:
            return True  # deleted
        return now - tracked.last_active > tracked.params.idle_timeout
