"""Which kind of key a DynamoDB request touches, and how its load spreads.

The request meter (bench/costmeter.py) attributes every request's units to a table and a
*key kind* (the stream item, a queue shard partition, a node item, ...); the model needs
to know, per kind, whether one partition key takes all of a stream's load (a hot spot
bounded by the partition limits) or spreads it.

A kind's ``spread``:

* ``"stream"``: one partition key per stream (or per shard): a stream's whole load on it;
* ``"node"``: one key per node: a node's own load only;
* ``"split"``: one partition key per stream, but the sort keys are random, so DynamoDB's
  split-for-heat can spread a hot item collection over partitions (limits.DDB_SPLIT_FOR_HEAT);
  only the table limits bind. The queue's partitions are *not* ``split``: their sort keys
  grow (priority, due time, sequence), the pattern split-for-heat cannot relieve;
* ``"table"``: a Scan reads every partition: only the table limits bind;
* ``"fleet"``: one key the whole fleet shares (DFS's memory item);
* ``"counter"``: one of a stream's K counter items (K = its queue shards): a stream's
  counter writes spread over K keys, a random one per write
  (:mod:`impetus.storage.streamcounters`);
* the queue's claim index (a global secondary index, ``claim index``) is its own kind
  with the base partitions' spread: one index partition key per shard (``cpk`` is the
  shard partition's pk). A GSI partition has the same limits as a table's, 1,000 WCU
  and 3,000 RCU per second
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html),
  and its writes (a chunk entering, changing a projected attribute, leaving) are billed
  apart from the table's;
* ``"replica"``: one of the active-streams record's replicas
  (:mod:`impetus.storage.activestreams`): each node reads one replica's head and shards,
  so a key takes 1/``REPLICAS`` of the fleet's reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from impetus.storage.activestreams import RECORD_PREFIX
from impetus.storage.jobqueue.layout import CODE_PREFIX, DELAYED
from impetus.storage.streamcounters import shard_key
from impetus.storage.tables import CLAIM_INDEX


@dataclass(frozen=True)
class KeyKind:
    table: str
    kind: str
    spread: str
    what: str


KINDS: dict[tuple[str, str], KeyKind] = {
    (k.table, k.kind): k
    for k in (
        KeyKind("streams", "stream item", "stream", "a stream's properties (and owner)"),
        KeyKind("streams", "counter item", "counter", "one of a stream's K counter items"),
        KeyKind("streams", "active head", "replica", "a replica's head (shard versions)"),
        KeyKind("streams", "active shard", "replica", "a replica's shard of marks"),
        KeyKind("streams", "scan", "table", "a Scan of every stream item"),
        KeyKind("queue", "shard partition", "stream", "a stream's ready chunks, one per shard"),
        KeyKind("queue", "delayed partition", "stream", "a stream's delayed chunks"),
        KeyKind("queue", "claim index", "stream", "a shard's claimable chunks (GSI)"),
        KeyKind("queue", "scan", "table", "a Scan of the queue table"),
        KeyKind("jobs", "job record", "split", "job records (sort key: random job id)"),
        KeyKind("jobs", "code item", "stream", "a function's code, once per stream"),
        KeyKind("jobs", "scan", "table", "a Scan of the jobs table"),
        KeyKind("store", "store item", "split", "the stream's key-value store"),
        KeyKind("store", "scan", "table", "a Scan of the store table"),
        KeyKind("nodes", "node item", "node", "a node's heartbeat"),
        KeyKind("nodes", "scan", "table", "a Scan of every node item"),
        KeyKind("decisions", "memory item", "fleet", "DFS's memory between ticks"),
        KeyKind("decisions", "decision log", "split", "DFS's decisions (sort key: time)"),
        KeyKind("decisions", "scan", "table", "a Scan of the decision log"),
    )
}
UNKNOWN = "other"


def _text(value: Any) -> str:
    if isinstance(value, dict):  # typed: {"S": "..."}
        return str(next(iter(value.values()), ""))
    return str(value)


def classify(table: str, key: dict[str, Any] | None) -> tuple[str, str]:
    """(kind, partition key value) of a request on logical ``table`` with ``key`` (typed or
    plain values; None: a Scan). A key of an index's attributes is the index's."""
    if key is None:
        return "scan", "*"
    values = {name: _text(v) for name, v in key.items()}
    if table == "streams":
        return _streams_kind(values.get("stream", ""))
    if table == "queue":
        if CLAIM_INDEX.partition_key in values:  # a Query of, or a write to, the index
            return "claim index", values[CLAIM_INDEX.partition_key]
        pk = values.get("pk", "")
        return ("delayed partition" if pk.endswith(f"#{DELAYED}") else "shard partition"), pk
    if table == "jobs":
        pk = values.get("stream", "")
        if values.get("job", "").startswith(CODE_PREFIX):
            return "code item", f"{pk}/{values['job']}"
        return "job record", pk
    if table == "store":
        return "store item", values.get("stream", "")
    if table == "nodes":
        return "node item", values.get("node", "")
    if table == "decisions":
        group, at = values.get("group", ""), values.get("at", "")
        return (
            "memory item" if group.startswith("#") or at.startswith("#") else "decision log"
        ), group
    return UNKNOWN, ""


_COUNTER_MARK = shard_key("", 0)[:-1]  # "#c": <stream>#c<k>


def _streams_kind(key: str) -> tuple[str, str]:
    """A streams-table key: the active-streams record's, a counter item or a stream."""
    if key.startswith(RECORD_PREFIX):
        return ("active head" if key.endswith("#head") else "active shard"), key
    stream, mark, k = key.rpartition(_COUNTER_MARK)
    if mark and stream and k.isdigit():
        return "counter item", key
    return "stream item", key


def spread(table: str, kind: str) -> str:
    known = KINDS.get((table, kind))
    return known.spread if known else "table"
