"""DFS's lease reaping, driven by need and bounded per tick.

A claim's lease is renewed by its node's heartbeats; it expires only when its node died
(or lost touch for a lease's length). So DFS reaps:

* the streams of every node it finds dead (its item past ``expires``, or gone while it
  held claims): the streams its last heartbeat listed (``streams``; all busy streams if
  the item does not say), once :data:`budget.ASSUMED_LEASE` has passed since that
  heartbeat, i.e. once the leases it renewed then have expired. At most
  :data:`budget.DEAD_NODE_REAPS_PER_TICK` a tick; the rest wait for the next tick.
* a rotating slice of :data:`budget.REAP_STREAMS_PER_TICK` busy streams a tick (ordered
  by id, from where the previous slice ended), the safety net for everything the first
  rule misses (a claim taken after the dead node's last heartbeat, a longer lease, a
  cold start): every busy stream is reaped within ceil(busy streams / slice) ticks.

A stream is reaped at most every :data:`REAP_EVERY` seconds by the slice (the local
ticker ticks every second or two). Reaps run on the tick's request pool
(:func:`budget.fan_out`); the reap writes are conditional, so DFS and node agents racing
for one expired claim cannot both move it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from impetus.scaler import budget
from impetus.storage.queue import Queue
from impetus.storage.streams import may_hold_claims

log = logging.getLogger(__name__)

REAP_EVERY = 10.0  # seconds between the slice's reaps of one stream (leases last a minute)
DRAINED = "drained"


@dataclass
class Reaping:
    """Per process (a warm Lambda container, the local ticker): a cold start forgets the
    dead nodes it has not reaped for yet; the rotation reaches their streams in bound."""

    per_tick: int = budget.REAP_STREAMS_PER_TICK
    dead_per_tick: int = budget.DEAD_NODE_REAPS_PER_TICK
    lease: float = budget.ASSUMED_LEASE
    every: float = REAP_EVERY
    reaped_at: dict[str, float] = field(default_factory=dict)
    wanted: dict[str, float] = field(default_factory=dict)  # stream -> reap at or after
    known: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> last item seen
    mourned: set[str] = field(default_factory=set)  # dead nodes already handled

    def __post_init__(self) -> None:
        self.rotation = budget.Rotation(self.per_tick)

    def see_nodes(
        self, items: Mapping[str, Mapping[str, Any]], busy: list[str], now: float
    ) -> list[str]:
        """Note the nodes that died since the last look; their streams become wanted.
        Returns the dead nodes' ids found this time."""
        dead = []
        for node_id, item in items.items():
            if float(item.get("expires", 0)) < now and node_id not in self.mourned:
                dead.append((node_id, item))
        for node_id, item in self.known.items():
            if node_id not in items and node_id not in self.mourned and _held(item):
                dead.append((node_id, item))  # vanished (TTL, or deleted) while holding claims
        for node_id, item in dead:
            self.mourned.add(node_id)
            streams = item.get("streams")
            at = float(item.get("heartbeat", 0)) + self.lease
            for sid in busy if streams is None else streams:
                self.wanted[sid] = min(at, self.wanted.get(sid, at))
        alive = {n: dict(i) for n, i in items.items() if float(i.get("expires", 0)) >= now}
        self.known = alive
        # Forget the gone (cannot die again) and the back (a pause: may die again).
        self.mourned = {n for n in self.mourned if n in items and n not in alive}
        return [node_id for node_id, _ in dead]

    def choose(self, listing: list[dict[str, Any]], now: float) -> list[str]:
        """This tick's streams: the dead nodes' due ones, then the rotating slice."""
        due = sorted(s for s, at in self.wanted.items() if at <= now)[: self.dead_per_tick]
        for sid in due:
            del self.wanted[sid]
        busy = sorted(s["id"] for s in listing if may_hold_claims(s))
        eligible = [
            s
            for s in busy
            if s not in due and now - self.reaped_at.get(s, float("-inf")) >= self.every
        ]
        chosen = self.rotation.take(eligible)
        live = set(busy) | set(self.wanted)
        self.reaped_at = {s: t for s, t in self.reaped_at.items() if s in live}
        for sid in [*due, *chosen]:
            self.reaped_at[sid] = now
        return due + chosen

    def reap(
        self,
        queue: Queue,
        listing: list[dict[str, Any]],
        now: float,
        items: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        """Return the jobs of expired leases to the queue; ``items``: the node items read
        this tick (None: the rotation only). Returns how many jobs."""
        if items is not None:
            busy = sorted(s["id"] for s in listing if may_hold_claims(s))
            for node_id in self.see_nodes(items, busy, now):
                log.warning("node %s stopped heartbeating: its streams will be reaped", node_id)

        def one(sid: str) -> int:
            try:
                return queue.reap(sid)
            except Exception:
                log.exception("reaping stream %s failed", sid)
                return 0

        return sum(budget.fan_out(one, self.choose(listing, now)))


def _held(item: Mapping[str, Any]) -> bool:
    """Whether a node's last item says it may have held claims."""
    busy = int(item.get("claims", 0)) or int(item.get("workers_busy", 0))
    return bool(busy) and item.get("state") != DRAINED
