"""The claims this node holds, from the claim to its completion.

A claim's jobs go out to workers; their outcomes come back one by one; once every job
of a claim has one, the claim is due and is completed (all outcomes in one write) on the
loop's next turn. A claim can also be handed back unrun (no verdict, no workers, the
agent stopping). The heartbeat thread renews the leases of every held claim, so the map
of held claims is shared with it and guarded by a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from impetus.core.claims import Claim
from impetus.core.exceptions import ClaimLost
from impetus.core.jobs import Outcome

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """A claim whose jobs are out with workers; completed once every job has an outcome."""

    claim: Claim
    lease: float
    pending: set[str]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    lost: bool = False  # a renewal found the lease gone: outcomes will be dropped


class Claims:
    """Held claims, their outcomes so far, and the ones due for completion."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self._held: dict[str, InFlight] = {}  # claim_id -> in flight
        self._lock = threading.Lock()
        self.due: list[InFlight] = []  # every job has an outcome: complete on the next turn

    def __len__(self) -> int:
        """Claims held (due ones included until completed)."""
        return len(self._held)

    @property
    def outstanding(self) -> bool:
        """Anything still held or still to report (what drain waits for)."""
        return bool(self._held or self.due)

    def in_flight(self) -> list[InFlight]:
        with self._lock:
            return list(self._held.values())

    def holds_stream(self, stream_id: str) -> bool:
        return any(f.claim.stream == stream_id for f in self.in_flight())

    # --- taking and settling ----------------------------------------------------------------
    def hold(self, claim: Claim, lease: float) -> InFlight:
        """Start tracking a fresh claim (the heartbeat renews it from now on)."""
        flight = InFlight(claim, lease, {job.id for job in claim.jobs})
        with self._lock:
            self._held[claim.claim_id] = flight
        return flight

    def settle(self, flight: InFlight, job_id: str, outcome: Outcome) -> None:
        """Keep a job's outcome; a claim whose every job has one is due for completion."""
        if job_id not in flight.pending:
            return
        flight.pending.discard(job_id)
        flight.outcomes[job_id] = outcome
        if not flight.pending:
            self.due.append(flight)

    def give_back(self, flight: InFlight) -> None:
        """Return a claim's jobs to the queue unrun and forget it."""
        try:
            self._queue.release(flight.claim)
        except Exception:
            log.exception("releasing claim %s failed", flight.claim.claim_id)
        self._forget(flight)

    def release_all(self) -> None:
        """End every claim still held (the agent is stopping): the outcomes it has are
        recorded (a job killed while it ran has one: a lost run), the jobs that never
        started go back unrun. Never the whole claim back unrun: a job that brings its
        node down must use up its ``max_attempts``, not bounce between nodes forever."""
        for flight in self.in_flight():
            log.info(
                "releasing claim %s of %s (%d jobs unstarted)",
                flight.claim.claim_id,
                flight.claim.stream,
                len(flight.pending),
            )
            if not flight.outcomes:
                self.give_back(flight)
                continue
            try:
                self._queue.complete(flight.claim, flight.outcomes, unrun=flight.pending)
            except Exception:
                log.exception("ending claim %s failed", flight.claim.claim_id)
            self._forget(flight)

    # --- completing -------------------------------------------------------------------------
    def complete_due(self) -> None:
        """Complete every due claim; one that fails but may still succeed waits a turn."""
        pending, self.due = self.due, []
        for flight in pending:
            if not self._complete(flight):
                self.due.append(flight)

    def _complete(self, flight: InFlight) -> bool:
        """Report a finished claim. False when it should be retried later."""
        claim = flight.claim
        if flight.lost:
            log.warning(
                "claim %s of %s was lost: dropping %d outcomes",
                claim.claim_id,
                claim.stream,
                len(flight.outcomes),
            )
            self._forget(flight)
            return True
        try:
            self._queue.complete(claim, flight.outcomes)
        except ClaimLost:
            log.warning(
                "claim %s of %s lost before completion: %d outcomes dropped",
                claim.claim_id,
                claim.stream,
                len(flight.outcomes),
            )
        except Exception:
            if time.time() < claim.expires:
                log.exception("completing claim %s failed; will retry", claim.claim_id)
                return False
            log.exception("completing claim %s failed; lease over, dropped", claim.claim_id)
        else:
            log.debug(
                "completed claim %s of %s: %d jobs",
                claim.claim_id,
                claim.stream,
                len(flight.outcomes),
            )
        self._forget(flight)
        return True

    # --- leases (heartbeat thread) ----------------------------------------------------------
    def renew(self) -> None:
        """Extend every held lease; a claim found lost keeps running but drops its outcomes."""
        for flight in self.in_flight():
            if flight.lost:
                continue
            try:
                self._queue.renew(flight.claim, flight.lease)
            except ClaimLost:
                flight.lost = True
                log.warning(
                    "lease of claim %s (%s) lost", flight.claim.claim_id, flight.claim.stream
                )
            except Exception:
                log.exception("renewing claim %s failed", flight.claim.claim_id)

    def _forget(self, flight: InFlight) -> None:
        with self._lock:
            self._held.pop(flight.claim.claim_id, None)
