"""What a workload would cost on AWS: DynamoDB units, S3 requests, Lambda invocations.

:class:`CostMeter` hooks botocore clients (``before-parameter-build`` and ``after-call``
events) and counts every DynamoDB and S3 request by operation. DynamoDB units are
computed as AWS bills them on-demand, from item sizes (:func:`item_size`), not taken from
the service's answer (moto's ``ConsumedCapacity`` is a constant):

* writes: 1 WCU per started KB of the larger of the item before and after (Put, Update,
  Delete, each item of a BatchWriteItem); a failed conditional write is billed too;
* reads: 1 RCU per started 4 KB strongly consistent, half that eventually consistent;
  GetItem and each BatchGetItem key on the whole item (projections do not help, a missing
  item costs the minimum); Query on the sum of the items it evaluated (before the filter);
* transactions: twice the units of their items;
* global secondary indexes: a Query on an index is billed like one on a table (on the
  index entries it evaluated), and a write also writes the index entries it changes
  (bench/indexwrites.py), attributed to the index's own key kind.

Each request's units are also attributed to an *actor* (``api``, ``node``, ``dfs``: set
with :meth:`CostMeter.acting`, ``node`` by default), a table and a key kind
(:mod:`impetus.capacity.keys`), with the units of each partition key, so that the
capacity model (bench/capacity_mix.py) sees which item or partition a workload heats.

Item sizes the request does not show (the item before a write, the whole item behind a
projection, the items a filtered Query evaluated) are read with an unhooked *probe*
client, so measuring adds requests that are not counted. Nothing here is used in
production paths: it is for ``bench/costs.py`` and ``bench/capacity_mix.py``.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.indexwrites import IndexWrites, written
from bench.itemsize import item_size, read_units, write_units
from impetus.capacity import keys as key_kinds
from impetus.capacity.limits import (
    LAMBDA_MEMORY_GB,
    PRICE_API_GATEWAY_REQUEST,
    PRICE_LAMBDA_GB_SECOND,
    PRICE_LAMBDA_REQUEST,
    PRICE_READ_UNIT,
    PRICE_WRITE_UNIT,
)
from impetus.storage.tables import TABLES

# On-demand prices, us-east-1 (USD): DynamoDB, Lambda and API Gateway's are the capacity
# model's (impetus.capacity.limits, with their sources).
PRICE_S3 = {"put": 0.005e-3, "get": 0.0004e-3}  # PUT/COPY/POST/LIST vs GET, per request
PRICE_SQS_REQUEST = 0.40e-6
SQS_REQUESTS_PER_JOB = 3  # send, receive, delete

BILLED_ERRORS = ("ConditionalCheckFailedException", "TransactionCanceledException")
_S3_PUT_CLASS = ("Put", "Copy", "Post", "List", "Create", "Complete", "Upload")


# --- the meter ------------------------------------------------------------------------------
@dataclass
class OpCount:
    requests: int = 0
    rcu: float = 0.0
    wcu: float = 0.0


# (actor, logical table, key kind, operation)
KeyRow = tuple[str, str, str, str]
# (physical table, key or None for a Scan, RCU, WCU): one item's (or one Query's) share
Part = tuple[str, "dict[str, Any] | None", float, float]


@dataclass
class Usage:
    """Totals of a measured window."""

    dynamodb: dict[str, OpCount] = field(default_factory=lambda: defaultdict(OpCount))
    by_key: dict[KeyRow, OpCount] = field(default_factory=lambda: defaultdict(OpCount))
    # (actor, table, kind) -> partition key value -> its units (the hottest is what binds)
    per_key: dict[tuple[str, str, str], dict[str, OpCount]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(OpCount))
    )
    s3: Counter = field(default_factory=Counter)
    lambda_invocations: int = 0
    lambda_seconds: float = 0.0

    @property
    def rcu(self) -> float:
        return sum(o.rcu for o in self.dynamodb.values())

    @property
    def wcu(self) -> float:
        return sum(o.wcu for o in self.dynamodb.values())

    @property
    def dynamodb_requests(self) -> int:
        return sum(o.requests for o in self.dynamodb.values())

    def dollars(self) -> dict[str, float]:
        """USD of this usage by service, at on-demand prices."""
        s3 = sum(
            n * PRICE_S3["put" if op.startswith(_S3_PUT_CLASS) else "get"]
            for op, n in self.s3.items()
        )
        return {
            "dynamodb": self.wcu * PRICE_WRITE_UNIT + self.rcu * PRICE_READ_UNIT,
            "lambda": self.lambda_invocations * PRICE_LAMBDA_REQUEST
            + self.lambda_seconds * LAMBDA_MEMORY_GB * PRICE_LAMBDA_GB_SECOND,
            "api_gateway": self.lambda_invocations * PRICE_API_GATEWAY_REQUEST,
            "s3": s3,
        }


def sqs_dollars_per_million() -> float:
    """The SQS + Auto Scaling alternative: send, receive, delete per job."""
    return SQS_REQUESTS_PER_JOB * PRICE_SQS_REQUEST * 1e6


class CostMeter:
    """Counts requests and units of the clients it instruments (thread-safe)."""

    def __init__(self, probe: Any, table_prefix: str) -> None:
        self._probe = probe  # an uninstrumented DynamoDB client on the same endpoint
        self._keys = {
            t.physical_name(table_prefix): [a for a in (t.partition_key, t.sort_key) if a]
            for t in TABLES.values()
        }
        self._logical = {t.physical_name(table_prefix): name for name, t in TABLES.items()}
        self._indexes = {
            t.physical_name(table_prefix): {i.name: i for i in t.indexes} for t in TABLES.values()
        }
        self._index_writes = IndexWrites(probe, table_prefix, item_size)
        self._lock = threading.Lock()
        self._local = threading.local()
        # a context variable, not thread-local: DFS's tick fans its requests out to a
        # thread pool (impetus.scaler.budget.fan_out) that carries the caller's context
        self._actor: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"actor-{id(self)}", default=None
        )
        self.usage = Usage()

    def logical(self, physical: str) -> str:
        """The table's logical name (``streams``...); a table of no prefix keeps its name."""
        return self._logical.get(physical, physical)

    @contextmanager
    def acting(self, actor: str) -> Iterator[None]:
        """Attribute this context's requests to ``actor`` (``api``, ``dfs``) meanwhile."""
        token = self._actor.set(actor)
        try:
            yield
        finally:
            self._actor.reset(token)

    def reset(self) -> Usage:
        """Start a new window; returns the one that ended."""
        with self._lock:
            ended, self.usage = self.usage, Usage()
        return ended

    def probe_seconds(self) -> float:
        """Seconds this thread spent in probe requests (to take out of measured times)."""
        return getattr(self._local, "probe_seconds", 0.0)

    def _probed(self, started: float) -> None:
        self._local.probe_seconds = self.probe_seconds() + time.perf_counter() - started

    def lambda_invocation(self, seconds: float) -> None:
        with self._lock:
            self.usage.lambda_invocations += 1
            self.usage.lambda_seconds += seconds

    def instrument(self, client: Any) -> Any:
        service = client.meta.service_model.service_name
        events = client.meta.events
        if service == "dynamodb":
            events.register("before-parameter-build.dynamodb", self._before)
            events.register("after-call.dynamodb", self._after)
        elif service == "s3":
            events.register("after-call.s3", self._after_s3)
        return client

    # --- hooks ------------------------------------------------------------------------------
    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        op = model.name
        before: Any = None
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            before = self._size(params["TableName"], self._key(params))
        elif op == "BatchWriteItem":
            before = {
                (table, i): size
                for table, requests in params["RequestItems"].items()
                for i, size in enumerate(
                    self._sizes(table, [self._request_key(table, r) for r in requests])
                )
            }
        elif op == "TransactWriteItems":
            before = [self._transact_size(entry) for entry in params["TransactItems"]]
        started = time.perf_counter()
        items = written(op, params, lambda table, spec: self._key({"TableName": table, **spec}))
        entries = self._index_writes.entries(items)  # the items' index entries before
        self._probed(started)
        self._local.pending = (op, dict(params), before, (items, entries))

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        pending = getattr(self._local, "pending", None)
        self._local.pending = None
        if pending is None or pending[0] != model.name:
            return
        op, params, before, (items, entries) = pending
        error = (parsed or {}).get("Error", {}).get("Code")
        # Rejected requests (validation, throttling) are not billed; lost conditions are.
        billed = error is None or error in BILLED_ERRORS
        parts = self._parts(op, params, before) if billed else []
        if billed and items:  # and the index entries it changed (bench/indexwrites.py)
            started = time.perf_counter()
            parts += self._index_writes.parts(items, entries)
            self._probed(started)
        if not parts:  # rejected, or control plane: one request on its table
            parts = [(params.get("TableName", ""), None, 0.0, 0.0)]
        actor = self._actor.get() or "node"
        with self._lock:
            count = self.usage.dynamodb[op]
            count.requests += 1
            count.rcu += sum(p[2] for p in parts)
            count.wcu += sum(p[3] for p in parts)
            self._attribute(actor, op, parts)

    def _attribute(self, actor: str, op: str, parts: list[Part]) -> None:
        """Per (table, key kind) and per partition key: one request per kind it touched."""
        seen: set[KeyRow] = set()
        for physical, key, rcu, wcu in parts:
            table = self.logical(physical)
            kind, pk = key_kinds.classify(table, key)
            row = (actor, table, kind, op)
            count = self.usage.by_key[row]
            count.requests += row not in seen
            seen.add(row)
            count.rcu += rcu
            count.wcu += wcu
            hot = self.usage.per_key[(actor, table, kind)][pk]
            hot.requests += 1
            hot.rcu += rcu
            hot.wcu += wcu

    def _after_s3(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.usage.s3[model.name] += 1

    # --- units ------------------------------------------------------------------------------
    def _parts(self, op: str, params: dict[str, Any], before: Any) -> list[Part]:
        table = params.get("TableName", "")
        consistent = bool(params.get("ConsistentRead"))
        if op == "PutItem":
            return [(table, self._key(params), 0.0, write_units(before, item_size(params["Item"])))]
        if op == "UpdateItem":
            key = params["Key"]
            return [(table, key, 0.0, write_units(before, self._size(table, key)))]
        if op == "DeleteItem":
            return [(table, params["Key"], 0.0, write_units(before, 0))]
        if op == "GetItem":
            key = params["Key"]
            return [(table, key, read_units(self._size(table, key), consistent), 0.0)]
        if op == "BatchGetItem":
            return self._batch_get_parts(params)
        if op == "BatchWriteItem":
            return self._batch_write_parts(params, before)
        if op in ("Query", "Scan"):
            key = self._query_key(table, params) if op == "Query" else None
            return [(table, key, self._query_units(op, params), 0.0)]
        if op == "TransactWriteItems":
            return self._transact_parts(params, before)
        if op == "TransactGetItems":
            return [
                (
                    g["TableName"],
                    g["Key"],
                    2 * read_units(self._size(g["TableName"], g["Key"]), True),
                    0.0,
                )
                for g in (e["Get"] for e in params["TransactItems"])
            ]
        return []  # control plane (CreateTable, ...): not billed per request

    def _query_key(self, table: str, params: dict[str, Any]) -> dict[str, Any]:
        """The partition key a Query reads (``#pk = :v`` in its key condition); on an
        index, the index's (its kind is the index's, impetus.capacity.keys)."""
        names = params.get("ExpressionAttributeNames") or {}
        values = params.get("ExpressionAttributeValues") or {}
        index = self._indexes.get(table, {}).get(params.get("IndexName", ""))
        partition = index.partition_key if index else (self._keys.get(table) or [""])[0]
        for name, value in re.findall(
            r"([#\w]+)\s*=\s*(:\w+)", params.get("KeyConditionExpression", "")
        ):
            if names.get(name, name) == partition and value in values:
                return {partition: values[value]}
        return {}

    def _batch_get_parts(self, params: dict[str, Any]) -> list[Part]:
        parts: list[Part] = []
        for table, spec in params["RequestItems"].items():
            consistent = bool(spec.get("ConsistentRead"))
            sizes = self._sizes(table, spec["Keys"])
            parts += [
                (table, k, read_units(size, consistent), 0.0)
                for k, size in zip(spec["Keys"], sizes, strict=True)
            ]
        return parts

    def _batch_write_parts(self, params: dict[str, Any], before: dict) -> list[Part]:
        parts: list[Part] = []
        for table, requests in params["RequestItems"].items():
            for i, request in enumerate(requests):
                after = item_size(request["PutRequest"]["Item"]) if "PutRequest" in request else 0
                key = self._request_key(table, request)
                parts.append((table, key, 0.0, write_units(before[(table, i)], after)))
        return parts

    def _transact_parts(self, params: dict[str, Any], before: list[int]) -> list[Part]:
        parts: list[Part] = []
        for entry, old in zip(params["TransactItems"], before, strict=True):
            kind, spec = next(iter(entry.items()))
            key = spec.get("Key") or self._key(spec)
            if kind == "Put":
                new = item_size(spec["Item"])
            elif kind == "Update":
                new = self._size(spec["TableName"], spec["Key"])
            else:  # Delete, ConditionCheck
                new = 0
            parts.append((spec["TableName"], key, 0.0, 2 * write_units(old, new)))
        return parts

    def _query_units(self, op: str, params: dict[str, Any]) -> float:
        """Units of the items the request evaluated: the same request without filter or
        projection, on the probe."""
        evaluated = {
            k: v
            for k, v in params.items()
            if k
            not in ("FilterExpression", "ProjectionExpression", "Select", "ReturnConsumedCapacity")
        }
        names = dict(evaluated.get("ExpressionAttributeNames") or {})
        values = dict(evaluated.get("ExpressionAttributeValues") or {})
        used = str(evaluated.get("KeyConditionExpression", ""))
        evaluated["ExpressionAttributeNames"] = {k: v for k, v in names.items() if k in used}
        evaluated["ExpressionAttributeValues"] = {k: v for k, v in values.items() if k in used}
        for key in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
            if not evaluated[key]:
                del evaluated[key]
        started = time.perf_counter()
        answer = getattr(self._probe, "query" if op == "Query" else "scan")(**evaluated)
        self._probed(started)
        size = sum(item_size(i) for i in answer.get("Items", []))
        return read_units(size, bool(params.get("ConsistentRead")))

    # --- sizes ------------------------------------------------------------------------------
    def _key(self, params: dict[str, Any]) -> dict[str, Any]:
        if "Key" in params:
            return params["Key"]
        names = self._keys.get(params["TableName"], [])
        return {k: params["Item"][k] for k in names if k in params["Item"]}

    def _request_key(self, table: str, request: dict[str, Any]) -> dict[str, Any]:
        if "DeleteRequest" in request:
            return request["DeleteRequest"]["Key"]
        item = request["PutRequest"]["Item"]
        return {k: item[k] for k in self._keys.get(table, []) if k in item}

    def _transact_size(self, entry: dict[str, Any]) -> int:
        _, spec = next(iter(entry.items()))
        key = spec.get("Key") or self._key(spec)
        return self._size(spec["TableName"], key)

    def _sizes(self, table: str, keys: list[dict[str, Any]]) -> list[int]:
        """Each key's item size, probed 100 keys a BatchGetItem (a GetItem each made the
        meter, not the code it meters, the slowest part of a metered test on moto)."""
        names = self._keys.get(table, [])
        found: dict[str, int] = {}
        started = time.perf_counter()
        for i in range(0, len(keys), 100):
            unique = list({_key_id(k, names): k for k in keys[i : i + 100] if k}.values())
            request = {table: {"Keys": unique, "ConsistentRead": True}} if unique else {}
            while request:
                answer = self._probe.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(table, []):
                    found[_key_id(item, names)] = item_size(item)
                request = answer.get("UnprocessedKeys") or {}
        self._probed(started)
        return [found.get(_key_id(k, names), 0) if k else 0 for k in keys]

    def _size(self, table: str, key: dict[str, Any]) -> int:
        if not key:
            return 0
        started = time.perf_counter()
        answer = self._probe.get_item(TableName=table, Key=key, ConsistentRead=True)
        self._probed(started)
        return item_size(answer.get("Item"))


def _key_id(item: dict[str, Any], names: list[str]) -> str:
    """An item's key attributes (wire format) as one comparable string."""
    return repr([item.get(n) for n in names])
