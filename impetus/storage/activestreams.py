"""The active-streams record: which streams have (or may have) work, in a few small items.

Node agents used to Scan the whole streams table on every listing poll; an idle node's
reads grew with the number of streams. Now a stream is *marked* when an enqueue finds it
idle (before its jobs are written, so no job is visible in an unmarked stream unless a
marker died), DFS removes the mark once the stream has stayed idle (impetus.scaler
.activity), and readers look at the marks only (docs/architecture.md, "Which streams
have work"). The record lives in the streams table, under keys no stream id can take
(:data:`RECORD_PREFIX`), and :class:`impetus.storage.streams.Streams` owns it (it
creates this object; nothing else writes these items).

Layout, for ``REPLICAS`` copies r and ``SHARDS`` shards k (a stream's shard: a hash of
its id):

- ``~active#<r>#<k>``: one attribute ``m:<stream id>`` = the mark's token per marked
  stream, and ``n``, how many there are (kept by the conditional writes below);
- ``~active#<r>#head``: ``v<k>``, a version per shard bumped by every mark,
  ``overflow``, when a mark last failed for a full shard, and two attributes DFS writes:
  ``fleet``, how many node agents there are (readers stretch their idle poll with it,
  :func:`idle_interval`), and ``drains``, a version bumped when DFS asks a node reading
  this replica to drain (an idle node, which beats rarely, then reads its item at once).

Why so: an agent polls one head (one eventually consistent GetItem of a tiny item,
0.5 read units) and reads a shard only when its version moved, so an idle node's
requests do not grow with the number of streams. Replicas spread those reads: every
node reads one head every second, and one item serves at most 3,000 read units per
second (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html),
so 10,000 nodes over 8 replicas put 625 units/s (21 %) on each. Shards bound item size:
an item is at most 400 KB (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html);
a mark takes at most ~125 bytes (a 100-character id, its name prefix and a token), so
:data:`MAX_PER_SHARD` = 2,500 marks keep a shard under ~320 KB, and 8 shards hold 20,000
active streams. A mark that finds its shard full is not written; it sets ``overflow``
instead, and readers fall back to the full listing while it is recent.
"""

from __future__ import annotations

import secrets
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from impetus.storage import dynamo

RECORD_PREFIX = "~active#"  # "~" cannot start a stream id (impetus.core.keys.STREAM_ID)
SHARDS = 8
REPLICAS = 8
MAX_PER_SHARD = 2500
MARK = "m:"  # attribute name prefix: m:<stream id> = token
COUNT = "n"
OVERFLOW = "overflow"
OVERFLOW_HOLD = 120.0  # seconds readers list everything after a mark failed for room
REFRESH_EVERY = 60.0  # seconds between re-reads of the shards a reader holds marks from
# Seconds between re-reads of every shard (the safety net for a version bump that never
# came: a marker that died between its shard write and its head bump). Rare: at 10,000
# idle nodes, 8 small consistent reads each every 10 minutes are 133 read units/s.
FULL_REFRESH_EVERY = 600.0
FLEET = "fleet"
DRAINS = "drains"
# Head reads per second the whole idle fleet may make: each idle node polls every
# fleet / IDLE_READS_PER_SECOND seconds (at least its poll_interval). 1,000 eventually
# consistent reads of a small item are 500 read units/s, $0.225 an hour at $0.125 per
# million (https://aws.amazon.com/dynamodb/pricing/on-demand/), whatever the fleet size;
# work on an idle stream is still seen by some node within ~1 ms at 10,000 nodes polling
# at random phases (docs/architecture.md, "What an idle fleet costs").
IDLE_READS_PER_SECOND = 1000.0


def is_record_key(key: str) -> bool:
    """Whether a streams-table key is one of this record's items (not a stream)."""
    return key.startswith(RECORD_PREFIX)


def shard_of(stream_id: str, shards: int = SHARDS) -> int:
    return zlib.crc32(stream_id.encode()) % shards


def replica_of(node_id: str, replicas: int = REPLICAS) -> int:
    """The replica a reader polls: fixed per node, spread across nodes."""
    return zlib.crc32(node_id.encode()) % replicas


def head_key(replica: int) -> str:
    return f"{RECORD_PREFIX}{replica}#head"


def shard_key(replica: int, shard: int) -> str:
    return f"{RECORD_PREFIX}{replica}#{shard}"


