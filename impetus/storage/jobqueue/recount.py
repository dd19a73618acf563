"""Recount: the busy counters of a stream, read from its queue partitions (the truth).

Stream counters are written apart from the queue writes they count (a node agent
buffers its deltas; a process can die between the write and the count), so DFS checks
them against this (:mod:`impetus.scaler.audit`). Consistent Queries over the stream's ready
shards and its delayed partition: billed by the bytes of the chunks read, about one read
unit per 4 KB of queue items (a 20-job chunk is ~1 KB).

The same pass mends the claim index on streams created with it: a ready chunk with a
waiting job but without the index keys (re-queued by a node agent of the code before
the index, during a rollout) gets them, so no job waits unseen by the claims that read
the index; a fully claimed one with them (claimed by such an agent) loses them.
"""

from __future__ import annotations

from typing import Any

from impetus.core import properties
from impetus.storage import dynamo
from impetus.storage.jobqueue import layout
from impetus.storage.jobqueue.items import QueueItems

RECOUNTED = ("waiting", "running", "delayed")
# What the recount reads of a chunk: its counts, and whether it is in the claim index
# (a stream with the index gets chunks written by older node agents mended here).
CHUNK_FIELDS = "#sk, #n, #cursor, #claims, #" + layout.CLAIM_KEYS[0]


def chunk_counts(chunk: dict[str, Any], delayed: bool) -> dict[str, int]:
    """What one chunk contributes: unclaimed jobs wait (or are delayed); jobs under a live
    or expired lease run until reported (a claim's ``done``), completed or reaped."""
    unclaimed = max(0, int(chunk.get("n", 0)) - int(chunk.get("cursor", 0)))
    leased = sum(
        max(0, int(c.get("end", 0)) - int(c.get("start", 0)) - len(set(c.get("done", []))))
        for c in (chunk.get("claims") or {}).values()
    )
    return {
        "waiting": 0 if delayed else unclaimed,
        "delayed": unclaimed if delayed else 0,
        "running": leased,
    }


class Recounter:
    """Counts a stream's busy jobs from its queue partitions."""

    def __init__(self, items: QueueItems) -> None:
        self.items = items

    def due_delayed(self, stream_id: str, now: float) -> int:
        """Delayed jobs of a stream that are already due (not yet promoted by a claimer):
        one key-range Query, since delayed chunks sort by due time."""
        due = 0
        for chunk in dynamo.query(
            self.items.client,
            TableName=self.items.queue_table,
            KeyConditionExpression="#pk = :pk AND #sk <= :now",
            ProjectionExpression="#n, #cursor",
            ExpressionAttributeNames=dynamo.names("#pk #sk #n #cursor"),
            ExpressionAttributeValues=dynamo.values(
                pk=layout.delayed_pk(stream_id), now=layout.delayed_sk_upper(int(now * 1000))
            ),
            ConsistentRead=True,
        ):
            due += int(chunk.get("n", 0)) - int(chunk.get("cursor", 0))
        return due

    def recount(self, stream_id: str, shards: int | None = None) -> dict[str, int]:
        """Over ``shards`` ready shards: the audit passes those of the stream item it read
        (and conditions its correction on them); by default those of the item now (read
        afresh: a cached count could miss a shard grown a moment ago)."""
        if shards is None:
            item = self.items.streams.get_item(stream_id)
            shards = properties.get(item.get("properties", {}), "shards")
        totals = dict.fromkeys(RECOUNTED, 0)
        indexed = self.items.claim_index(stream_id)
        for pk in self.items.partitions(stream_id, shards):
            delayed = pk == layout.delayed_pk(stream_id)
            for chunk in self.items.chunks_in(pk, CHUNK_FIELDS, consistent=True):
                for name, value in chunk_counts(chunk, delayed).items():
                    totals[name] += value
                if indexed and not delayed:  # the audit reads them anyway: a repair pass
                    self.items.fix_claim_index(pk, chunk)
        return totals
