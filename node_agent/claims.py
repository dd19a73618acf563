"""The claims this node holds, from the claim to its last outcome.

A claim's jobs go out to workers; their outcomes come back one by one and are reported
as they come: each flush writes the outcomes in so far (the claim stays held for the
rest), so no job waits on a slower one claimed with it. Outcomes that end together share
a write: a flush waits ``FLUSH_WINDOW`` after the first of them. The flush that reports a
claim's last job ends the claim. Start marks (the results route shows which jobs run)
ride along; a job that ends within ``START_WINDOW`` of its start never needs one, so short
jobs cost no extra write. A claim can also be handed back unrun (no verdict, no workers,
the agent stopping), and single jobs not yet started can be handed back while the claim
stays held for the rest (a Spot interruption: node_agent/interruption.py); they go back
with their attempt unchanged at the next flush. The heartbeat thread renews the leases
of every held claim, so the map of held claims is shared with it and guarded by a lock.
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

FLUSH_WINDOW = 0.05  # s an outcome waits for others ending with it (one write for all)
START_WINDOW = 0.25  # s a start waits to be marked: a job ending sooner needs no mark
RETRY_WAIT = 0.5  # s before a failed report is tried again


@dataclass
class InFlight:
    """A claim whose jobs are out with workers; ended once every job has an outcome."""

    claim: Claim
    lease: float
    pending: set[str]  # jobs without an outcome yet
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # not reported yet
    reported: set[str] = field(default_factory=set)  # outcomes written by a flush
    starts: dict[str, float] = field(default_factory=dict)  # started, unmarked: monotonic
    unrun: set[str] = field(default_factory=set)  # handed back unrun, not reported yet
    since: float | None = None  # when the oldest unreported outcome came (monotonic)
    retry_at: float = 0.0  # a failed report waits until then (monotonic)
    lost: bool = False  # a renewal found the lease gone: outcomes will be dropped

    def flush_at(self) -> float:
        """When this claim's next report is due (monotonic; inf: nothing to report)."""
        if not self.pending or self.unrun:
            due = 0.0
        else:
            due = min(
                self.since + FLUSH_WINDOW if self.since is not None else float("inf"),
                min(self.starts.values(), default=float("inf")) + START_WINDOW,
            )
        return max(due, self.retry_at)


class Claims:
    """Held claims, their outcomes so far, and their reports."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self._held: dict[str, InFlight] = {}  # claim_id -> in flight
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Claims held (ended ones are forgotten)."""
        return len(self._held)

    @property
    def outstanding(self) -> bool:
        """Anything still held or still to report (what drain waits for)."""
        return bool(self._held)

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

    def started(self, flight: InFlight, job_id: str) -> None:
        """A worker began ``job_id``: mark it running at a later flush if it still runs."""
        if job_id in flight.pending:
            flight.starts[job_id] = time.monotonic()

    def settle(self, flight: InFlight, job_id: str, outcome: Outcome) -> None:
        """Keep a job's outcome for the next flush."""
        if job_id not in flight.pending:
            return
        flight.pending.discard(job_id)
        flight.starts.pop(job_id, None)
        flight.outcomes[job_id] = outcome
        if flight.since is None:
            flight.since = time.monotonic()

    def hand_back(self, flight: InFlight, job_ids: set[str]) -> None:
        """Send jobs of a held claim back unrun, attempt unchanged, at the next flush
        (they never started here, or the node goes away under them through no fault of
        theirs); the claim stays held for its other jobs."""
        ids = job_ids & flight.pending
        flight.pending -= ids
        for job_id in ids:
            flight.starts.pop(job_id, None)
        flight.unrun |= ids

    def give_back(self, flight: InFlight) -> None:
        """Return a claim's unreported jobs to the queue unrun and forget it."""
        try:
            self._queue.release(flight.claim, reported=flight.reported)
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
            if not flight.outcomes and not flight.reported:
                self.give_back(flight)
                continue
            try:
                self._queue.complete(
                    flight.claim,
                    flight.outcomes,
                    unrun=flight.pending | flight.unrun,
                    reported=flight.reported,
                )
            except Exception:
                log.exception("ending claim %s failed", flight.claim.claim_id)
            self._forget(flight)

    # --- reporting --------------------------------------------------------------------------
    def next_flush(self) -> float:
        """Seconds until a held claim has something due for a report (inf: none)."""
        due = min((f.flush_at() for f in self.in_flight()), default=float("inf"))
        return max(0.0, due - time.monotonic())

    def flush(self) -> None:
        """Report what is due: outcomes past their window (with every start mark held),
        start marks past theirs, and the end of every claim whose jobs all have one."""
        now = time.monotonic()
        for flight in self.in_flight():
            if flight.flush_at() <= now:
                self._flush(flight, now)

    def _flush(self, flight: InFlight, now: float) -> None:
        claim, final = flight.claim, not flight.pending
        if flight.lost:
            if flight.outcomes:
                log.warning(
                    "claim %s of %s was lost: dropping %d outcomes",
                    claim.claim_id, claim.stream, len(flight.outcomes),
                )  # fmt: skip
            flight.outcomes, flight.starts, flight.since, flight.unrun = {}, {}, None, set()
            if final:
                self._forget(flight)
            return
        try:
            if final:
                self._queue.complete(
                    claim, flight.outcomes, unrun=flight.unrun, reported=flight.reported
                )
            else:
                started = sorted(flight.starts)
                self._queue.report(
                    claim, flight.outcomes, started, reported=flight.reported, unrun=flight.unrun
                )
        except ClaimLost:
            log.warning(
                "claim %s of %s lost before its report: %d outcomes dropped",
                claim.claim_id, claim.stream, len(flight.outcomes),
            )  # fmt: skip
            flight.lost = True
            self._flush(flight, now)
            return
        except Exception:
            if time.time() < claim.expires:
                log.exception("reporting claim %s failed; will retry", claim.claim_id)
                flight.retry_at = now + RETRY_WAIT
                return
            log.exception("reporting claim %s failed; lease over, dropped", claim.claim_id)
            flight.lost = True
            self._flush(flight, now)
            return
        log.debug(
            "reported %d jobs of claim %s (%s)%s",
            len(flight.outcomes), claim.claim_id, claim.stream, ", ended" if final else "",
        )  # fmt: skip
        flight.reported.update(flight.outcomes)
        flight.reported.update(flight.unrun)
        flight.outcomes, flight.starts, flight.since, flight.unrun = {}, {}, None, set()
        if final:
            self._forget(flight)

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