@dataclass(frozen=True)
class Head:
    versions: dict[int, int]  # shard -> version
    overflow_at: float  # epoch seconds of the last mark that found its shard full (0: never)
    fleet: int = 0  # node agents DFS last counted (0: not published yet)
    drains: int = 0  # bumped by DFS's drain requests to nodes of this replica


@dataclass(frozen=True)
class Snapshot:
    """What a reader knows: the marked streams and whether the record is incomplete."""

    marks: dict[str, str]  # stream id -> token
    overflow: bool = False  # some mark could not be written: list every stream instead


class ActiveStreams:
    """Reads and writes the record (through :class:`~impetus.storage.streams.Streams`)."""

    def __init__(
        self,
        client: Any,
        table: str,
        shards: int = SHARDS,
        replicas: int = REPLICAS,
        max_per_shard: int = MAX_PER_SHARD,
    ) -> None:
        self.client = client
        self.table = table
        self.shards = shards
        self.replicas = replicas
        self.max_per_shard = max_per_shard

    # --- writers ------------------------------------------------------------------------
    def mark(self, stream_id: str) -> str:
        """Mark a stream active in every replica; returns the mark's token. A fresh token
        each time: DFS removes a mark only if its token is still the one it saw idle."""
        token = f"{time.time():.3f}-{secrets.token_hex(4)}"
        shard = shard_of(stream_id, self.shards)
        for replica in range(self.replicas):
            written = self._set_mark(shard_key(replica, shard), stream_id, token)
            self._bump(replica, shard, overflow=not written)
        return token

    def _set_mark(self, key: str, stream_id: str, token: str) -> bool:
        """A new mark only while the shard has room; an existing one is renewed. False:
        the shard is full (the record's size bound, see the module docstring)."""
        names = {"#m": MARK + stream_id, "#n": COUNT}
        try:
            self._update(
                key,
                "SET #m = :t ADD #n :one",
                "attribute_not_exists(#m) AND (attribute_not_exists(#n) OR #n < :max)",
                names,
                dynamo.values(t=token, one=1, max=self.max_per_shard),
            )
            return True
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
        try:
            self._update(key, "SET #m = :t", "attribute_exists(#m)", {"#m": names["#m"]}, {
                ":t": dynamo.serialize_value(token)
            })  # fmt: skip
            return True
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
        return False

    def _bump(self, replica: int, shard: int, overflow: bool) -> None:
        """After the shard write: readers of this head see the version move and re-read."""
        expression, names = "ADD #v :one", {"#v": f"v{shard}"}
        values = dynamo.values(one=1)
        if overflow:
            expression += " SET #o = :now"
            names["#o"] = OVERFLOW
            values.update(dynamo.values(now=time.time()))
        self._update(head_key(replica), expression, None, names, values)

    def unmark(self, stream_id: str, token: str) -> int:
        """Remove the mark from every replica where it still holds ``token`` (a marker
        since then wins); returns in how many replicas it was removed. No version bump:
        a reader that learns of an unmark late only looks at an idle stream a bit longer."""
        removed = 0
        shard = shard_of(stream_id, self.shards)
        for replica in range(self.replicas):
            try:
                self._update(
                    shard_key(replica, shard),
                    "REMOVE #m ADD #n :minus",
                    "#m = :t",
                    {"#m": MARK + stream_id, "#n": COUNT},
                    dynamo.values(t=token, minus=-1),
                )
                removed += 1
            except ClientError as exc:
                if not dynamo.is_condition_failure(exc):
                    raise
        return removed

    def _update(
        self,
        key: str,
        expression: str,
        condition: str | None,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> None:
        extra = {"ConditionExpression": condition} if condition else {}
        self.client.update_item(
            TableName=self.table,
            Key=dynamo.serialize({"stream": key}),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            **extra,
        )

    # --- readers ------------------------------------------------------------------------
    def head(self, replica: int, consistent: bool = False) -> Head:
        answer = self.client.get_item(
            TableName=self.table,
            Key=dynamo.serialize({"stream": head_key(replica)}),
            ConsistentRead=consistent,
        )
        item = dynamo.deserialize(answer.get("Item") or {})
        versions = {
            int(name[1:]): int(value)
            for name, value in item.items()
            if name.startswith("v") and name[1:].isdigit()
        }
        return Head(
            versions,
            float(item.get(OVERFLOW) or 0.0),
            int(item.get(FLEET) or 0),
            int(item.get(DRAINS) or 0),
        )

    # --- DFS's fields -------------------------------------------------------------------
    def publish_fleet(self, fleet: int) -> None:
        """Write the fleet size into every replica's head (DFS, when it changed)."""
        for replica in range(self.replicas):
            self._update(head_key(replica), "SET #f = :f", None, {"#f": FLEET}, {
                ":f": dynamo.serialize_value(int(fleet))
            })  # fmt: skip

    def signal_drains(self, node_ids: Iterable[str]) -> None:
        """Bump ``drains`` in the heads the given nodes read (after their drain marks are
        written): an idle node sees it at its next head read and reads its own item."""
        for replica in sorted({replica_of(n, self.replicas) for n in node_ids}):
            self._update(
                head_key(replica), "ADD #d :one", None, {"#d": DRAINS}, dynamo.values(one=1)
            )

    def shards_of(
        self, replica_shards: Iterable[tuple[int, int]], consistent: bool = True
    ) -> dict[tuple[int, int], dict[str, str]]:
        """The marks of the given (replica, shard) items, in one BatchGetItem per 100."""
        wanted = list(replica_shards)
        keys = [{"stream": shard_key(r, k)} for r, k in wanted]
        found = {
            i["stream"]: i for i in dynamo.batch_get(self.client, self.table, keys, consistent)
        }
        return {(r, k): marks_of(found.get(shard_key(r, k), {})) for r, k in wanted}

    def snapshot(self, replica: int = 0) -> Snapshot:
        """Everything one replica holds, read consistently (DFS, once per tick)."""
        head = self.head(replica, consistent=True)
        shards = self.shards_of((replica, k) for k in range(self.shards))
        marks = {sid: token for part in shards.values() for sid, token in part.items()}
        return Snapshot(marks, overflowing(head))

    def every_replica(self) -> list[dict[str, str]]:
        """The marks of each replica (DFS's sweep: a replica a dead marker missed).
        Eventually consistent (half the units): a mark written just now and missed here
        is only written again."""
        pairs = [(r, k) for r in range(self.replicas) for k in range(self.shards)]
        shards = self.shards_of(pairs, consistent=False)
        out: list[dict[str, str]] = [{} for _ in range(self.replicas)]
        for (replica, _), marks in shards.items():
            out[replica].update(marks)
        return out


def marks_of(item: dict[str, Any]) -> dict[str, str]:
    return {name[len(MARK) :]: str(v) for name, v in item.items() if name.startswith(MARK)}


def idle_interval(fleet: int, poll_interval: float, budget: float = IDLE_READS_PER_SECOND) -> float:
    """Seconds between an idle node's head reads: the fleet shares ``budget`` reads/s."""
    return max(poll_interval, fleet / budget)


def overflowing(head: Head, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return now - head.overflow_at < OVERFLOW_HOLD


@dataclass
class ActiveView:
    """A node's cached view of its replica: one head read per call, a shard re-read
    only when its version moved. An unmark bumps no version, so every ``refresh``
    seconds the shards it holds marks from are re-read (to drop unmarks): an idle view,
    holding none, reads only its head (at 10,000 nodes a full re-read of 8 shards per
    node a minute would cost more than all their head reads). Every ``full_refresh``
    seconds it re-reads every shard."""

    active: ActiveStreams
    replica: int
    refresh: float = REFRESH_EVERY
    full_refresh: float = FULL_REFRESH_EVERY
    _versions: dict[int, int] = field(default_factory=dict)
    _marks: dict[int, dict[str, str]] = field(default_factory=dict)
    _fetched: float = float("-inf")
    _fetched_all: float = float("-inf")
    last: Head | None = None  # the head read by the latest snapshot

    def snapshot(self, now: float | None = None) -> Snapshot:
        now = time.monotonic() if now is None else now
        head = self.last = self.active.head(self.replica)
        stale = {k for k, v in head.versions.items() if self._versions.get(k) != v}
        if now - self._fetched_all >= self.full_refresh:
            stale |= set(range(self.active.shards))
            self._fetched = self._fetched_all = now
        elif now - self._fetched >= self.refresh:
            stale |= {k for k, marks in self._marks.items() if marks}
            self._fetched = now
        if stale:
            # Consistent: the shard write came before the version bump this head shows.
            read = self.active.shards_of((self.replica, k) for k in sorted(stale))
            for (_, shard), marks in read.items():
                self._marks[shard] = marks
            for shard in stale:
                self._versions[shard] = head.versions.get(shard, 0)
        marks = {sid: token for part in self._marks.values() for sid, token in part.items()}
        return Snapshot(marks, overflowing(head))
