"""The decision log (``impetus dfs log``) and the policy's memory, in the decisions table.

One item per recorded group decision: its inputs (the streams, nodes and group the
policy saw, as JSON), the decision and its reason. An unchanged decision is recorded
again only after ``LOG_EVERY`` seconds, so a 1-second local ticker does not flood the
table. Items expire after a week (TTL). The memory item is written conditionally on the
version it was read at: of two ticks racing (a nudge during a scheduled run), one wins.

The item ``#lease``/``#lease`` is the decision loop's lease (:class:`LoopLease`): one DFS
invocation at a time runs its loop, without reserving Lambda concurrency (a reservation
of 1 fails to deploy on a new account, whose concurrency quota is 10 or 50).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from botocore.exceptions import ClientError

from impetus.core import aws, keys
from impetus.core.config import AwsSettings
from impetus.scaler.model import GroupDecision, Memory, PolicyInput
from impetus.storage import dynamo
from impetus.storage.tables import DECISIONS, table_names_for

MEMORY_KEY = {"group": "#memory", "at": "#memory"}
LEASE_KEY = {"group": "#lease", "at": "#lease"}
LOG_TTL_SECONDS = 7 * 86400
LOG_EVERY = 60.0  # an unchanged decision is recorded again after this many seconds


class DecisionLog:
    def __init__(self, client: Any, table: str) -> None:
        """``table`` is the decisions table's physical name (see :meth:`from_settings`)."""
        self.client = client
        self.table = table
        self._version = 0
        self._extra: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: AwsSettings | None = None) -> DecisionLog:
        settings = settings or AwsSettings.from_env()
        return cls(aws.client("dynamodb", settings), table_names_for(settings)[DECISIONS])

    # --- memory -----------------------------------------------------------------------
    def load_memory(self) -> Memory:
        answer = self.client.get_item(
            TableName=self.table, Key=dynamo.serialize(MEMORY_KEY), ConsistentRead=True
        )
        item = dynamo.deserialize(answer.get("Item") or {})
        self._version = int(item.get("version", 0))
        self._extra = json.loads(item.get("extra") or "{}")
        return Memory.from_json(json.loads(item.get("memory") or "{}"))

    def save_memory(self, memory: Memory) -> bool:
        """False when another tick saved first (its memory is as good as ours)."""
        item = {
            **MEMORY_KEY,
            "memory": json.dumps(memory.to_json()),
            "extra": json.dumps(self._extra),
            "version": self._version + 1,
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=dynamo.serialize(item),
                ConditionExpression="attribute_not_exists(#version) OR #version = :v",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues=dynamo.values(v=self._version),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        self._version += 1
        return True

    # --- log --------------------------------------------------------------------------
    def record(self, decision: GroupDecision, inputs: PolicyInput) -> bool:
        """Record one group's decision with what the policy saw (if worth recording)."""
        last = self._extra.setdefault("last", {}).get(decision.node_class)
        signature = [decision.action, decision.desired, decision.reason]
        if last and last[1] == signature and inputs.now - last[0] < LOG_EVERY:
            return False
        self._extra["last"][decision.node_class] = [inputs.now, signature]
        groups = set(self._extra.get("groups", [])) | {decision.node_class}
        self._extra["groups"] = sorted(groups)
        seen = {
            "streams": [asdict(s) for s in inputs.streams if s.node_class == decision.node_class],
            "nodes": [asdict(n) for n in inputs.nodes if n.node_class == decision.node_class],
            "group": [asdict(g) for g in inputs.groups if g.node_class == decision.node_class],
        }
        item = {
            "group": decision.node_class,
            "at": f"{int(inputs.now * 1000):013d}#{keys.unique_suffix()}",
            "at_epoch": round(inputs.now, 3),
            "decision": json.dumps(decision.to_json()),
            "inputs": json.dumps(seen),
            "expires": int(inputs.now + LOG_TTL_SECONDS),
        }
        self.client.put_item(TableName=self.table, Item=dynamo.serialize(item))
        return True

    def recent(self, limit: int = 20, node_class: str | None = None) -> list[dict[str, Any]]:
        """The newest decisions, oldest first, of one node class or of all."""
        if node_class:
            groups = [node_class]
        else:
            self.load_memory()
            groups = self._extra.get("groups", [])
        entries: list[dict[str, Any]] = []
        for group in groups:
            answer = self.client.query(
                TableName=self.table,
                KeyConditionExpression="#g = :g AND #at > :zero",
                ExpressionAttributeNames={"#g": "group", "#at": "at"},
                ExpressionAttributeValues=dynamo.values(g=group, zero="0"),
                ScanIndexForward=False,
                Limit=limit,
            )
            for raw in answer.get("Items", []):
                item = dynamo.deserialize(raw)
                entries.append(
                    {
                        "at": item["at"],
                        "at_epoch": item["at_epoch"],
                        "decision": json.loads(item["decision"]),
                        "inputs": json.loads(item["inputs"]),
                    }
                )
        entries.sort(key=lambda e: e["at"])
        return entries[-limit:]


class LoopLease:
    """The DFS decision loop's lease: a conditional put with an expiry.

    ``acquire`` succeeds when there is no lease, it has expired, or ``holder`` holds it
    already (a renewal); a caller that finds another's live lease *knocks* (marks the
    item) and leaves. ``release`` deletes the lease unless someone knocked meanwhile: then
    it clears the knock and answers False, and the holder ticks once more, so work a
    refused nudge announced is not left to the next scheduled tick. A holder that dies
    keeps the lease until its expiry (callers set it a little past their own deadline);
    ``expires`` is also the table's TTL attribute, which removes a stale item eventually.
    """

    def __init__(self, client: Any, table: str, holder: str) -> None:
        self.client = client
        self.table = table  # the decisions table's physical name
        self.holder = holder

    def acquire(self, now: float, until: float) -> bool:
        """Take or renew the lease until ``until`` (epoch s); False while another holds it."""
        item = {**LEASE_KEY, "holder": self.holder, "expires": round(until, 3)}
        try:
            self.client.put_item(
                TableName=self.table,
                Item=dynamo.serialize(item),
                ConditionExpression="attribute_not_exists(#h) OR #h = :me OR #e < :now",
                ExpressionAttributeNames={"#h": "holder", "#e": "expires"},
                ExpressionAttributeValues=dynamo.values(me=self.holder, now=round(now, 3)),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        return True

    def holder_of(self) -> dict[str, Any]:
        """The lease item as stored ({} when free)."""
        answer = self.client.get_item(
            TableName=self.table, Key=dynamo.serialize(LEASE_KEY), ConsistentRead=True
        )
        return dynamo.deserialize(answer.get("Item") or {})

    def knock(self, holder: str) -> bool:
        """Tell ``holder`` that an invocation it kept out wanted a tick."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize(LEASE_KEY),
                UpdateExpression="SET #k = :me",
                ConditionExpression="#h = :holder",
                ExpressionAttributeNames={"#h": "holder", "#k": "knocked"},
                ExpressionAttributeValues=dynamo.values(me=self.holder, holder=holder),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False  # released or taken over meanwhile
            raise
        return True

    def release(self) -> bool:
        """Give the lease up; False (still held, knock cleared) when someone knocked."""
        names = {"#h": "holder", "#k": "knocked"}
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=dynamo.serialize(LEASE_KEY),
                ConditionExpression="#h = :me AND attribute_not_exists(#k)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=dynamo.values(me=self.holder),
            )
            return True
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize(LEASE_KEY),
                UpdateExpression="REMOVE #k",
                ConditionExpression="#h = :me AND attribute_exists(#k)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=dynamo.values(me=self.holder),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return True  # not ours any more (expired and taken): nothing to give up
            raise
        return False
