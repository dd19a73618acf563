"""Streams: properties, status, owner and backlog counters, an item per stream (and
its counter items).

The owner: a random nonce and the signing key version the stream key was drawn under
(see impetus.core.streamauth). Nothing secret is stored; whoever holds the signing key
recomputes the stream key from them (:meth:`Streams.stream_key`).

Counters are kept with atomic ADDs by whoever changes the backlog (enqueue, claim,
complete, ack), so DFS and ``impetus watch`` read a backlog without scanning the queue;
they live on counter items beside the stream item (:mod:`impetus.storage.streamcounters`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from impetus.core import properties, streamauth
from impetus.core.exceptions import (
    ConfigError,
    Conflict,
    InvalidRequest,
    StreamNotFound,
)
from impetus.core.keys import STREAM_ID, check
from impetus.storage import dynamo, streamcounters
from impetus.storage.activestreams import ActiveStreams, Snapshot, is_record_key
from impetus.storage.collectorlease import CollectorLease
from impetus.storage.itemcopies import ItemCopies
from impetus.storage.shardrule import shards_for
from impetus.storage.streamcounters import COUNTERS, CounterShards, Reading
from impetus.storage.streamitem import (
    ACTIVE,
    BUSY_COUNTERS,
    CLAIM_INDEX_FLAG,
    DELAYED_UNTIL,
    DELETING,
    MARKED,
    MAX_PROPERTIES_BYTES,
    describe_item,
    describe_items,
    is_idle,
    json_properties,
    listing,
    may_hold_claims,
)

# The stream item's vocabulary, re-exported: callers import it with Streams from here.
__all__ = [
    "ACTIVE",
    "BUSY_COUNTERS",
    "CLAIM_INDEX_FLAG",
    "DELAYED_UNTIL",
    "DELETING",
    "MARKED",
    "MAX_PROPERTIES_BYTES",
    "Streams",
    "describe_items",
    "is_idle",
    "may_hold_claims",
]


def _no_keys() -> streamauth.KeyDeriver:
    raise ConfigError("no signing key: this Streams cannot derive stream keys")


class Streams:
    """The streams table. ``keys`` gives the signing key (read when a stream key is first
    derived: creating a stream, checking a request, MACing an outcome)."""

    def __init__(
        self,
        client: Any,
        table: str,
        keys: Callable[[], streamauth.KeyDeriver] = _no_keys,
    ) -> None:
        self.client = client
        self.table = table
        self._keys = keys
        # Which streams have work: its items live in this table (activestreams.py).
        self.active = ActiveStreams(client, table)
        self.counters = CounterShards(client, table, self.get_item)
        # The lease lives on the stream item and changes by the minute: read it fresh.
        self.collector = CollectorLease(client, table, ACTIVE, self.fresh_item)
        # An API container's copies of stream items (impetus.storage.itemcopies).
        self.copies = ItemCopies(self._read_item)

    def create(
        self, stream_id: str | None, props: dict[str, Any] | None
    ) -> tuple[dict[str, Any], bool, str | None]:
        """(description, created?, the new stream's key: None when the id existed)."""
        stream_id = check(STREAM_ID, stream_id or uuid.uuid4().hex, "stream id")
        props = properties.validate(props or {})
        if "shards" not in props and props.get("rate") is not None:
            # a declared run rate bounds the claims and completions: shards for it at once
            props["shards"] = shards_for(props["rate"], properties.MAX_SHARDS)
        nonce = streamauth.new_nonce()
        version, key = streamauth.derive_stream_key(self._keys(), stream_id, nonce, None)
        shards = properties.get(props, "shards")
        item = {
            "stream": stream_id,
            "properties": json_properties(props),
            "created": time.time(),
            "status": ACTIVE,
            "owner": {"nonce": nonce, "version": version},
            DELAYED_UNTIL: 0,
            CLAIM_INDEX_FLAG: True,
            streamcounters.COUNTER_SHARDS: streamcounters.counters_for(shards),
            **dict.fromkeys(COUNTERS, 0),
        }
        # The counter items come with the stream item, in one transaction: a counter
        # write finds them (or no stream). Leftovers of a deleted stream are zeroed.
        counter_items = streamcounters.counter_items(
            stream_id, 0, streamcounters.counters_for(shards)
        )
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": dynamo.serialize(item),
                            "ConditionExpression": "attribute_not_exists(#stream)",
                            "ExpressionAttributeNames": {"#stream": "stream"},
                        }
                    },
                    *(
                        {"Put": {"TableName": self.table, "Item": dynamo.serialize(c)}}
                        for c in counter_items
                    ),
                ]
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
            return self.get(stream_id), False, None
        if properties.get(props, "min_nodes"):
            self.active.mark(stream_id)  # it wants nodes before any job: DFS lists it now
        return describe_item(dynamo.deserialize(dynamo.serialize(item))), True, key

    def stream_key(self, item: dict[str, Any]) -> str | None:
        """The key of a stream item (``get_item``); None for a stream created before
        streams had owners. KeyUnavailable when its key version cannot be read now."""
        owner = item.get("owner")
        if not isinstance(owner, dict) or not owner.get("nonce"):
            return None
        _, key = streamauth.derive_stream_key(
            self._keys(), item["stream"], owner["nonce"], owner.get("version") or ""
        )
        return key

    def get_item(self, stream_id: str) -> dict[str, Any]:
        check(STREAM_ID, stream_id, "stream id")
        item = self.copies.get(stream_id)
        return self.checked(stream_id, item)

    def fresh_item(self, stream_id: str) -> dict[str, Any]:
        """:meth:`get_item`, read consistently even in a scope of copies."""
        check(STREAM_ID, stream_id, "stream id")
        return self.checked(stream_id, self._read_item(stream_id, consistent=True))

    def _read_item(self, stream_id: str, consistent: bool) -> dict[str, Any] | None:
        """The raw item (None: none). Eventually consistent: a miss is read again
        consistently (a stream created a moment ago)."""
        key = dynamo.serialize({"stream": stream_id})
        answer = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=consistent)
        if "Item" not in answer and not consistent:
            answer = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        return dynamo.deserialize(answer["Item"]) if "Item" in answer else None

    def checked(self, stream_id: str, item: dict[str, Any] | None) -> dict[str, Any]:
        """The stream item as read, or StreamNotFound (none, or being deleted)."""
        if not item:
            raise StreamNotFound(f"no stream {stream_id!r}")
        if item.get("status") == DELETING:
            raise StreamNotFound(f"stream {stream_id!r} is being deleted")
        self.counters.note(item)
        return item

    def get(self, stream_id: str) -> dict[str, Any]:
        return self.describe(self.get_item(stream_id))

    def describe(self, item: dict[str, Any]) -> dict[str, Any]:
        """A stream item's description, its counter items read and summed in."""
        return describe_item(*self._counted(item))

    def _counted(self, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
        return item, self.counters.read(item).totals()

    def list(self, consistent: bool = True) -> list[dict[str, Any]]:
        """Every stream, its counter items summed in: a Scan of the table (the API's
        listing, DFS's sweep; node agents and DFS's ticks read :meth:`list_marked`)."""
        items = dynamo.scan(self.client, TableName=self.table, ConsistentRead=consistent)
        return listing(streamcounters.fold(items))

    def describe_many(
        self, stream_ids: list[str], counted: bool = True, consistent: bool = True
    ) -> list[dict[str, Any]]:
        """The given streams that exist (BatchGetItem, 100 keys a request). ``counted``:
        their counter items too (a second BatchGetItem, K keys a stream), else the counts
        are the stream items' own (old streams, corrections)."""
        keys = [{"stream": sid} for sid in stream_ids]
        found = dynamo.batch_get(self.client, self.table, keys, consistent)
        items = [i for i in found if "stream" in i]
        for item in items:
            if not is_record_key(item["stream"]):
                self.counters.note(item)
        if counted:
            counter_keys = [
                {"stream": streamcounters.shard_key(i["stream"], k)}
                for i in items
                for k in range(streamcounters.counter_shards(i))
            ]
            if counter_keys:
                items += dynamo.batch_get(self.client, self.table, counter_keys)
            items = streamcounters.fold(items)
        return listing(items)

    def list_marked(self, snapshot: Snapshot, counted: bool = True) -> list[dict[str, Any]]:
        """The streams an active-streams snapshot marks; every stream, counted, while the
        record overflows (a mark could not be written). Uncounted (``counted=False``,
        node agents): the stream items only, each flagged :data:`MARKED`, so a reader
        takes the mark for "may have work" and lets claims find out, at one item read a
        stream whatever its K."""
        if snapshot.overflow:
            return self.list()
        if counted:
            return self.describe_many(sorted(snapshot.marks))
        # Eventually consistent (half the read units: every node reads these items each
        # poll): a stream created a moment ago may be missed once, and found next poll.
        listing = self.describe_many(sorted(snapshot.marks), counted=False, consistent=False)
        return [{**s, MARKED: True} for s in listing]

    def _grow_if_asked(self, stream_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a change of ``shards`` (growth only) and return the other changes.

        Shards only grow: claims, collection, reaping, recounts and deletion visit every
        shard below the current count, so a job on any shard that ever existed is still
        visited, while fewer shards would strand the jobs on the ones dropped."""
        if "shards" not in changes:
            return changes
        wanted = changes["shards"] if changes["shards"] is not None else 1
        current = properties.get(self.get_item(stream_id).get("properties", {}), "shards")
        if wanted < current:
            raise Conflict(
                f"stream {stream_id!r} has {current} shards and shards only grow (its jobs "
                "live in that many partitions); create a new stream for fewer"
            )
        if wanted > current:
            self.grow_shards(stream_id, wanted)
        return {k: v for k, v in changes.items() if k != "shards"}

    def grow_shards(self, stream_id: str, wanted: int) -> bool:
        """Give a stream ``wanted`` queue shards and as many counter items (at most
        streamcounters.MAX_COUNTER_SHARDS), in one
        transaction conditioned on the shards and K read (a concurrent growth wins, this
        one reports False). With ``wanted`` its current count, it gives an old stream
        (counters on its item) its counter items."""
        item = self.get_item(stream_id)
        current = properties.get(item.get("properties", {}), "shards")
        have_k = streamcounters.counter_shards(item)
        if wanted < current or (
            wanted == current and have_k >= streamcounters.counters_for(wanted)
        ):
            return False
        if wanted > properties.MAX_SHARDS:
            raise InvalidRequest(f"shards: at most {properties.MAX_SHARDS}")
        try:
            self.client.transact_write_items(
                TransactItems=streamcounters.growth(self.table, item, wanted, ACTIVE)
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        self.active.mark(stream_id)  # nodes re-read the item: claims reach the new shards now
        return True

    def update_properties(self, stream_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        check(STREAM_ID, stream_id, "stream id")
        self.copies.changed(stream_id)  # growth's condition and the answer need it as it is
        if not isinstance(changes, dict) or not changes:
            raise InvalidRequest("properties must be a non-empty JSON object")
        changes = self._grow_if_asked(stream_id, properties.validate(changes))
        if not changes:  # only shards: nodes learn of new ones at their next listing
            self.active.mark(stream_id)
            return self.get(stream_id)
        names = {"#p": "properties", "#s": "status", "#stream": "stream"}
        sets, removes, vals = [], [], {}
        for i, (name, value) in enumerate(changes.items()):
            names[f"#k{i}"] = name
            if value is None:
                removes.append(f"#p.#k{i}")
            else:
                sets.append(f"#p.#k{i} = :v{i}")
                vals[f":v{i}"] = dynamo.serialize_value(json_properties({"v": value})["v"])
        expression = (f"SET {', '.join(sets)} " if sets else "") + (
            f"REMOVE {', '.join(removes)}" if removes else ""
        )
        vals.update(dynamo.values(active=ACTIVE))
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize({"stream": stream_id}),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(#stream) AND #s = :active",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=vals,
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                raise StreamNotFound(f"no stream {stream_id!r}") from exc
            raise
        # Marked again after every change: node agents re-read the item at their next
        # listing (impetus.storage.markeditems), and a stream given min_nodes is listed
        # by DFS's next tick.
        self.active.mark(stream_id)
        return self.get(stream_id)

    def mark_deleting(self, stream_id: str) -> dict[str, Any]:
        """First step of a delete: nodes and clients stop seeing the stream at once."""
        self.copies.changed(stream_id)
        self.get_item(stream_id)  # StreamNotFound
        answer = self.client.update_item(
            TableName=self.table,
            Key=dynamo.serialize({"stream": stream_id}),
            UpdateExpression="SET #s = :deleting",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=dynamo.values(deleting=DELETING),
            ReturnValues="ALL_NEW",
        )
        # As marked: no growth comes after (it needs an active stream), so its shards
        # are every shard the stream ever had.
        return dynamo.deserialize(answer["Attributes"])

    def remove(self, stream_id: str) -> None:
        """Delete the counter items, then the stream item (a remove that stops between
        leaves a hidden stream; the next delete or a re-creation takes care of them)."""
        key = dynamo.serialize({"stream": stream_id})
        answer = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item = dynamo.deserialize(answer.get("Item") or {"stream": stream_id})
        self.counters.delete_items(stream_id, streamcounters.counter_shards(item))
        self.client.delete_item(TableName=self.table, Key=key)

    # --- counters (impetus.storage.streamcounters) ------------------------------------------
    def count(self, stream_id: str, **deltas: int) -> None:
        """Atomically add to backlog counters (only if the stream still exists)."""
        deltas = {k: v for k, v in deltas.items() if v}
        if deltas:
            self.counters.count(stream_id, deltas)

    def read_counts(self, stream_id: str) -> Reading:
        """The counters item by item, read consistently (for :meth:`correct`)."""
        return self.counters.read(self.get_item(stream_id))

    def raw_counts(self, stream_id: str, names: tuple[str, ...]) -> dict[str, int]:
        """Counters as stored, summed (unclamped: drift can take one below zero)."""
        return self.read_counts(stream_id).totals(names)

    def correct(self, reading: Reading, truth: dict[str, int]) -> bool:
        """Set the counters in ``truth`` from what ``reading`` saw to ``truth``, only if
        no counter moved since (see :meth:`CounterShards.correct`). Returns whether it
        applied."""
        return self.counters.correct(reading, truth)
