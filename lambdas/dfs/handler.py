"""The DFS Lambda: runs on the EventBridge schedule and on the API's nudge.

Each invocation runs one tick (impetus.scaler.tick). While work is waiting or nodes are
booting, draining or idle, it keeps ticking for as long as the invocation's remaining
time allows (leaving ``MARGIN_SECONDS``): every 10 s, every 2 s while a drain is in
flight, and right when the next idle node reaches the idle threshold
(``tick.follow_up``), so a burst is followed closely although the schedule fires once a
minute.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from impetus.scaler import tick
from impetus.scaler.config import DfsSettings

log = logging.getLogger()
log.setLevel(logging.INFO)

MARGIN_SECONDS = 15.0
MAX_TICKS = 100  # a bound, never reached: the remaining time ends an invocation first

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
        wait = result.next_in
        if wait is None or _remaining(context) < wait + MARGIN_SECONDS:
            break
        time.sleep(wait)
    return {"ticks": len(results), "last": results[-1]}
