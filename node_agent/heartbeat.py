"""The heartbeat: a daemon thread that reports the node in the nodes table (DFS and
``impetus nodes`` read it), lets the autoscaling side react (scale-in protection,
lifecycle checks) and renews the leases of every held claim.

Its cadence is what each state needs. While the node holds a claim, runs a job or
drains: every ``heartbeat_interval`` seconds (leases are renewed on each beat). While it
holds nothing and its idle state is on the item: every ``idle_heartbeat_interval``
seconds (no lease to renew; DFS only needs to know it is alive and idle since when).
Each item says when the next beat is due (impetus.storage.nodes), so readers judge
liveness by the node's own schedule. Leaving the quiet cadence writes at once
(:meth:`Heartbeat.update`): a claim, a drain or a stop is never a slow beat away.

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
    """Beats now, then at the cadence the node's state needs, until stopped."""

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
        self._wake = threading.Event()  # leave a quiet wait early (a state change)
        self._quiet = False  # the wait in progress is the idle one
        self._due_in = settings.heartbeat_interval  # what the last item said
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating; returns once a beat in progress has finished."""
        self._halt.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def update(self, stats: NodeStats) -> None:
        """New stats from the agent's loop; beat now if the node just left the quiet
        state (a claim or a running job, a drain or stop request) while the heartbeat
        waits at the idle cadence."""
        self.stats = stats
        if self._quiet and not self._idle_now():
            self._wake.set()

    def wake(self) -> None:
        """Beat now (a drain request DFS signalled: the beat picks it up)."""
        self._wake.set()

    def beat(self) -> None:
        """One heartbeat: report the node, then renew every lease in flight."""
        self.report()
        self._scaling.on_beat(holds_jobs=self._claims.outstanding)
        self._claims.renew()

    def _idle_now(self) -> bool:
        """Nothing held, nothing running, no drain or stop: the quiet cadence is enough."""
        return not (
            self.stats.busy
            or len(self._claims)
            or self._scaling.draining
            or self._stopping.is_set()
        )

    def interval(self) -> float:
        """Seconds until the next beat is due, for the node's state now."""
        busy = self._settings.heartbeat_interval
        return max(busy, self._settings.idle_heartbeat_interval) if self._idle_now() else busy

    def report(self) -> None:
        """Write the node's item now (also called when draining starts, so DFS sees it
        at once rather than a beat later)."""
        state = self._scaling.state(self._stopping.is_set(), bool(len(self._claims)))
        self._due_in = self.interval()
        self._scaling.write_item(
            NodeBeat(
                node_id=self._settings.node_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                started=self._started,
                at=time.time(),
                interval=self._due_in,
                grace=2 * self._settings.heartbeat_interval,
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
            wait = self._due_in  # never later than the item says the next beat is due
            self._quiet = wait > self._settings.heartbeat_interval
            if self._quiet and not self._idle_now():
                wait = 0.0  # the state changed while this beat was being written
            self._wake.wait(wait)
            self._wake.clear()
            self._quiet = False
            if self._halt.is_set():
                return
