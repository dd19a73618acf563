"""A stream's backlog counters, sharded over K counter items off the stream's own item.

Every enqueue, claim, completion and acknowledgement adds to a stream's counters. On one
item they would cap the stream: one item takes at most 1,000 write units per second
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html),
and the stream item is also what every claimer reads for the properties. So the counters
live on K items of the streams table, keyed ``<stream>#c<k>`` (a stream id holds no
``#``, so no stream can be named like one), each with every counter; a writer ADDs its
deltas to one of them, picked at random per write, and readers sum them: ``list`` gets
them with its Scan, a description or the audit with one BatchGetItem (K items, 1 read
unit each).

K is the stream's queue ``shards``, at most MAX_COUNTER_SHARDS (see docs/architecture.md,
"Queue shards"): every counter write follows at least one queue write (an enqueue's
chunk, a claim, a completion, an ack, a promotion; node agents even merge many into one
flush), so up to 64 shards a counter item takes no more writes per second than a queue
shard's partition; past 64 the 64 items share ~0.1 counter writes per job (measured),
under a sixth of each item's limit at 100,000 jobs/s. The stream item records K
(``counter_shards``),
set with the items in one transaction at creation and at growth; K only grows.

The stream item's own counters still count: streams from before the shards (no
``counter_shards``) keep all their counts there and keep working as they did, until
DFS's audit migrates them (:meth:`impetus.storage.streams.Streams.grow_shards` with
their shard count gives them their counter items); and the audit writes its
corrections there, conditioned on every counter item it read (:meth:`CounterShards.correct`).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from impetus.core.exceptions import StreamNotFound
from impetus.storage import dynamo

COUNTERS = ("waiting", "delayed", "running", "finished", "errors", "acked", "forked")
COUNTER_OF = "counter_of"  # on a counter item: the stream it counts for
COUNTER_SHARDS = "counter_shards"  # on the stream item: K (absent: counters on the item)
KNOWN_FOR = 30.0  # seconds a writer trusts its K: K only grows, so an old one is safe
# TransactWriteItems takes at most 100 actions
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html):
# a correction checks K items and updates the stream item, so K stays below 100. 64 carry
# a stream at 100,000 jobs/s with each counter item under a third of its 1,000 writes/s
# (docs/architecture.md, "Queue shards": ~0.2 counter writes per job at most).
MAX_COUNTER_SHARDS = 64


def shard_key(stream_id: str, k: int) -> str:
    return f"{stream_id}#c{k}"


def counter_items(stream_id: str, first: int, end: int) -> list[dict[str, Any]]:
    """Zeroed counter items ``first`` .. ``end - 1`` of a stream."""
    return [
        {"stream": shard_key(stream_id, k), COUNTER_OF: stream_id, **dict.fromkeys(COUNTERS, 0)}
        for k in range(first, end)
    ]


def counters_for(shards: int) -> int:
    """K for a stream of ``shards`` queue shards: one counter item per shard, at most
    MAX_COUNTER_SHARDS (a counter item takes fewer writes per job than a shard)."""
    return min(shards, MAX_COUNTER_SHARDS)


def counter_shards(item: dict[str, Any]) -> int:
    """K of a stream item (0: a stream from before the counter items)."""
    return int(item.get(COUNTER_SHARDS) or 0)


def fold(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stream items of a Scan, each with its counter items' counts added to its own;
    counter items of a stream not among them (being removed) are dropped."""
    sums: dict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    streams = []
    for item in items:
        if COUNTER_OF in item:
            for name in COUNTERS:
                sums[item[COUNTER_OF]][name] += int(item.get(name, 0))
        else:
            streams.append(item)
    return [
        {**s, **{n: int(s.get(n, 0)) + sums[s["stream"]][n] for n in COUNTERS}}
        if s["stream"] in sums
        else s
        for s in streams
    ]


