"""The write units DynamoDB bills on a table's global secondary indexes, for the cost
meter (bench/costmeter.py).

A write to a table is also a write to each index whose entry it changes
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html, "Provisioned
throughput considerations for global secondary indexes"):

* an item gains the index keys: one write of the new entry (a put into the index);
* it loses them (or is deleted): one write (a delete from the index);
* it changes an index key's value: two (a delete and a put);
* it changes a projected attribute: one write of the new entry;
* anything else (a non-projected attribute, a failed condition): none.

Each write is 1 WCU per started KB of the entry (the table's and the index's keys and
the projected attributes). A transaction's index writes are billed as standard writes
here: the docs state the 2x for the table's items only (an assumption; the claim
index is written by transactions only on promotions, cancels and re-queues).

:class:`IndexWrites` reads the entries before and after a request with the meter's
uninstrumented probe (a GetItem per written item of an indexed table).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from impetus.storage.tables import TABLES, GlobalIndex

KB = 1024
Entry = dict[str, Any]
Written = list[tuple[str, dict[str, Any]]]  # (physical table, key) of each written item


def index_entry(item: dict[str, Any] | None, index: GlobalIndex, keys: list[str]) -> Entry | None:
    """The index's entry of a typed item; None when the item lacks an index key (a
    sparse index leaves it out)."""
    if not item or index.partition_key not in item or index.sort_key not in item:
        return None
    names = (*keys, index.partition_key, index.sort_key, *index.projected)
    return {n: item[n] for n in names if n in item}


def entry_writes(before: Entry | None, after: Entry | None, index: GlobalIndex) -> list[Entry]:
    """The entries written to the index (each billed on its size) by a change from
    ``before`` to ``after``."""
    if before == after:
        return []
    if before is None or after is None:
        return [after or before]  # type: ignore[list-item]
    keys = (index.partition_key, index.sort_key)
    if any(before[k] != after[k] for k in keys):
        return [before, after]
    return [after]


def written(op: str, params: dict[str, Any], key_of: Any) -> Written:
    """(table, key) of every item a write request names; ``key_of(table, spec)`` gives
    a Put's key from its item."""
    if op in ("PutItem", "UpdateItem", "DeleteItem"):
        return [(params["TableName"], params.get("Key") or key_of(params["TableName"], params))]
    if op == "BatchWriteItem":
        return [
            (
                table,
                r["DeleteRequest"]["Key"]
                if "DeleteRequest" in r
                else key_of(table, r["PutRequest"]),
            )
            for table, requests in params["RequestItems"].items()
            for r in requests
        ]
    if op == "TransactWriteItems":
        return [
            (spec["TableName"], spec.get("Key") or key_of(spec["TableName"], spec))
            for kind, spec in (next(iter(e.items())) for e in params["TransactItems"])
            if kind != "ConditionCheck"
        ]
    return []


class IndexWrites:
    """Index entries of the items a request writes, before and after it."""

    def __init__(self, probe: Any, table_prefix: str, size: Callable[[Entry], int]) -> None:
        self._probe = probe
        self._size = size  # bytes of a typed item (the meter's item_size)
        self._tables = {t.physical_name(table_prefix): t for t in TABLES.values() if t.indexes}

    def entries(self, items: Written) -> list[dict[str, Entry | None]]:
        """Per written item of an indexed table: index name -> its entry now."""
        out = []
        for table, key in items:
            definition = self._tables.get(table)
            if definition is None:
                out.append({})
                continue
            item = self._probe.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
            keys = [k for k in (definition.partition_key, definition.sort_key) if k]
            out.append({i.name: index_entry(item, i, keys) for i in definition.indexes})
        return out

    def parts(
        self, items: Written, before: list[dict[str, Entry | None]]
    ) -> list[tuple[str, dict[str, Any], float, float]]:
        """Cost-meter parts (table, the index key, 0 RCU, WCU) of the index writes."""
        parts = []
        after = self.entries(items)
        for (table, _), old, new in zip(items, before, after, strict=True):
            for name, entry in new.items():
                index = self._tables[table].index(name)
                for wrote in entry_writes(old.get(name), entry, index):
                    wcu = max(1, math.ceil(self._size(wrote) / KB))
                    key = {index.partition_key: wrote[index.partition_key]}
                    parts.append((table, key, 0.0, float(wcu)))
        return parts
