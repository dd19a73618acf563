"""Streams: properties, status, owner and backlog counters, one item per stream.

The owner: a random nonce and the signing key version the stream key was drawn under
(see impetus.core.streamauth). Nothing secret is stored; whoever holds the signing key
recomputes the stream key from them (:meth:`Streams.stream_key`).

Counters are kept with atomic ADDs by whoever changes the backlog (enqueue, claim,
complete, ack), so DFS and ``impetus watch`` read a backlog without scanning anything.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from impetus.core import properties, streamauth
from impetus.core.exceptions import (
    CollectorBusy,
    ConfigError,
    Conflict,
    InvalidRequest,
    StreamNotFound,
)
from impetus.core.keys import STREAM_ID, check
from impetus.storage import dynamo
from impetus.storage.activestreams import ActiveStreams, Snapshot, is_record_key

ACTIVE = "active"
DELETING = "deleting"
COUNTERS = ("waiting", "delayed", "running", "finished", "errors", "acked", "forked")
# Counters are updated after the write they count, so a process killed in between leaves
# them off by a few: a stuck claim may count as "waiting" rather than "running". Reapers
# therefore visit every stream any of these says is not idle.
BUSY_COUNTERS = ("waiting", "running", "delayed")


def is_idle(counts: dict[str, Any]) -> bool:
    """No job waiting, delayed or running by these counters (as stored: a counter that
    drifted below zero counts as none)."""
    return not any(int(counts.get(name) or 0) > 0 for name in BUSY_COUNTERS)


def may_hold_claims(stream: dict[str, Any]) -> bool:
    """Whether a stream description (``list_streams``) may hold live or expired leases."""
    counts = stream.get("counts") or {}
    return any(counts.get(name) for name in BUSY_COUNTERS)


MAX_PROPERTIES_BYTES = 64 * 1024


def _describe(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["stream"],
        "properties": item.get("properties", {}),
        "counts": {c: max(0, int(item.get(c, 0))) for c in COUNTERS},
        "created": item.get("created"),
        "status": item.get("status", ACTIVE),
    }


def _listing(items: Any) -> list[dict[str, Any]]:
    """Descriptions of stream items (not the active-streams record's), oldest first."""
    return sorted(
        (
            _describe(i)
            for i in items
            if not is_record_key(i["stream"]) and i.get("status") != DELETING
        ),
        key=lambda s: s["created"] or 0,
    )


def _json_properties(props: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(props, dict):
        raise InvalidRequest("properties must be a JSON object")
    try:
        text = json.dumps(props)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"properties must be JSON: {exc}") from exc
    if len(text) > MAX_PROPERTIES_BYTES:
        raise InvalidRequest("properties are larger than 64 KB")
    # DynamoDB has no floats: round-trip through Decimal keeps the exact JSON value.
    return json.loads(text, parse_float=Decimal)


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

    def create(
        self, stream_id: str | None, props: dict[str, Any] | None
    ) -> tuple[dict[str, Any], bool, str | None]:
        """(description, created?, the new stream's key: None when the id existed)."""
        stream_id = check(STREAM_ID, stream_id or uuid.uuid4().hex, "stream id")
        props = properties.validate(props or {})
        nonce = streamauth.new_nonce()
        version, key = streamauth.derive_stream_key(self._keys(), stream_id, nonce, None)
        item = {
            "stream": stream_id,
            "properties": _json_properties(props),
            "created": time.time(),
            "status": ACTIVE,
            "owner": {"nonce": nonce, "version": version},
            **dict.fromkeys(COUNTERS, 0),
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=dynamo.serialize(item),
                ConditionExpression="attribute_not_exists(#stream)",
                ExpressionAttributeNames={"#stream": "stream"},
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
            return self.get(stream_id), False, None
        return _describe(dynamo.deserialize(dynamo.serialize(item))), True, key

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
        answer = self.client.get_item(
            TableName=self.table, Key=dynamo.serialize({"stream": stream_id}), ConsistentRead=True
        )
        item = answer.get("Item")
        if not item:
            raise StreamNotFound(f"no stream {stream_id!r}")
        item = dynamo.deserialize(item)
        if item.get("status") == DELETING:
            raise StreamNotFound(f"stream {stream_id!r} is being deleted")
        return item

    def get(self, stream_id: str) -> dict[str, Any]:
        return _describe(self.get_item(stream_id))

    def list(self, consistent: bool = True) -> list[dict[str, Any]]:
        """Every stream: a Scan of the table (the API's listing, DFS's sweep; node agents
        and DFS's ticks read :meth:`list_marked` instead)."""
        items = dynamo.scan(self.client, TableName=self.table, ConsistentRead=consistent)
        return _listing(items)

    def describe_many(self, stream_ids: list[str]) -> list[dict[str, Any]]:
        """The given streams that exist, read consistently (BatchGetItem, 100 a request)."""
        keys = [{"stream": sid} for sid in stream_ids]
        return _listing(dynamo.batch_get(self.client, self.table, keys))

    def list_marked(self, snapshot: Snapshot) -> list[dict[str, Any]]:
        """The streams an active-streams snapshot marks; every stream while the record
        overflows (a mark could not be written)."""
        if snapshot.overflow:
            return self.list()
        return self.describe_many(sorted(snapshot.marks))

    def _check_shards_unchanged(self, stream_id: str, changes: dict[str, Any]) -> None:
        """A stream's jobs live in ``shards`` partitions: a new count would strand those in
        the others (claims, collection and deletion read only the partitions it names), so
        the count is fixed at creation. Setting it to the value it has is no change."""
        if "shards" not in changes:
            return
        current = properties.get(self.get_item(stream_id).get("properties", {}), "shards")
        wanted = (
            changes["shards"] if changes["shards"] is not None else properties.get({}, "shards")
        )
        if wanted != current:
            raise Conflict(
                f"stream {stream_id!r} has {current} shards, fixed at creation (its jobs live"
                " in that many partitions); create a new stream for another count"
            )

    def update_properties(self, stream_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        check(STREAM_ID, stream_id, "stream id")
        if not isinstance(changes, dict) or not changes:
            raise InvalidRequest("properties must be a non-empty JSON object")
        changes = properties.validate(changes)
        self._check_shards_unchanged(stream_id, changes)
        names = {"#p": "properties", "#s": "status", "#stream": "stream"}
        sets, removes, vals = [], [], {}
        for i, (name, value) in enumerate(changes.items()):
            names[f"#k{i}"] = name
            if value is None:
                removes.append(f"#p.#k{i}")
            else:
                sets.append(f"#p.#k{i} = :v{i}")
                vals[f":v{i}"] = dynamo.serialize_value(_json_properties({"v": value})["v"])
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
        return self.get(stream_id)

    # --- the collector lease ------------------------------------------------------------
    # One client collects a stream at a time: two programs on one stream id each took the
    # other's results (525 task-file lines for 400 jobs) and both hung. The holder renews
    # its lease; a client that died leaves it to expire, and a restart takes it over.
    def take_collector(
        self, stream_id: str, holder: str, ttl: float, now: float | None = None
    ) -> float:
        """Take or renew the lease for ``holder``; returns its expiry (epoch seconds).
        CollectorBusy while another holder's lease runs."""
        now = time.time() if now is None else now
        expires = now + ttl
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize({"stream": stream_id}),
                UpdateExpression="SET #c = :lease",
                ConditionExpression="attribute_exists(#stream) AND #s = :active AND ("
                "attribute_not_exists(#c) OR #c.#holder = :holder OR #c.#expires < :now)",
                ExpressionAttributeNames={
                    "#c": "collector",
                    "#stream": "stream",
                    "#s": "status",
                    "#holder": "holder",
                    "#expires": "expires",
                },
                ExpressionAttributeValues=dynamo.values(
                    lease={"holder": holder, "expires": Decimal(str(expires))},
                    holder=holder,
                    now=Decimal(str(now)),
                    active=ACTIVE,
                ),
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
            lease = self.get_item(stream_id).get("collector") or {}  # StreamNotFound if gone
            left = max(0.0, float(lease.get("expires", now)) - now)
            raise CollectorBusy(
                f"stream {stream_id!r} is being collected by another client (its lease "
                f"expires in {left:.0f} s unless renewed): one client collects a stream",
                retry_after=left,
            ) from None
        return expires

    def release_collector(self, stream_id: str, holder: str) -> bool:
        """Give the lease up (a clean exit); False when ``holder`` did not hold it."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize({"stream": stream_id}),
                UpdateExpression="REMOVE #c",
                ConditionExpression="#c.#holder = :holder",
                ExpressionAttributeNames={"#c": "collector", "#holder": "holder"},
                ExpressionAttributeValues=dynamo.values(holder=holder),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        return True

    def mark_deleting(self, stream_id: str) -> dict[str, Any]:
        """First step of a delete: nodes and clients stop seeing the stream at once."""
        item = self.get_item(stream_id)
        self.client.update_item(
            TableName=self.table,
            Key=dynamo.serialize({"stream": stream_id}),
            UpdateExpression="SET #s = :deleting",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=dynamo.values(deleting=DELETING),
        )
        return item

    def remove(self, stream_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=dynamo.serialize({"stream": stream_id}))

    def count(self, stream_id: str, **deltas: int) -> None:
        """Atomically add to backlog counters (only if the stream still exists)."""
        deltas = {k: v for k, v in deltas.items() if v}
        if deltas:
            self._add(stream_id, deltas, "attribute_exists(#stream)", {"#stream": "stream"}, {})

    def raw_counts(self, stream_id: str, names: tuple[str, ...]) -> dict[str, int]:
        """Counters as stored (unclamped: drift can take one below zero)."""
        item = self.get_item(stream_id)
        return {n: int(item.get(n, 0)) for n in names}

    def correct(self, stream_id: str, seen: dict[str, int], truth: dict[str, int]) -> bool:
        """Set counters from ``seen`` to ``truth``, only if they still hold ``seen``.

        An ADD of the difference, conditional on every counter being what was read: a
        count that lands in between (a claim, a flush) makes this a no-op, never a lost
        update. Returns whether it applied.
        """
        deltas = {k: truth[k] - seen[k] for k in seen if truth[k] != seen[k]}
        if not deltas:
            return False
        return self._add(
            stream_id,
            deltas,
            " AND ".join(f"#{k} = :s_{k}" for k in seen),
            {f"#{k}": k for k in seen},
            {f"s_{k}": v for k, v in seen.items()},
        )

    def _add(
        self,
        stream_id: str,
        deltas: dict[str, int],
        condition: str,
        names: dict[str, str],
        values: dict[str, int],
    ) -> bool:
        """ADD ``deltas`` to counters if ``condition`` holds; False when it did not."""
        assert set(deltas) <= set(COUNTERS), deltas
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize({"stream": stream_id}),
                UpdateExpression="ADD " + ", ".join(f"#{k} :d_{k}" for k in deltas),
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, **{f"#{k}": k for k in deltas}},
                ExpressionAttributeValues=dynamo.values(
                    **{f"d_{k}": v for k, v in deltas.items()}, **values
                ),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        return True
