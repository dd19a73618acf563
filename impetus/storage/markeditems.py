"""A node agent's copies of the items of the streams marked active.

A node's listing BatchGot every marked stream's item on each poll, and its claimer read
the item again, consistently, every PROPS_TTL (2 s): at 10,000 nodes on one busy stream,
7,300 read units/s on that one item (3,000 is its limit,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html).
A node needs a stream's properties and state, not its counts (the mark says "may have
work"), and those change rarely. So a copy is read again only when

- the stream's mark token changed: writers of the properties and state mark the stream
  again (:meth:`impetus.storage.streams.Streams.update_properties`, ``Queue.delete_stream``,
  ``QueueItems.note_delayed``), which bumps the head every node polls; such a re-read is
  strongly consistent (the mark was written after the item);
- or the copy is older than :data:`ITEM_TTL` (a change that came without a new mark,
  such as DFS growing the shards): eventually consistent, half a unit.

Each listing hands the copies to the claimer's cache (``QueueItems.remember``), which
trusts them as long, and their counter-item count K to the counter writer (it re-read
the item every 30 s otherwise; K only grows, so an older one is safe, and DFS's growth
of K reaches a node's counter writes within ITEM_TTL): a busy node reads a stream's
item about once per ITEM_TTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from impetus.storage import dynamo
from impetus.storage.activestreams import Snapshot
from impetus.storage.jobqueue.items import QueueItems
from impetus.storage.streams import DELETING, MARKED, Streams, describe_items

# Seconds a copy is trusted while its mark is unchanged: 1/60 read a second per node
# and stream; the bound on a change nobody marked.
ITEM_TTL = 60.0


@dataclass
class Copy:
    token: str
    read_at: float  # monotonic
    item: dict[str, Any] | None  # None: no such stream (or being deleted) when read


@dataclass
class MarkedItems:
    streams: Streams
    items: QueueItems
    ttl: float = ITEM_TTL
    copies: dict[str, Copy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.items.props_ttl = self.ttl  # the claimer trusts what the listing refreshes

    def listing(self, snapshot: Snapshot, now: float | None = None) -> list[dict[str, Any]]:
        """Descriptions of the marked streams (their own counts, flagged MARKED)."""
        now = time.monotonic() if now is None else now
        marks = snapshot.marks
        for sid in [s for s in self.copies if s not in marks]:
            del self.copies[sid]  # unmarked: read afresh if marked again
        changed = sorted(
            s for s, t in marks.items() if s not in self.copies or self.copies[s].token != t
        )
        aged = sorted(
            s for s in marks if s not in changed and now - self.copies[s].read_at >= self.ttl
        )
        self._read(changed, marks, now, consistent=True)
        self._read(aged, marks, now, consistent=False)
        for sid, copy in self.copies.items():
            if copy.item is not None:  # still marked with the same token: still good
                self.items.remember(sid, copy.item, now)
                # and its K for counter writes (K only grows: an older one is safe)
                self.streams.counters.note(copy.item)
        live = [c.item for c in self.copies.values() if c.item is not None]
        return [{**s, MARKED: True} for s in describe_items(live)]

    def _read(self, ids: list[str], marks: dict[str, str], now: float, consistent: bool) -> None:
        if not ids:
            return
        found = dynamo.batch_get(
            self.streams.client, self.streams.table, [{"stream": s} for s in ids], consistent
        )
        items = {i["stream"]: i for i in found}
        for sid in ids:
            item = items.get(sid)
            if item is None or item.get("status") == DELETING:
                # Kept as gone until its mark changes (DFS unmarks gone streams); a
                # claim reads the item itself, and finds it gone.
                self.copies[sid] = Copy(marks[sid], now, None)
                self.items.forget(sid)
                continue
            self.copies[sid] = Copy(marks[sid], now, item)
