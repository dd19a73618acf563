"""The DynamoDB tables, defined once.

Used by the local stack (boto3 ``create_table``) and by ``infra/`` (CDK), so the local
and the deployed schemas cannot drift.

Key design (see impetus/storage/queue.py for how the items are used):

- ``streams``  pk ``stream``: properties, status, owner, and the stream's K counter
  items ``<stream>#c<k>`` (waiting, delayed, running, finished, errors, acked, forked;
  see impetus/storage/streamcounters.py). Backlog counts without scanning the queue.
- ``queue``    pk ``pk`` = ``<stream>#<shard>`` (ready chunks) or ``<stream>#delayed``,
  sk ``sk`` = ``<priority>#<due ms>#<seq>``: *chunks* of job ids with a claim cursor,
  their live claims (leases) and their results until acknowledged. Only live work lives
  here, so the table stays small; the sort key gives priority then FIFO order.
- ``jobs``     pk ``stream``, sk ``job``: one record per job (code reference, args,
  metadata, the chunk that holds it); code items ``#code#<sha256>`` are stored once per
  function and stream.
- ``store``    pk ``stream``, sk ``key``: the stream's key-value store.
- ``nodes``    pk ``node``: node agent heartbeats (and DFS's drain requests, ``drain``).
- ``decisions`` pk ``group`` (node class), sk ``at`` (``<epoch ms>#<suffix>``): DFS's
  decision log with inputs and reasons, expiring after a week (TTL ``expires``); the
  item ``#memory``/``#memory`` holds what the policy carries between ticks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from impetus.core.config import AwsSettings
from impetus.core.exceptions import ConfigError

STREAMS = "streams"
QUEUE = "queue"
JOBS = "jobs"
STORE = "store"
NODES = "nodes"
DECISIONS = "decisions"


@dataclass(frozen=True)
class TableDef:
    """One table: logical name, key attributes (all strings) and the TTL attribute."""

    name: str
    partition_key: str
    sort_key: str | None = None
    ttl_attribute: str | None = None

    def physical_name(self, prefix: str) -> str:
        return f"{prefix}-{self.name}"

    def create_table_kwargs(self, prefix: str) -> dict[str, Any]:
        """Arguments for boto3 ``DynamoDB.Client.create_table`` (on-demand billing)."""
        keys = [{"AttributeName": self.partition_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": self.partition_key, "AttributeType": "S"}]
        if self.sort_key:
            keys.append({"AttributeName": self.sort_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": self.sort_key, "AttributeType": "S"})
        return {
            "TableName": self.physical_name(prefix),
            "KeySchema": keys,
            "AttributeDefinitions": attrs,
            "BillingMode": "PAY_PER_REQUEST",
        }


TABLES: dict[str, TableDef] = {
    STREAMS: TableDef(STREAMS, "stream"),
    QUEUE: TableDef(QUEUE, "pk", "sk"),
    JOBS: TableDef(JOBS, "stream", "job"),
    STORE: TableDef(STORE, "stream", "key"),
    NODES: TableDef(NODES, "node", ttl_attribute="expires"),
    DECISIONS: TableDef(DECISIONS, "group", "at", ttl_attribute="expires"),
}


def table_names(prefix: str) -> dict[str, str]:
    return {name: t.physical_name(prefix) for name, t in TABLES.items()}


def table_names_for(settings: AwsSettings) -> dict[str, str]:
    """The physical table names ``settings`` point at: a deployed stack's (CloudFormation
    names them, ``settings.tables``), else ``<prefix>-<name>`` (the local stack)."""
    if not settings.tables:
        return table_names(settings.table_prefix)
    missing = sorted(set(TABLES) - set(settings.tables))
    if missing:  # a stack older than this code: fail loudly, not on some other table
        raise ConfigError(f"no physical name for the tables {missing} (IMPETUS_TABLES)")
    return {name: settings.tables[name] for name in TABLES}


def create_tables(client: Any, prefix: str) -> None:
    """Create every table that does not exist yet, and wait until all are active."""
    existing = set(client.list_tables().get("TableNames", []))
    for table in TABLES.values():
        name = table.physical_name(prefix)
        if name in existing:
            continue
        client.create_table(**table.create_table_kwargs(prefix))
        if table.ttl_attribute:
            client.get_waiter("table_exists").wait(TableName=name)
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
    for table in TABLES.values():
        client.get_waiter("table_exists").wait(
            TableName=table.physical_name(prefix), WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
