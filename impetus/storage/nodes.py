"""The nodes table's owner: every read and write of node items, and their layout.

One item per node agent, keyed by ``node``. The agent rewrites it on every heartbeat with
``due``, when its next beat is due (its cadence depends on its state: a few seconds
while it holds leases, about a minute while idle, node_agent/heartbeat.py), and
``expires`` (the table's TTL attribute) a grace after that; it deletes the item when it
stops. Liveness is judged by the node's own schedule: a node is gone once ``expires``
passes, whatever its cadence.
DFS asks a node to drain by setting ``drain`` on its item; a heartbeat never erases that
mark (its put is conditional on the mark being absent), so the request cannot be lost.
The mark is ``True`` (drain, report ``drained``, wait to be terminated) or ``"leave"``
(DFS has already terminated the instance: drain, then stop and complete the lifecycle
action at once).

DynamoDB's TTL deletes expired items only eventually (and moto never does), so readers
drop them themselves: a node past ``expires`` stopped heartbeating.

Who calls what: the node agent :meth:`Nodes.heartbeat` (node_agent/scaling.py, which
keeps a drain request) and :meth:`Nodes.remove` (node_agent/drain.py); DFS
:meth:`Nodes.request_drain` (impetus/scaler/actuate.py) and :meth:`Nodes.by_node`;
the API :func:`list_nodes` (through ``Queue.list_nodes``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from impetus.core.config import AwsSettings
from impetus.storage import dynamo
from impetus.storage.tables import NODES, TABLES, table_names_for

# A node's reported ``state``: claiming; asked to stop, still holding jobs; holding none.
RUNNING, DRAINING, DRAINED = "running", "draining", "drained"

KEY = "node"  # the partition key: the node id
DRAIN = "drain"  # set by DFS: stop claiming (see the module docstring)
LEAVE = "leave"  # the drain mark's value when DFS already terminated the instance
BEATS_TO_EXPIRE = 3  # default grace: the beat due and two more missed, as before cadences

NODE_FIELDS = (
    "node", "host", "pid", "started", "heartbeat", "state", "mpps", "properties",
    "streams", "workers_total", "workers_busy", "jobs_done", "claims",
)  # fmt: skip


@dataclass(frozen=True)
class NodeStats:
    """What a node is doing, as its heartbeat reports it."""

    streams: Sequence[str] = ()
    workers_total: int = 0
    workers_busy: int = 0
    jobs_done: int = 0
    claims: int = 0

    @property
    def busy(self) -> bool:
        """Holding a claim or running a job (DFS never counts such a node idle)."""
        return self.claims > 0 or self.workers_busy > 0


@dataclass(frozen=True)
class NodeBeat:
    """One heartbeat of a node agent: everything its item says, as Python values."""

    node_id: str
    host: str
    pid: int
    started: float  # epoch s
    at: float  # epoch s of this beat
    interval: float  # seconds until the next beat is due (the node's cadence now)
    properties: Mapping[str, str]
    mpps: int
    stats: NodeStats = field(default_factory=NodeStats)
    state: str = RUNNING
    idle_since: float | None = None  # epoch s of the first beat that saw the node idle
    grace: float | None = None  # seconds late past ``due`` before it counts as gone

    @property
    def due(self) -> float:
        return self.at + self.interval

    @property
    def expires(self) -> float:
        grace = (BEATS_TO_EXPIRE - 1) * self.interval if self.grace is None else self.grace
        return self.due + grace

    def item(self) -> dict[str, Any]:
        """The item (without the drain mark, which only :class:`Nodes` writes)."""
        item: dict[str, Any] = {
            KEY: self.node_id,
            "host": self.host,
            "pid": self.pid,
            "started": round(self.started, 3),
            "heartbeat": round(self.at, 3),
            "due": round(self.due, 3),
            "expires": int(self.expires),
            "properties": dict(self.properties),
            "mpps": self.mpps,
            "streams": list(self.stats.streams),
            "workers_total": int(self.stats.workers_total),
            "workers_busy": int(self.stats.workers_busy),
            "jobs_done": int(self.stats.jobs_done),
            "claims": int(self.stats.claims),
            "state": self.state,
        }
        if self.idle_since is not None:
            item["idle_since"] = round(self.idle_since, 3)
        return item


def live(items: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Nodes whose heartbeat has not expired, sorted by id, with only the public fields."""
    alive = [i for i in items if float(i.get("expires", 0)) >= now]
    return [{f: i.get(f) for f in NODE_FIELDS} for i in sorted(alive, key=lambda i: i[KEY])]


