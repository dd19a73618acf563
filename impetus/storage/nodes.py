"""Reading the nodes table: the live node agents, for ``impetus nodes`` and ``watch``.

Each agent rewrites its item on every heartbeat (node_agent/nodes.py) with ``expires``
three beats ahead. DynamoDB's TTL deletes expired items only eventually (and moto never
does), so a reader drops them itself: a node past ``expires`` stopped heartbeating.
"""

from __future__ import annotations

import time
from typing import Any

from impetus.storage import dynamo

NODE_FIELDS = (
    "node", "host", "pid", "started", "heartbeat", "state", "mpps", "properties",
    "streams", "workers_total", "workers_busy", "jobs_done", "claims",
)  # fmt: skip


def live(items: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Nodes whose heartbeat has not expired, sorted by id, with only the public fields."""
    alive = [i for i in items if float(i.get("expires", 0)) >= now]
    return [{f: i.get(f) for f in NODE_FIELDS} for i in sorted(alive, key=lambda i: i["node"])]


def list_nodes(client: Any, table: str, now: float | None = None) -> list[dict[str, Any]]:
    """Every live node (a scan: the table holds one small item per node)."""
    items = list(dynamo.scan(client, TableName=table, ConsistentRead=True))
    return live(items, time.time() if now is None else now)
