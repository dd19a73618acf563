"""The node agent: wires its parts together and runs the main loop.

One thread (the caller's) runs the loop: refresh the tracked streams, claim for idle
worker slots, wait for worker reports or deaths, report outcomes as jobs end, retire idle
workers. A heartbeat thread writes the node item and renews the leases of claims in
flight. The agent never unpickles anything: payloads pass through to the workers, and
what workers send back is read as JSON only (frames.py).

Where the rest lives: claims held and completed (claims.py), claiming (dispatch.py),
worker processes (pool.py, handle.py, worker.py), the numbers (sizing.py, pacing.py),
the heartbeat (heartbeat.py), autoscaling and drain requests (scaling.py), stopping
(drain.py), which streams to follow (streams.py), lease reaping (reaper.py), what keeps
jobs from the node (isolation.py), what the agent does for workers (requests.py), Spot
interruption notices and rebalance recommendations (interruption.py).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import Any

from impetus.core import aws
from impetus.core.signing import KeyLoader
from impetus.storage.activestreams import idle_interval
from impetus.storage.nodes import Nodes, NodeStats
from impetus.storage.payloads import Payloads
from impetus.storage.queue import Queue
from node_agent import drain, interruption, isolation
from node_agent.claims import Claims
from node_agent.config import NodeSettings
from node_agent.dispatch import Dispatcher
from node_agent.gate import JobGate
from node_agent.heartbeat import Heartbeat
from node_agent.pacing import HOT_SECONDS, MAX_WAIT, Backoff
from node_agent.pool import Pool, WorkerSupport
from node_agent.reaper import Reaper
from node_agent.requests import WorkerRequests
from node_agent.scaling import Scaling
from node_agent.streams import StreamTracker

log = logging.getLogger(__name__)


class Agent:
    """One node agent. ``queue`` and ``client`` (DynamoDB) default to the real ones."""

    def __init__(self, settings: NodeSettings, queue: Any = None, client: Any = None) -> None:
        self.settings = settings.resolved()
        client = client if client is not None else aws.client("dynamodb", self.settings.aws)
        self.queue = queue if queue is not None else Queue(self.settings.aws, client=client)
        # Two counter updates per claim cycle become one per stream every 0.5 s.
        self.counters = self.queue.buffer_counters()
        self.nodes = Nodes.for_settings(client, self.settings.aws)
        self.tracker = StreamTracker(
            node_filter=self.settings.properties,
            node_mpps=self.settings.mpps,
            lease=self.settings.lease,
            min_lease=2 * self.settings.heartbeat_interval,
        )
        self._stop = threading.Event()
        self._force = threading.Event()
        self._next_poll = 0.0
        self._listing = Backoff(self.settings.poll_interval)
        self._view: Any = None  # the active-streams record, as this node last read it
        self._drains_seen: int | None = None  # the head's drain signal at the last listing
        self.reaper = Reaper(self.queue)
        self.gate = JobGate(KeyLoader(self.settings.aws).signer)
        self.claims = Claims(self.queue)
        self.pool = Pool(
            self.claims, self.settings.poll_interval, self._stop, self._worker_support()
        )
        # A lifecycle hook or a Spot notice stops the node without cutting its grace short
        # (request_stop would, coming after a SIGTERM).
        self.scaling = Scaling(self.node_id, self.settings.aws, self.nodes, self._stop.set)
        self.spot = interruption.SpotState()
        self.watcher = self._spot_watcher()
        self.heartbeat = Heartbeat(self.settings, self.scaling, self.claims, self._stop)
        self.dispatcher = Dispatcher(
            node_id=self.node_id,
            queue=self.queue,
            gate=self.gate,
            claims=self.claims,
            pool=self.pool,
            tracker=self.tracker,
            scaling=self.scaling,
            poll_interval=self.settings.poll_interval,
        )

    def _worker_support(self) -> WorkerSupport:
        """Workers start with a clean environment (no credentials) as the configured user;
        the agent answers their store and payload requests (isolation.py, requests.py)."""
        settings = self.settings
        identity = isolation.identity(os.environ, settings.worker_user, settings.worker_env)
        requests = WorkerRequests(
            store=lambda: self.queue.store, bucket=lambda: Payloads(settings.aws)
        )
        return WorkerSupport(identity=identity, requests=requests)

    def _spot_watcher(self) -> interruption.Watcher | None:
        if not self.settings.imds_url:
            return None
        return interruption.Watcher(
            interruption.Imds(self.settings.imds_url),
            self.settings.imds_poll,
            on_rebalance=self._on_rebalance,
            on_notice=self._on_notice,
        )

    def _on_rebalance(self) -> None:
        """(Watcher thread.) Claim nothing more; the loop hands queued jobs back."""
        self.scaling.request_drain("rebalance recommendation")
        self.spot.rebalance()

    def _on_notice(self, notice: interruption.Notice) -> None:
        """(Watcher thread.) Queued jobs go back now, running ones get until shortly
        before the stated time, then the agent stops."""
        self.scaling.request_drain(f"Spot interruption notice ({notice.action})")
        self.spot.interrupt(notice)
        self._stop.set()

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    @property
    def jobs_done(self) -> int:
        return self.pool.jobs_done

    # --- lifecycle --------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Begin draining (signal-safe). A second request skips the rest of the grace."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()

    def run(self) -> int:
        """Run until asked to stop, drain, shut down. Returns the exit code (0)."""
        log.info(
            "node %s started: mpps=%d filter=%s",
            self.node_id,
            self.settings.mpps,
            self.settings.properties or "{}",
        )
        self.gate.signer()  # fail now, not at the first job, when the key is unreadable
        self._update_stats()
        self.heartbeat.start()
        if self.watcher is not None:
            self.watcher.start()
        try:
            while not self._stop.is_set():
                self._tick()
            self._shed_if_asked()
            drain.drain(
                self.claims,
                self.heartbeat,
                self._drain_turn,
                self.settings.grace,
                self._force,
                cutoff=lambda: self.spot.cutoff,
            )
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            if self.spot.interrupted:  # what still runs goes back uncharged
                self.pool.abandon_running()
            drain.shut_down(
                self.node_id, self.heartbeat, self.claims, self.pool, self.counters, self.nodes
            )
            self.scaling.finish()  # a termination lifecycle hook may proceed now
        log.info("node %s stopped after %d jobs", self.node_id, self.jobs_done)
        return 0

    # --- the loop ---------------------------------------------------------------------------
    def _tick(self) -> None:
        self._shed_if_asked()
        now = time.monotonic()
        if now >= self._next_poll:
            self._refresh_streams(now)
            self._next_poll = now + self._listing_wait(now)
        self.dispatcher.dispatch()
        self._settle(self._wait_timeout())
        self.pool.retire_idle()
        self._update_stats()

    def _drain_turn(self, timeout: float) -> None:
        """A turn of the loop while draining: no listing, no claims, no retiring."""
        self._shed_if_asked()
        self._settle(timeout)
        self._update_stats()

    def _shed_if_asked(self) -> None:
        """After a Spot signal: hand back at once every job claimed but not started."""
        if self.spot.take_shed():
            count = self.pool.shed()
            log.info("node %s: %d queued jobs handed back", self.node_id, count)
            self.claims.flush()

    def _settle(self, timeout: float) -> None:
        """Wait for worker reports (or the next report due), report the outcomes in so far
        (node_agent/claims.py: each as its job ends, not when its claim ends), flush
        counters."""
        self.pool.wait(min(timeout, self.claims.next_flush()))
        self.claims.flush()
        self.counters.maybe_flush()

    def _wait_timeout(self) -> float:
        """Sleep until the next listing or until a dry stream may be claimed from again."""
        now = time.monotonic()
        wake = [self._next_poll]
        for run in self.pool.runs.values():
            if run.stream.waiting and run.wants_work():
                wake.append(run.dry_until)
        return max(0.0, min(MAX_WAIT, min(wake) - now))

    def _update_stats(self) -> None:
        workers = self.pool.workers()
        self.heartbeat.update(
            NodeStats(
                streams=sorted(self.pool.runs),
                workers_total=len(workers),
                workers_busy=sum(1 for w in workers if w.busy),
                jobs_done=self.pool.jobs_done,
                claims=len(self.claims),
            )
        )

    # --- streams ----------------------------------------------------------------------------
    def _refresh_streams(self, now: float) -> None:
        """Learn which streams have work from the active-streams record (one small read
        while nothing is marked, however many streams exist; impetus.storage.activestreams)
        and read only the marked streams' items."""
        try:
            if self._view is None:
                self._view = self.queue.active_view(self.node_id)
            listing = self.queue.list_active_streams(self._view)
        except Exception:
            log.exception("listing streams failed")
            return
        self._check_drain_signal()
        self.reaper.maybe_reap(listing, now)
        added, dropped = self.tracker.refresh(listing, now, self._holds_jobs)
        for sid in dropped:
            log.info("stream %s idle: no longer tracked", sid)
            self.pool.drop(sid)
        for sid in added:
            log.info("tracking stream %s", sid)
        self.pool.follow(self.tracker.streams, added)

    def _check_drain_signal(self) -> None:
        """DFS bumped the drain signal of this node's replica: if the request is for this
        node, beat now (the beat finds the mark and starts the drain) instead of at the
        next idle beat, up to a minute away. Nodes that beat often need no check."""
        head = self._view.last
        seen, self._drains_seen = self._drains_seen, head.drains if head else None
        if seen is None or head is None or head.drains == seen or self.scaling.draining:
            return
        if self.heartbeat.interval() <= self.settings.heartbeat_interval:
            return
        try:
            if self.nodes.drain_requested(self.node_id):
                self.heartbeat.wake()
        except Exception:
            log.exception("checking for a drain request failed")

    def _listing_wait(self, now: float) -> float:
        """List again soon while a stream that just had work shows none (a sequential
        client is about to send more), at ``poll_interval`` while streams are tracked,
        and while idle at the fleet's share of the head-read budget (with jitter, so
        the fleet's reads spread evenly: impetus.storage.activestreams.idle_interval)."""
        if any(
            not r.stream.waiting and now - r.stream.last_active < HOT_SECONDS
            for r in self.pool.runs.values()
        ):
            return self._listing.next_wait()
        self._listing.active()
        if self.pool.runs or len(self.claims):
            return self.settings.poll_interval
        head = self._view.last if self._view is not None else None
        interval = idle_interval(head.fleet if head else 0, self.settings.poll_interval)
        if interval <= self.settings.poll_interval:
            return interval
        return interval * random.uniform(0.5, 1.5)

    def _holds_jobs(self, stream_id: str) -> bool:
        """Whether a stream must stay tracked: this node still runs or holds its jobs."""
        return self.pool.holds_jobs(stream_id) or self.claims.holds_stream(stream_id)