@dataclass
class Reading:
    """A stream's counters as stored, item by item: what a correction is conditioned on."""

    item: dict[str, Any]  # the stream item (its own counters: old streams, corrections)
    shards: dict[int, dict[str, int]]  # counter item k -> its counters

    @property
    def stream_id(self) -> str:
        return str(self.item["stream"])

    def totals(self, names: tuple[str, ...] = COUNTERS) -> dict[str, int]:
        """Summed counters, unclamped (drift can take one below zero)."""
        parts = [self.item, *self.shards.values()]
        return {n: sum(int(p.get(n, 0)) for p in parts) for n in names}


class CounterShards:
    """Writes and reads the counter items of the streams table (for
    :class:`impetus.storage.streams.Streams`, which owns the table and composes this).
    ``read_item`` reads a stream item (and tells :meth:`note` its K)."""

    def __init__(self, client: Any, table: str, read_item: Callable[[str], Any]) -> None:
        self.client = client
        self.table = table
        self._read_item = read_item
        self._known: dict[str, tuple[float, int]] = {}  # stream -> (when seen, K)

    def note(self, item: dict[str, Any]) -> None:
        """Remember a stream item's K (every read of one passes by here)."""
        self._known[item["stream"]] = (time.monotonic(), counter_shards(item))

    def _shards(self, stream_id: str) -> int | None:
        known = self._known.get(stream_id)
        if known and time.monotonic() - known[0] < KNOWN_FOR:
            return known[1]
        try:
            self._read_item(stream_id)
        except StreamNotFound:
            return None
        return self._known[stream_id][1]

    def count(self, stream_id: str, deltas: dict[str, int]) -> None:
        """ADD to one counter item, picked at random (only if the stream still exists)."""
        shards = self._shards(stream_id)
        if shards is None:
            return  # no stream (or being deleted): nothing to count, as before
        key = shard_key(stream_id, random.randrange(shards)) if shards else stream_id
        self._add(key, deltas)

    def _add(self, key: str, deltas: dict[str, int]) -> None:
        assert set(deltas) <= set(COUNTERS), deltas
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize({"stream": key}),
                UpdateExpression="ADD " + ", ".join(f"#{k} :d_{k}" for k in deltas),
                ConditionExpression="attribute_exists(#stream)",
                ExpressionAttributeNames={"#stream": "stream", **{f"#{k}": k for k in deltas}},
                ExpressionAttributeValues=dynamo.values(**{f"d_{k}": v for k, v in deltas.items()}),
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise

    def read(self, item: dict[str, Any]) -> Reading:
        """The counters of a stream item (read consistently) and of its counter items."""
        keys = [{"stream": shard_key(item["stream"], k)} for k in range(counter_shards(item))]
        found = dynamo.batch_get(self.client, self.table, keys) if keys else []
        by_key = {f["stream"]: f for f in found}
        shards = {
            k: {n: int(by_key.get(key["stream"], {}).get(n, 0)) for n in COUNTERS}
            for k, key in enumerate(keys)
        }
        return Reading(item, shards)

    def correct(self, reading: Reading, truth: dict[str, int]) -> bool:
        """Add ``truth - seen`` to the stream item, only if no counter item moved since
        ``reading`` (a transaction: one ConditionCheck per counter item, on the counters
        in ``truth``) and the stream item still has the counters, K and queue shards it
        had (the recount read those shards; writers write only below that K). A delta
        that lands in between cancels it: never counted twice. Returns whether it
        applied."""
        seen = reading.totals(tuple(truth))
        deltas = {k: truth[k] - seen[k] for k in truth if truth[k] != seen[k]}
        if not deltas:
            return False
        checks = [
            self._unchanged(shard_key(reading.stream_id, k), values, tuple(truth))
            for k, values in reading.shards.items()
        ]
        try:
            self.client.transact_write_items(
                TransactItems=[
                    *({"ConditionCheck": c} for c in checks),
                    {"Update": self._correction(reading, deltas, tuple(truth))},
                ]
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        return True

    def _unchanged(self, key: str, values: dict[str, int], names: tuple[str, ...]) -> dict:
        return {
            "TableName": self.table,
            "Key": dynamo.serialize({"stream": key}),
            "ConditionExpression": " AND ".join(f"#{n} = :s_{n}" for n in names),
            "ExpressionAttributeNames": {f"#{n}": n for n in names},
            "ExpressionAttributeValues": dynamo.values(**{f"s_{n}": values[n] for n in names}),
        }

    def _correction(self, reading: Reading, deltas: dict[str, int], names: tuple[str, ...]) -> dict:
        item = reading.item
        shards = shards_condition(item)
        k_now = counter_shards(item)
        k_condition = "#cs = :k" if COUNTER_SHARDS in item else "attribute_not_exists(#cs)"
        own = " AND ".join(
            f"#{n} = :s_{n}" if n in item else f"attribute_not_exists(#{n})" for n in names
        )
        used = {f"s_{n}": int(item[n]) for n in names if n in item}
        return {
            "TableName": self.table,
            "Key": dynamo.serialize({"stream": reading.stream_id}),
            "UpdateExpression": "ADD " + ", ".join(f"#{k} :d_{k}" for k in deltas),
            "ConditionExpression": f"{own} AND {k_condition} AND {shards}",
            "ExpressionAttributeNames": {
                "#cs": COUNTER_SHARDS,
                "#p": "properties",
                "#shards": "shards",
                **{f"#{n}": n for n in (*names, *deltas)},
            },
            "ExpressionAttributeValues": dynamo.values(
                **{f"d_{k}": v for k, v in deltas.items()},
                **used,
                **({"k": k_now} if COUNTER_SHARDS in item else {}),
                **({"shards": shards_value(item)} if shards_value(item) is not None else {}),
            ),
        }

    def delete_items(self, stream_id: str, shards: int) -> None:
        keys = [{"stream": shard_key(stream_id, k)} for k in range(shards)]
        if keys:
            dynamo.batch_write(self.client, self.table, deletes=keys)
        self._known.pop(stream_id, None)


def shards_value(item: dict[str, Any]) -> int | None:
    """``properties.shards`` as stored on a stream item (None: not set, the default)."""
    value = (item.get("properties") or {}).get("shards")
    return None if value is None else int(value)


def shards_condition(item: dict[str, Any]) -> str:
    """A condition (on ``#p.#shards``, value ``:shards``) that the stream's stored shards
    are still those of ``item``."""
    return (
        "#p.#shards = :shards"
        if shards_value(item) is not None
        else ("attribute_not_exists(#p.#shards)")
    )


def growth(table: str, item: dict[str, Any], wanted: int, active: str) -> list[dict[str, Any]]:
    """The transaction that gives the stream of ``item`` (read consistently) ``wanted``
    queue shards and counter items: the missing counter items, then the stream item's
    shards and K, conditioned on the stream being ``active`` with the shards and K of
    ``item`` (a concurrent growth or delete cancels it)."""
    have = counter_shards(item)
    had_k = COUNTER_SHARDS in item
    shards = shards_value(item)
    k_wanted = max(have, counters_for(wanted))
    update = {
        "TableName": table,
        "Key": dynamo.serialize({"stream": item["stream"]}),
        "UpdateExpression": "SET #p.#shards = :wanted, #cs = :k_wanted",
        "ConditionExpression": "#s = :active AND "
        + ("#cs = :k" if had_k else "attribute_not_exists(#cs)")
        + f" AND {shards_condition(item)}",
        "ExpressionAttributeNames": {
            "#p": "properties",
            "#shards": "shards",
            "#cs": COUNTER_SHARDS,
            "#s": "status",
        },
        "ExpressionAttributeValues": dynamo.values(
            wanted=wanted,
            k_wanted=k_wanted,
            active=active,
            **({"k": have} if had_k else {}),
            **({"shards": shards} if shards is not None else {}),
        ),
    }
    puts = counter_items(item["stream"], have, k_wanted)
    return [
        *({"Put": {"TableName": table, "Item": dynamo.serialize(c)}} for c in puts),
        {"Update": update},
    ]