class Nodes:
    """The nodes table (one boto3 DynamoDB client: thread-safe)."""

    def __init__(self, client: Any, table: str) -> None:
        """``table`` is the physical name (see :meth:`for_prefix`)."""
        self._client = client
        self.table = table

    @classmethod
    def for_settings(cls, client: Any, settings: AwsSettings) -> Nodes:
        return cls(client, table_names_for(settings)[NODES])

    @classmethod
    def for_prefix(cls, client: Any, table_prefix: str) -> Nodes:
        return cls(client, TABLES[NODES].physical_name(table_prefix))

    # --- the node agent -----------------------------------------------------------------
    def heartbeat(self, beat: NodeBeat, *, draining: bool = False) -> bool:
        """Write a node's heartbeat item, never erasing a drain request.

        A node that knows it drains writes the mark back itself (``draining``). Any other
        beat is written only while no mark is on the item: False, with nothing written,
        means DFS asked the node to drain; it should beat again with ``draining``.
        """
        item = beat.item()
        if draining:
            self._put({**item, DRAIN: True})
            return True
        try:
            self._put(
                item,
                ConditionExpression="attribute_not_exists(#drain)",
                ExpressionAttributeNames={"#drain": DRAIN},
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
            return False
        return True

    def remove(self, node_id: str) -> None:
        """Delete a stopping node's item (it would otherwise linger until it expires)."""
        self._client.delete_item(TableName=self.table, Key=dynamo.serialize({KEY: node_id}))

    def drain_requested(self, node_id: str) -> bool | str:
        """DFS's drain mark on this node's item: False (none), True (drain) or
        :data:`LEAVE` (drain and stop: the instance is terminating). One small consistent
        read: an idle node checks when DFS signals drains in its replica, between its rare
        beats, and a node whose beat found the mark checks which it is."""
        answer = self._client.get_item(
            TableName=self.table,
            Key=dynamo.serialize({KEY: node_id}),
            ProjectionExpression="#drain",
            ExpressionAttributeNames={"#drain": DRAIN},
            ConsistentRead=True,
        )
        mark = dynamo.deserialize(answer.get("Item") or {}).get(DRAIN)
        return LEAVE if mark == LEAVE else bool(mark)

    # --- DFS --------------------------------------------------------------------------------
    def request_drain(self, node_id: str, *, leave: bool = False) -> bool:
        """Mark a node's item ``drain``: its agent stops claiming and reports ``drained``
        (``leave``: DFS terminated its instance; the agent stops once drained). False
        when the node is gone (no item: nothing is created for it)."""
        try:
            self._client.update_item(
                TableName=self.table,
                Key=dynamo.serialize({KEY: node_id}),
                UpdateExpression="SET #drain = :yes",
                ConditionExpression="attribute_exists(#node)",
                ExpressionAttributeNames={"#drain": DRAIN, "#node": KEY},
                ExpressionAttributeValues=dynamo.values(yes=LEAVE if leave else True),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        return True

    def by_node(self) -> dict[str, dict[str, Any]]:
        """Every item, expired or not, by node id (DFS matches them to instances)."""
        return {i[KEY]: i for i in self._scan()}

    # --- readers ----------------------------------------------------------------------------
    def live(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every live node's public fields, sorted by id."""
        return live(self._scan(), time.time() if now is None else now)

    def _scan(self) -> list[dict[str, Any]]:
        # A scan is fine: the table holds one small item per node.
        return list(dynamo.scan(self._client, TableName=self.table, ConsistentRead=True))

    def _put(self, item: dict[str, Any], **conditions: Any) -> None:
        self._client.put_item(TableName=self.table, Item=dynamo.serialize(item), **conditions)


def list_nodes(client: Any, table: str, now: float | None = None) -> list[dict[str, Any]]:
    """Every live node (what ``Queue.list_nodes`` calls; ``table`` is the physical name)."""
    return Nodes(client, table).live(now)
