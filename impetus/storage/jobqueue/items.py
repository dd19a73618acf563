"""The queue and jobs tables' items, shared by the queue's parts (enqueue, claim,
settle, collect, recount): one object that owns the table names, the client, the
stream-properties cache and the counter sink, and reads and writes chunks and records.

The items themselves (job records, chunks) and why chunks: see
:mod:`impetus.storage.jobqueue.queue`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from impetus.core import properties
from impetus.storage import dynamo
from impetus.storage.jobqueue import layout
from impetus.storage.jobqueue.layout import DELAY_HINT_STEP_MS, PROPS_TTL, shard_of, suffix_of
from impetus.storage.streams import CLAIM_INDEX_FLAG, DELAYED_UNTIL, Streams


class QueueItems:
    def __init__(self, client: Any, tables: dict[str, str], streams: Streams) -> None:
        self.client = client
        self.jobs_table = tables["jobs"]
        self.queue_table = tables["queue"]
        self.streams = streams
        # Where backlog counter deltas go: the streams' counter items at once, or a node agent's
        # impetus.storage.counters.BufferedCounters (see Queue.buffer_counters).
        self.counters: Any = streams
        self._props_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        # Seconds a cached stream item is trusted. A node agent raises it: its listing
        # re-reads the item whenever the stream's active mark changes and hands it over
        # (:meth:`remember`), so this is only the bound for a change that came unmarked.
        self.props_ttl = PROPS_TTL

    def remember(self, stream_id: str, item: dict[str, Any], at: float | None = None) -> None:
        """A copy of the stream item known good at monotonic time ``at`` (now)."""
        self._props_cache[stream_id] = (time.monotonic() if at is None else at, item)

    def forget(self, stream_id: str) -> None:
        self._props_cache.pop(stream_id, None)

    def properties(self, stream_id: str) -> dict[str, Any]:
        """The stream's properties, trusted for PROPS_TTL seconds."""
        return self._stream_item(stream_id).get("properties", {})

    def stream_key(self, stream_id: str) -> str | None:
        """The stream's key (impetus.core.streamauth), its item trusted for PROPS_TTL
        seconds; None for a stream from before owners."""
        return self.streams.stream_key(self._stream_item(stream_id))

    def _stream_item(self, stream_id: str) -> dict[str, Any]:
        cached = self._props_cache.get(stream_id)
        if cached and time.monotonic() - cached[0] < self.props_ttl:
            return cached[1]
        item = self.streams.get_item(stream_id)
        self._props_cache[stream_id] = (time.monotonic(), item)
        return item

    def delayed_until(self, stream_id: str) -> int | None:
        """The stream's DELAYED_UNTIL (cached copy; None: a stream from before it)."""
        value = self._stream_item(stream_id).get(DELAYED_UNTIL)
        return None if value is None else int(value)

    def claim_index(self, stream_id: str) -> bool:
        """Whether the stream's claims Query the claim index (cached copy of its item;
        set at creation, never changed: see impetus.storage.streamitem)."""
        return bool(self._stream_item(stream_id).get(CLAIM_INDEX_FLAG))

    def note_delayed(self, stream_id: str, due_ms: int) -> None:
        """Before a delayed chunk due at ``due_ms`` is written: raise the stream's
        DELAYED_UNTIL past it, if the cached copy is not already (it only grows, so a
        cached value that covers ``due_ms`` is right). Raised a step beyond, so that one
        write covers the delays of the next DELAY_HINT_STEP_MS; then the stream is
        marked again, so node agents re-read its item at their next listing and their
        claimers look at the delayed partition (impetus.storage.jobqueue.claim)."""
        item = self._stream_item(stream_id)
        known = item.get(DELAYED_UNTIL)
        if known is None or int(known) >= due_ms:
            return  # a stream from before the hint: its claimers always look
        step = DELAY_HINT_STEP_MS
        bound = (due_ms // step + 2) * step
        try:
            self.client.update_item(
                TableName=self.streams.table,
                Key=dynamo.serialize({"stream": stream_id}),
                UpdateExpression="SET #d = :bound",
                ConditionExpression="attribute_exists(#stream) AND #d < :due",
                ExpressionAttributeNames={"#d": DELAYED_UNTIL, "#stream": "stream"},
                ExpressionAttributeValues=dynamo.values(bound=bound, due=due_ms),
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
            item[DELAYED_UNTIL] = due_ms  # someone raised it past (or the stream is gone)
            return
        item[DELAYED_UNTIL] = bound
        self.streams.active.mark(stream_id)

    def ready_location(self, stream_id: str, pk: str, sk: str) -> tuple[str, str]:
        """Where a delayed chunk lives once it fell due (ready chunks: where they are)."""
        if pk != layout.delayed_pk(stream_id):
            return pk, sk
        shards = properties.get(self.properties(stream_id), "shards")
        return layout.ready_pk(
            stream_id, shard_of(suffix_of(sk), shards)
        ), layout.delayed_to_ready_sk(sk)

    def records(
        self,
        stream_id: str,
        ids: list[str],
        attributes: tuple[str, ...] = (),
        consistent: bool = True,
    ) -> dict[str, dict[str, Any]]:
        found = dynamo.batch_get(
            self.client,
            self.jobs_table,
            [{"stream": stream_id, "job": i} for i in ids],
            consistent=consistent,
            attributes=attributes,
        )
        return {r["job"]: r for r in found}

    def written_records(
        self, stream_id: str, ids: list[str], attributes: tuple[str, ...] = ()
    ) -> dict[str, dict[str, Any]]:
        """Records for their fields written at enqueue (name, code, args, signature...):
        read eventually consistent, half the read units; only the ones not there yet (a
        record written a moment ago) are read again, consistently.

        Those fields never change after enqueue, so a stale copy has them right. The
        fields that do change (status at acknowledgement, the chunk pointer after a move)
        are read consistently where they decide something (enqueue's duplicate check,
        ack); collection only compares the pointer, and a stale one costs a re-point.
        """
        found = self.records(stream_id, ids, attributes, consistent=False)
        missing = [i for i in ids if i not in found]
        if missing:
            found.update(self.records(stream_id, missing, attributes))
        return found

    def point(self, stream_id: str, job_id: str, pk: str, sk: str, index: int) -> None:
        self.client.update_item(
            TableName=self.jobs_table,
            Key=dynamo.serialize({"stream": stream_id, "job": job_id}),
            UpdateExpression="SET #chunk_pk = :pk, #chunk_sk = :sk, #index = :i",
            ConditionExpression="attribute_exists(#job)",
            ExpressionAttributeNames=dynamo.names("#chunk_pk #chunk_sk #index #job"),
            ExpressionAttributeValues=dynamo.values(pk=pk, sk=sk, i=index),
        )

    def get_chunk(self, pk: str, sk: str) -> dict[str, Any] | None:
        answer = self.client.get_item(
            TableName=self.queue_table,
            Key=dynamo.serialize({"pk": pk, "sk": sk}),
            ConsistentRead=True,
        )
        return dynamo.deserialize(answer["Item"]) if "Item" in answer else None

    def delete_if_spent(self, pk: str, sk: str, chunk: dict[str, Any] | None = None) -> None:
        """Delete a chunk whose every job was acknowledged or moved elsewhere.

        Conditional on ``left`` so that a concurrent move or ack cannot be lost.
        """
        chunk = chunk or self.get_chunk(pk, sk)
        if not chunk or chunk["left"] > 0:
            return
        try:
            self.client.delete_item(
                TableName=self.queue_table,
                Key=dynamo.serialize({"pk": pk, "sk": sk}),
                ConditionExpression="#left <= :zero",
                ExpressionAttributeNames=dynamo.names("#left"),
                ExpressionAttributeValues=dynamo.values(zero=0),
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise

    def fix_claim_index(self, pk: str, chunk: dict[str, Any]) -> bool:
        """Give a ready chunk the claim index keys it should have (a job of it waits) or
        take away the ones it should not (none does); the chunk as read, with ``sk``,
        ``n``, ``cursor`` and its index keys. Conditional on what decided it, so a claim
        in between wins. True when something was written.

        Only chunks written by code older than the index need this, on a stream created
        with it (node agents of the older code still running during a rollout: their
        re-queued chunks lack the keys, their last claims leave them); DFS's recount
        calls it (impetus.storage.jobqueue.recount)."""
        waiting = int(chunk["cursor"]) < int(chunk["n"])
        if waiting == (layout.CLAIM_KEYS[0] in chunk):
            return False
        if waiting:
            update = "SET #cpk = :pk, #csk = :sk"
            condition = "#cursor < #n AND attribute_not_exists(#cpk)"
            values = dynamo.values(pk=pk, sk=chunk["sk"])
        else:
            update, condition, values = layout.LEAVE_CLAIM_INDEX, "#cursor >= #n", None
        try:
            self.client.update_item(
                TableName=self.queue_table,
                Key=dynamo.serialize({"pk": pk, "sk": chunk["sk"]}),
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(#pk) AND {condition}",
                ExpressionAttributeNames=dynamo.names(update, condition, "#pk"),
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
            return False
        return True

    @staticmethod
    def partitions(stream_id: str, shards: int) -> list[str]:
        """The stream's queue partitions: its ready shards, then its delayed partition."""
        return [layout.ready_pk(stream_id, s) for s in range(shards)] + [
            layout.delayed_pk(stream_id)
        ]

    def chunks_in(self, pk: str, fields: str, consistent: bool = False) -> Iterator[dict[str, Any]]:
        """Every chunk of one partition, with the given ``#field`` projection."""
        return dynamo.query(
            self.client,
            TableName=self.queue_table,
            KeyConditionExpression="#pk = :pk",
            ProjectionExpression=fields,
            ExpressionAttributeNames=dynamo.names("#pk", fields),
            ExpressionAttributeValues=dynamo.values(pk=pk),
            ConsistentRead=consistent,
        )

    # --- delete -----------------------------------------------------------------------------
    def purge(self, stream_id: str, shards: int) -> None:
        """Delete every chunk and job record of a stream (the stream is already hidden)."""
        for pk in self.partitions(stream_id, shards):
            chunk_keys = self.chunks_in(pk, "#pk, #sk")
            dynamo.batch_write(self.client, self.queue_table, deletes=list(chunk_keys))
        job_keys = dynamo.query(
            self.client,
            TableName=self.jobs_table,
            KeyConditionExpression="#stream = :s",
            ProjectionExpression="#stream, #job",
            ExpressionAttributeNames=dynamo.names("#stream #job"),
            ExpressionAttributeValues=dynamo.values(s=stream_id),
        )
        dynamo.batch_write(self.client, self.jobs_table, deletes=list(job_keys))
        self._props_cache.pop(stream_id, None)
