"""The node's heartbeat item in the nodes table (read by DFS to see live, busy nodes)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from impetus.storage import dynamo, tables

log = logging.getLogger(__name__)

RUNNING = "running"
DRAINING = "draining"


def node_item(
    *,
    node_id: str,
    host: str,
    pid: int,
    started: float,
    now: float,
    interval: float,
    properties: dict[str, str],
    mpps: int,
    stats: dict[str, Any],
    state: str,
) -> dict[str, Any]:
    """The item as plain Python values. ``expires`` (epoch s) is the table's TTL: a node
    that stops heartbeating disappears after three missed beats."""
    return {
        "node": node_id,
        "host": host,
        "pid": pid,
        "started": round(started, 3),
        "heartbeat": round(now, 3),
        "expires": int(now + 3 * interval),
        "properties": dict(properties),
        "mpps": mpps,
        "streams": list(stats.get("streams", [])),
        "workers_total": int(stats.get("workers_total", 0)),
        "workers_busy": int(stats.get("workers_busy", 0)),
        "jobs_done": int(stats.get("jobs_done", 0)),
        "claims": int(stats.get("claims", 0)),
        "state": state,
    }


class NodeTable:
    """Writes and deletes this node's item (one boto3 DynamoDB client, thread-safe)."""

    def __init__(self, client: Any, table_prefix: str) -> None:
        self._client = client
        self._table = tables.TABLES[tables.NODES].physical_name(table_prefix)

    def put(self, item: dict[str, Any]) -> None:
        self._client.put_item(TableName=self._table, Item=dynamo.serialize(item))

    def delete(self, node_id: str) -> None:
        self._client.delete_item(TableName=self._table, Key=dynamo.serialize({"node": node_id}))


class Heartbeat:
    """Calls ``beat`` now and then every ``interval`` seconds on a daemon thread."""

    def __init__(self, interval: float, beat: Callable[[], None]) -> None:
        self._interval = interval
        self._beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                self._beat()
            except Exception:  # a failed beat must not end the heartbeats
                log.exception("heartbeat failed")
            if self._stop.wait(self._interval):
                return
