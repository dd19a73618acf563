"""The DFS Lambda: runs on the EventBridge schedule and on the API's nudge.

Each invocation runs one tick (impetus.dfs.tick). While work is waiting or nodes are
booting or draining, it keeps ticking every ``FOLLOW_UP_SECONDS`` for as long as the
invocation's remaining time allows (leaving ``MARGIN_SECONDS``), so a burst is followed
at 10-second resolution although the schedule fires once a minute.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from impetus.dfs import tick
from impetus.dfs.config import DfsSettings

log = logging.getLogger()
log.setLevel(logging.INFO)

FOLLOW_UP_SECONDS = 10.0
MARGIN_SECONDS = 15.0
MAX_TICKS = 6

_clients: dict[tuple[str | None, str], tick.Clients] = {}  # reused by warm invocations


def _remaining(context: Any) -> float:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() / 1000.0 if getter else 0.0


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    settings = DfsSettings.from_env()
    key = (settings.aws.endpoint_url, settings.aws.region)
    clients = _clients.get(key) or _clients.setdefault(key, tick.Clients.create(settings))
    results = []
    for _ in range(MAX_TICKS):
        result = tick.run(settings, clients)
        results.append(result.to_json())
        if not result.active or _remaining(context) < FOLLOW_UP_SECONDS + MARGIN_SECONDS:
            break
        time.sleep(FOLLOW_UP_SECONDS)
    return {"ticks": len(results), "last": results[-1]}
