"""Claiming: ask the queue for jobs for a stream's free worker slots, vet every job
through the gate (signature and code checks), hand the admitted ones to the pool.

A stream whose claims keep finding nothing is asked again later and later (its
``Backoff``); a claim that cannot be vetted now (signing key unreadable) goes back to
the queue unrun, so an outage delays jobs but never fails them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from impetus.core.exceptions import StreamNotFound
from impetus.core.signing import KeyUnavailable
from node_agent import sizing
from node_agent.claims import Claims
from node_agent.gate import JobGate
from node_agent.pacing import Backoff
from node_agent.pool import Pool, StreamRun
from node_agent.scaling import Scaling
from node_agent.streams import StreamTracker

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Dispatcher:
    """Claims for every tracked stream that has work and room for it."""

    node_id: str
    queue: Any  # impetus.storage.queue.Queue (only its claim is used here)
    gate: JobGate
    claims: Claims
    pool: Pool
    tracker: StreamTracker
    scaling: Scaling
    poll_interval: float  # the longest wait between claims on a dry stream

    def dispatch(self) -> None:
        """Claim for each stream that may be asked again; nothing while draining."""
        if self.scaling.draining:  # DFS or a lifecycle hook asked: claim nothing more
            return
        now = time.monotonic()
        for run in list(self.pool.runs.values()):
            if now >= run.dry_until and run.stream.waiting:
                self.claim_for(run, now)

    def claim_for(self, run: StreamRun, now: float) -> None:
        """One claim sized to the stream's free slots; its jobs vetted and handed out."""
        params = run.stream.params
        batch = run.sizer.size(params.frequency)
        want = sizing.claim_size(
            len(run.idle), len(run.workers), params.mpps, batch, len(run.roomy())
        )
        if want <= 0:
            return
        sid = run.stream.id
        try:
            claim = self.queue.claim(sid, self.node_id, max_jobs=want, lease=params.lease)
        except StreamNotFound:
            log.info("stream %s is gone", sid)
            run.stream.waiting = False
            claim = None
        except Exception:
            log.exception("claim on stream %s failed", sid)
            claim = None
        if run.backoff is None:
            run.backoff = Backoff(self.poll_interval)
        if claim is None or not claim.jobs:
            run.dry_until = now + run.backoff.next_wait()
            return
        run.backoff.active()
        log.debug("claimed %d/%d jobs of %s (claim %s)", len(claim.jobs), want, sid, claim.claim_id)
        self.tracker.touch(sid, now)
        self.scaling.holding()
        flight = self.claims.hold(claim, params.lease)
        try:
            verdicts = [(job, self.gate.check(job)) for job in claim.jobs]
        except KeyUnavailable as exc:  # no verdict during an outage: the jobs wait, unrun
            log.warning("stream %s: %s; claim given back", sid, exc)
            self.claims.give_back(flight)
            run.dry_until = now + run.backoff.next_wait()
            return
        admitted = []
        for job, refused in verdicts:
            if refused is None:
                admitted.append(job)
            else:
                log.warning("stream %s: job %s refused: %s", sid, job.id, refused.error["error"])
                self.claims.settle(flight, job.id, refused)
        if admitted:
            self.pool.hand_out(run, flight, [dataclasses.asdict(job) for job in admitted], batch)
