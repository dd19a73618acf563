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
  Its sparse index ``claimable`` (pk ``cpk``, sk ``csk``: a ready chunk's own pk and sk,
  removed by the write that takes its last waiting job) holds only the chunks a claim
  can take. Why: fully claimed chunks stay at the head of their partition until every
  result is acknowledged, and a Query is billed on the items it evaluates before its
  filter, so claims on the base partition read ~48 spent ~2.7 KB chunks to find one
  claimable: 4.5 RCU per job (docs/capacity-mix.json), the first limit one stream hits
  at 1,000+ jobs/s (a partition serves 3,000 RCU/s). See impetus/storage/jobqueue/claim.py.
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


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key:
        keys.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return keys


@dataclass(frozen=True)
class GlobalIndex:
    """A global secondary index: key attributes (strings) and the non-key attributes it
    projects (INCLUDE; the table's and the index's keys are projected anyway). Sparse
    when items may lack its keys: only items with both are in it."""

    name: str
    partition_key: str
    sort_key: str
    projected: tuple[str, ...]

    def create_kwargs(self) -> dict[str, Any]:
        # On-demand tables take no ProvisionedThroughput for their indexes either.
        return {
            "IndexName": self.name,
            "KeySchema": _key_schema(self.partition_key, self.sort_key),
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(self.projected)},
        }


@dataclass(frozen=True)
class TableDef:
    """One table: logical name, key attributes (all strings), the TTL attribute and its
    global secondary indexes."""

    name: str
    partition_key: str
    sort_key: str | None = None
    ttl_attribute: str | None = None
    indexes: tuple[GlobalIndex, ...] = ()

    def physical_name(self, prefix: str) -> str:
        return f"{prefix}-{self.name}"

    def index(self, name: str) -> GlobalIndex:
        return next(i for i in self.indexes if i.name == name)

    def create_table_kwargs(self, prefix: str) -> dict[str, Any]:
        """Arguments for boto3 ``DynamoDB.Client.create_table`` (on-demand billing)."""
        names = [self.partition_key, *([self.sort_key] if self.sort_key else [])]
        for index in self.indexes:
            names += [n for n in (index.partition_key, index.sort_key) if n not in names]
        kwargs: dict[str, Any] = {
            "TableName": self.physical_name(prefix),
            "KeySchema": _key_schema(self.partition_key, self.sort_key),
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in names],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if self.indexes:
            kwargs["GlobalSecondaryIndexes"] = [i.create_kwargs() for i in self.indexes]
        return kwargs


# The queue's sparse index of claimable ready chunks (see the module docstring). It
# projects what a claim candidate needs (impetus.storage.jobqueue.layout.CANDIDATE_FIELDS
# is built from it): not the job ids, nor the claims and results that make a chunk big.
CLAIM_INDEX = GlobalIndex(
    "claimable", "cpk", "csk", ("n", "cursor", "attempt", "failures", "stage", "priority", "due")
)

TABLES: dict[str, TableDef] = {
    STREAMS: TableDef(STREAMS, "stream"),
    QUEUE: TableDef(QUEUE, "pk", "sk", indexes=(CLAIM_INDEX,)),
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
