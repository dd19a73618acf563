"""The heartbeat: a daemon thread that, every ``heartbeat_interval`` seconds, reports the
node in the nodes table (DFS and ``impetus nodes`` read it), lets the autoscaling side
react (scale-in protection, lifecycle checks) and renews the leases of every held claim.

The report goes through :class:`~node_agent.scaling.Scaling`, which adds ``idle_since``
and keeps a drain request DFS left on the item; the item itself is laid out by
impetus.storage.nodes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from impetus.storage.nodes import NodeBeat, NodeStats
from node_agent.claims import Claims
from node_agent.config import NodeSettings
from node_agent.scaling import Scaling

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats now, then every ``heartbeat_interval`` seconds until stopped."""

    def __init__(
        self,
        settings: NodeSettings,
        scaling: Scaling,
        claims: Claims,
        stopping: threading.Event,
    ) -> None:
        self._settings = settings
        self._scaling = scaling
        self._claims = claims
        self._stopping = stopping  # the agent was told to stop: report draining
        self._started = time.time()
        # Replaced whole by the agent's loop, never mutated: this thread reads a consistent
        # snapshot without a lock.
        self.stats = NodeStats()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating; returns once a beat in progress has finished."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()

    def beat(self) -> None:
        """One heartbeat: report the node, then renew every lease in flight."""
        self.report()
        self._scaling.on_beat(holds_jobs=self._claims.outstanding)
        self._claims.renew()

    def report(self) -> None:
        """Write the node's item now (also called when draining starts, so DFS sees it
        at once rather than a beat later)."""
        state = self._scaling.state(self._stopping.is_set(), bool(len(self._claims)))
        self._scaling.write_item(
            NodeBeat(
                node_id=self._settings.node_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                started=self._started,
                at=time.time(),
                interval=self._settings.heartbeat_interval,
                properties=self._settings.properties,
                mpps=self._settings.mpps,
                stats=self.stats,
                state=state,
            )
        )

    def _run(self) -> None:
        while True:
            try:
                self.beat()
            except Exception:  # a failed beat must not end the heartbeats
                log.exception("heartbeat failed")
            if self._halt.wait(self._settings.heartbeat_interval):
                return
