"""The DFS Lambda: runs on the EventBridge schedule and on the API's nudge.

Each invocation runs the decision loop (impetus.scaler.loop) under its lease: one tick
(impetus.scaler.tick), and while work is waiting or nodes are booting, draining or idle,
more ticks for as long as the invocation's remaining time allows: every 10 s, every 2 s
while a drain is in flight, and right when the next idle node reaches the idle
threshold (``tick.follow_up``), so a burst is followed closely although the schedule
fires once a minute. An invocation that finds another one's loop running leaves at once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from impetus.scaler import loop, tick
from impetus.scaler.config import DfsSettings

log = logging.getLogger()
log.setLevel(logging.INFO)

_clients: dict[tuple[str | None, str], tick.Clients] = {}  # reused by warm invocations


def _remaining(context: Any) -> float:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() / 1000.0 if getter else 0.0


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    settings = DfsSettings.from_env()
    key = (settings.aws.endpoint_url, settings.aws.region)
    clients = _clients.get(key) or _clients.setdefault(key, tick.Clients.create(settings))
    invocation = loop.Invocation(
        remaining=lambda: _remaining(context),
        sleep=lambda seconds: time.sleep(seconds),  # looked up per call: tests replace it
        clock=lambda: time.time(),
    )
    request_id = getattr(context, "aws_request_id", None)
    if isinstance(request_id, str) and request_id:
        invocation.holder = request_id  # the lease names the invocation in the logs
    return loop.run(settings, clients, invocation)
