"""One DFS invocation: take the decision loop's lease, tick while the fleet is active,
give the lease back.

One decision loop at a time: a second loop deciding from its own copy of the policy's
memory could drain or terminate twice. Reserving a concurrency of 1 for the function
would ensure that, but fails to deploy on a new account (CloudFormation refuses a
reservation that leaves the account less than 10 unreserved, and new accounts have a
quota of 10 or 50: https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
So the loop holds a lease in the decisions table (impetus.storage.decisions.LoopLease)
until a little past its invocation's deadline, renewing it before each tick. An
invocation that finds a live lease knocks and leaves at once, making no decision; the
holder ticks once more before it lets go when someone knocked, so a nudge is not lost.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from impetus.scaler import tick
from impetus.scaler.config import DfsSettings
from impetus.storage.decisions import LoopLease
from impetus.storage.tables import DECISIONS, table_names_for

log = logging.getLogger(__name__)

MARGIN_SECONDS = 15.0  # left of an invocation when the loop stops ticking
LEASE_MARGIN = 10.0  # the lease outlives its holder's deadline by this much
DEFAULT_LEASE = 60.0  # without a deadline (a call outside Lambda): the DFS timeout + margin
MAX_TICKS = 100  # a bound, never reached: the remaining time ends an invocation first


@dataclass
class Invocation:
    """What the loop needs from its runtime (the Lambda context, or a test's clock)."""

    remaining: Callable[[], float]  # seconds left (0: unknown, one tick only)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    holder: str = field(default_factory=lambda: uuid.uuid4().hex)

    def lease_until(self) -> float:
        left = self.remaining()
        return self.clock() + (left + LEASE_MARGIN if left > 0 else DEFAULT_LEASE)


def run(settings: DfsSettings, clients: tick.Clients, invocation: Invocation) -> dict[str, Any]:
    """Tick under the lease while worth it; ``{"ticks": n, "last": ..., "left": why}``."""
    table = table_names_for(settings.aws)[DECISIONS]
    lease = LoopLease(clients.ddb, table, invocation.holder)
    if not lease.acquire(invocation.clock(), invocation.lease_until()):
        other = lease.holder_of()
        knocked = bool(other) and lease.knock(str(other.get("holder")))
        log.info(
            "another DFS invocation (%s) holds the decision loop until %s: leaving%s",
            other.get("holder"),
            other.get("expires"),
            " (knocked)" if knocked else "",
        )
        return {"ticks": 0, "last": None, "left": "lease held by another invocation"}
    results: list[dict[str, Any]] = []
    try:
        results = _tick_while_active(settings, clients, invocation, lease)
    finally:
        if not lease.release():  # someone knocked: their tick is due, if time allows
            if invocation.remaining() > MARGIN_SECONDS:
                results.append(tick.run(settings, clients, now=invocation.clock()).to_json())
            lease.release()
    return {"ticks": len(results), "last": results[-1] if results else None, "left": "done"}


def _tick_while_active(
    settings: DfsSettings, clients: tick.Clients, invocation: Invocation, lease: LoopLease
) -> list[dict[str, Any]]:
    results = []
    for _ in range(MAX_TICKS):
        if results and not lease.acquire(invocation.clock(), invocation.lease_until()):
            log.warning("the decision loop's lease was lost: stopping")
            break
        result = tick.run(settings, clients, now=invocation.clock())
        results.append(result.to_json())
        wait = result.next_in
        if wait is None or invocation.remaining() < wait + MARGIN_SECONDS:
            break
        invocation.sleep(wait)
    return results
