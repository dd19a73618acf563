"""How the node stops: drain, then shut down.

Draining: claim nothing more (the loop stops dispatching), let the jobs in hand finish
and complete within the grace period; a second stop request cuts it short. Shutting
down: kill the workers still running jobs (each such job counts a lost run), end every
claim still held (outcomes recorded, unstarted jobs back unrun), stop the rest and the
heartbeat, flush the buffered counters and remove the node's item so ``impetus nodes``
and DFS stop seeing it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from impetus.storage.nodes import Nodes
from node_agent.claims import Claims
from node_agent.heartbeat import Heartbeat
from node_agent.pacing import MAX_WAIT
from node_agent.pool import Pool

log = logging.getLogger(__name__)


def drain(
    claims: Claims,
    heartbeat: Heartbeat,
    turn: Callable[[float], None],
    grace: float,
    force: threading.Event,
    cutoff: Callable[[], float | None] = lambda: None,
) -> None:
    """Run ``turn(timeout)`` (wait for workers, complete claims) until nothing is held,
    the grace period is over or ``force`` is set. A ``cutoff`` (monotonic; a Spot
    interruption notice, which may come while draining) replaces the grace period."""
    deadline = time.monotonic() + grace
    log.info("draining: %d claims in flight, grace %.0fs", len(claims), grace)
    try:
        heartbeat.report()  # DFS and `impetus nodes` see "draining" now, not a beat later
    except Exception:
        log.exception("could not mark the node draining")
    while claims.outstanding and not force.is_set():
        cut = cutoff()
        left = (deadline if cut is None else cut) - time.monotonic()
        if left <= 0:
            break
        turn(min(MAX_WAIT, left))


def shut_down(
    node_id: str,
    heartbeat: Heartbeat,
    claims: Claims,
    pool: Pool,
    counters: Any,
    nodes: Nodes,
) -> None:
    """Release unfinished claims, stop workers and the heartbeat, remove the node item."""
    heartbeat.stop()  # first: a later beat would re-create the item removed below
    pool.stop_running()
    claims.release_all()
    pool.stop_all()
    counters.flush()
    try:
        nodes.remove(node_id)
    except Exception:
        log.exception("could not delete the node item")
