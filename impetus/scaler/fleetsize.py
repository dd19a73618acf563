"""What DFS tells idle node agents through the active-streams head (impetus.storage
.activestreams): how many nodes there are, and that some of them were asked to drain.

The fleet size lets each idle node stretch its poll so the whole idle fleet reads the
head about ``IDLE_READS_PER_SECOND`` times a second, whatever its size. It is written to
every replica's head when it changed by more than :data:`CHANGE` (or at least every
:data:`REPUBLISH` seconds), not every tick: eight small writes each time.

The drain signal: an idle node beats about once a minute, so it would find DFS's drain
mark on its item up to a minute late. DFS bumps ``drains`` in the heads of the replicas
the drained nodes read; those nodes read their own item at their next head read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from impetus.storage.activestreams import ActiveStreams

log = logging.getLogger(__name__)

CHANGE = 0.1  # a relative change of the fleet worth telling the nodes
REPUBLISH = 600.0  # seconds: republish anyway (a head recreated, a missed write)


def live_count(items: Iterable[dict[str, Any]], now: float) -> int:
    """Node items whose heartbeat has not expired (the node's own due time + grace)."""
    return sum(1 for item in items if float(item.get("expires", 0)) >= now)


@dataclass
class FleetNotice:
    """Per process (a warm Lambda container, the local ticker): the last size it wrote.
    A cold start publishes again, which costs eight small writes."""

    published: int | None = None
    at: float = float("-inf")

    def due(self, fleet: int, now: float) -> bool:
        if self.published is None or not 0 <= now - self.at < REPUBLISH:
            return True
        return abs(fleet - self.published) > CHANGE * max(self.published, 10)

    def publish(self, active: ActiveStreams, fleet: int, now: float) -> bool:
        """Write the fleet size when due; True when written."""
        if not self.due(fleet, now):
            return False
        active.publish_fleet(fleet)
        self.published, self.at = fleet, now
        return True


def signal_drains(active: ActiveStreams, node_ids: Iterable[str]) -> None:
    """After drain marks were written: wake the idle nodes' check (failures only delay a
    drain to the node's next beat)."""
    ids = list(node_ids)
    if not ids:
        return
    try:
        active.signal_drains(ids)
    except Exception:
        log.exception("signalling drain requests failed (nodes see them at their next beat)")
