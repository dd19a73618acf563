"""A stream's item as data: its states, what its counters say, its description and its
properties' JSON form (no I/O: :mod:`impetus.storage.streams` reads and writes the items)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from impetus.core.exceptions import InvalidRequest
from impetus.storage.activestreams import is_record_key
from impetus.storage.streamcounters import COUNTERS

ACTIVE = "active"
DELETING = "deleting"
# Counters are updated after the write they count, so a process killed in between leaves
# them off by a few: a stuck claim may count as "waiting" rather than "running". Reapers
# therefore visit every stream any of these says is not idle.
BUSY_COUNTERS = ("waiting", "running", "delayed")


# On an uncounted description (Streams.list_marked): the stream is marked active, so it
# may have work, and its "counts" are only the stream item's own (not its counter items').
MARKED = "marked"


def is_idle(counts: dict[str, Any]) -> bool:
    """No job waiting, delayed or running by these counters (as stored: a counter that
    drifted below zero counts as none)."""
    return not any(int(counts.get(name) or 0) > 0 for name in BUSY_COUNTERS)


def may_hold_claims(stream: dict[str, Any]) -> bool:
    """Whether a stream description (``list_streams``, ``list_marked``) may hold live or
    expired leases."""
    counts = stream.get("counts") or {}
    return bool(stream.get(MARKED)) or any(counts.get(name) for name in BUSY_COUNTERS)


MAX_PROPERTIES_BYTES = 64 * 1024
# Epoch ms no delayed chunk of the stream is due after (0: none was ever written), raised
# before each delayed chunk is written (impetus.storage.jobqueue.items.QueueItems
# .note_delayed): claimers skip the delayed partition's Query once it held nothing due
# past this. Absent on streams from before it: their claimers always look.
DELAYED_UNTIL = "delayed_until"
# True on streams created since the queue table has its claim index: all their ready
# chunks carry the index keys, so their claims Query the index
# (impetus.storage.jobqueue.claim). Absent on older streams: some of their chunks were
# written without the keys (the index would not show them), so their claims keep
# Querying the partitions themselves. Never set on an existing stream.
CLAIM_INDEX_FLAG = "claim_index"


def describe_item(item: dict[str, Any], counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A stream's description; ``counts`` summed over its counter items (default: the
    item's own, as :func:`impetus.storage.streamcounters.fold` leaves them)."""
    counts = counts if counts is not None else {c: int(item.get(c, 0)) for c in COUNTERS}
    return {
        "id": item["stream"],
        "properties": item.get("properties", {}),
        "counts": {c: max(0, counts[c]) for c in COUNTERS},
        "created": item.get("created"),
        "status": item.get("status", ACTIVE),
    }


def describe_items(items: Any) -> list[dict[str, Any]]:
    """Descriptions of stream items as read (their own counts), oldest first; deleting
    streams and the active-streams record's items left out."""
    return listing(items)


def listing(items: Any) -> list[dict[str, Any]]:
    """Descriptions of stream items (not the active-streams record's), oldest first."""
    return sorted(
        (
            describe_item(i)
            for i in items
            if not is_record_key(i["stream"]) and i.get("status") != DELETING
        ),
        key=lambda s: s["created"] or 0,
    )


def json_properties(props: dict[str, Any]) -> dict[str, Any]:
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
