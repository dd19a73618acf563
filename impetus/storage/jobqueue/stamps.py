"""A job's timeline, from what the queue already writes: no write of its own.

Where each stamp lives (epoch seconds):

* ``forked_at``: the job record's ``created`` (enqueue).
* ``claimed_at``: the claim entry's ``at`` while the claim is held; the result entry's
  ``cl`` once the job ended (the completion UpdateItem carries it).
* ``started_at``, ``finished_at``, ``node``, ``worker`` (the node's worker slot) and the
  outcome: the result entry's ``st``, ``fi``, ``node``, ``w`` and ``s``.
* ``acked_at``: the acknowledgement tombstone's ``acked``. An ack deletes the result
  entry, so its tombstone (a write that happens anyway) keeps the entry's stamps as
  ``tl`` and the record's ``created``: a finished run can still be plotted.

A key is absent when it is unknown (a job not claimed yet, a lost run with no start).

What it costs: no request, ~15 bytes per result entry (``cl`` to the millisecond, ``w``):
a full chunk of 20 small results grows from about 2.39 KB to 2.69 KB (bench.costmeter's
item_size), and a chunk write is billed per started KB of the larger of the item before
and after (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html),
so some completion writes cost one unit more. The tombstone grows by the same kept
stamps and the fork time; it stays well under 1 KB (one unit, as before).
"""

from __future__ import annotations

from typing import Any

# result entry field -> timeline key
_ENTRY_STAMPS = {"cl": "claimed_at", "st": "started_at", "fi": "finished_at"}
# what a tombstone keeps of the result entry it removes
KEPT = ("cl", "st", "fi", "node", "w", "s")


def tombstone_fields(record: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """What an acknowledgement tombstone keeps of the job's record (its fork time) and of
    the result entry the ack removes (``tl``)."""
    fields: dict[str, Any] = {"tl": {k: entry[k] for k in KEPT if entry.get(k) is not None}}
    if record.get("created") is not None:
        fields["created"] = record["created"]
    return fields


def timeline(
    record: dict[str, Any],
    entry: dict[str, Any] | None = None,
    claim: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The job's timeline object (see the module doc) from its record (or tombstone),
    its result entry if it has one, else the claim entry holding it if any."""
    line: dict[str, Any] = {}
    _stamp(line, "forked_at", record.get("created"))
    _stamp(line, "acked_at", record.get("acked"))
    source = entry if entry is not None else record.get("tl")
    if source:
        for field, key in _ENTRY_STAMPS.items():
            _stamp(line, key, source.get(field))
        if source.get("node"):
            line["node"] = source["node"]
        if source.get("w") is not None:
            line["worker"] = int(source["w"])
        if source.get("s"):
            line["outcome"] = source["s"]
    elif claim is not None:
        _stamp(line, "claimed_at", claim.get("at"))
        line["node"] = claim.get("node")
    return line


def _stamp(line: dict[str, Any], key: str, value: Any) -> None:
    # 0 is "never happened" in an Outcome (a lost run has no start)
    if value is not None and float(value) > 0:
        line[key] = float(value)
