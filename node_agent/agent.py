"""The node agent: claims jobs for its workers, reports outcomes, heartbeats, drains.

One thread (the caller's) runs the loop: refresh the tracked streams, claim for idle
worker slots, wait for worker reports or deaths, complete finished claims, retire idle
workers. A heartbeat thread writes the node item and renews the leases of claims in
flight. The agent never unpickles anything: payloads pass through to the workers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from impetus.core import aws
from impetus.core.exceptions import ClaimLost, StreamNotFound
from impetus.core.jobs import CRASH, ERROR, Outcome, system_error
from impetus.core.signing import KeyLoader, KeyUnavailable
from impetus.storage.queue import Claim, Queue
from node_agent import pool
from node_agent.batching import BatchSizer
from node_agent.config import NodeSettings
from node_agent.gate import JobGate
from node_agent.handle import WorkerHandle
from node_agent.nodes import Heartbeat, NodeTable, node_item
from node_agent.pacing import HOT_SECONDS, Backoff
from node_agent.reaper import Reaper
from node_agent.scaling import Scaling
from node_agent.streams import StreamTracker, TrackedStream

log = logging.getLogger(__name__)

MAX_WAIT = 0.2  # longest block in the loop: bounds how late a stop request is seen


@dataclass
class InFlight:
    """A claim whose jobs are out with workers; completed once every job has an outcome."""

    claim: Claim
    lease: float
    pending: set[str]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    lost: bool = False  # a renewal found the lease gone: outcomes will be dropped


@dataclass
class StreamRun:
    """This node's runtime state for one tracked stream."""

    stream: TrackedStream
    workers: list[WorkerHandle] = field(default_factory=list)
    sizer: BatchSizer = field(default_factory=BatchSizer)
    dry_until: float = 0.0  # the last claim found nothing: do not ask again before this
    backoff: Backoff | None = None  # pacing of claims that keep finding nothing

    @property
    def idle(self) -> list[WorkerHandle]:
        return [w for w in self.workers if not w.busy]

    def roomy(self) -> list[WorkerHandle]:
        """Busy workers that should already hold their next batch (short jobs only)."""
        if not self.sizer.queue_ahead(self.stream.params.frequency):
            return []
        return [w for w in self.workers if w.has_room]

    def wants_work(self) -> bool:
        return bool(self.idle or len(self.workers) < self.stream.params.mpps or self.roomy())


class Agent:
    def __init__(self, settings: NodeSettings, queue: Any = None, client: Any = None) -> None:
        self.settings = settings.resolved()
        client = client if client is not None else aws.client("dynamodb", self.settings.aws)
        self.queue = queue if queue is not None else Queue(self.settings.aws, client=client)
        # Two counter updates per claim cycle become one per stream every 0.5 s.
        self.counters = self.queue.buffer_counters()
        self.nodes = NodeTable(client, self.settings.aws.table_prefix)
        self.tracker = StreamTracker(
            node_filter=self.settings.properties,
            node_mpps=self.settings.mpps,
            lease=self.settings.lease,
            min_lease=2 * self.settings.heartbeat_interval,
        )
        self.runs: dict[str, StreamRun] = {}
        self.claims: dict[str, InFlight] = {}  # claim_id -> in flight (shared with heartbeat)
        self._claims_lock = threading.Lock()
        self._to_complete: list[InFlight] = []
        self._stop = threading.Event()
        self._force = threading.Event()
        self._started = time.time()
        self._next_poll = 0.0
        self._listing = Backoff(self.settings.poll_interval)
        self.jobs_done = 0
        self._stats: dict[str, Any] = {}
        self.reaper = Reaper(self.queue)
        self.gate = JobGate(KeyLoader(self.settings.aws).signer)
        self._heartbeat = Heartbeat(self.settings.heartbeat_interval, self.beat)
        self.scaling = Scaling(self.node_id, self.settings.aws, client, self.request_stop)

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    # --- lifecycle --------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Begin draining (signal-safe). A second request skips the rest of the grace."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()

    def run(self) -> int:
        log.info(
            "node %s started: mpps=%d filter=%s",
            self.node_id,
            self.settings.mpps,
            self.settings.properties or "{}",
        )
        self.gate.signer()  # fail now, not at the first job, when the key is unreadable
        self._update_stats()
        self._heartbeat.start()
        try:
            while not self._stop.is_set():
                self._tick()
            self._drain()
        finally:
            self._shutdown()
            self.scaling.finish()  # a termination lifecycle hook may proceed now
        log.info("node %s stopped after %d jobs", self.node_id, self.jobs_done)
        return 0

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_poll:
            self._refresh_streams(now)
            self._next_poll = now + self._listing_wait(now)
        self._dispatch()
        self._wait(self._wait_timeout())
        self._flush_completions()
        self.counters.maybe_flush()
        self._retire_idle()
        self._update_stats()

    def _wait_timeout(self) -> float:
        now = time.monotonic()
        wake = [self._next_poll]
        for run in self.runs.values():
            if run.stream.waiting and run.wants_work():
                wake.append(run.dry_until)  # when this stream may be claimed from again
        return max(0.0, min(MAX_WAIT, min(wake) - now))

    # --- streams ----------------------------------------------------------------------------
    def _refresh_streams(self, now: float) -> None:
        try:
            listing = self.queue.list_streams()
        except Exception:
            log.exception("listing streams failed")
            return
        self.reaper.maybe_reap(listing, now)
        added, dropped = self.tracker.refresh(listing, now, self._holds_jobs)
        for sid in added:
            log.info("tracking stream %s", sid)
            self.runs[sid] = StreamRun(self.tracker.streams[sid])
        for sid in dropped:
            log.info("stream %s idle: no longer tracked", sid)
            run = self.runs.pop(sid, None)
            if run is not None:
                self._stop_workers(run.workers)
        for sid, run in self.runs.items():
            run.stream = self.tracker.streams[sid]
            if run.stream.waiting:
                run.dry_until = 0.0

    def _listing_wait(self, now: float) -> float:
        """List again soon while a stream that just had work shows none (a sequential
        client is about to send more), at ``poll_interval`` otherwise."""
        if any(
            not r.stream.waiting and now - r.stream.last_active < HOT_SECONDS
            for r in self.runs.values()
        ):
            return self._listing.next_wait()
        self._listing.active()
        return self.settings.poll_interval

    def _holds_jobs(self, stream_id: str) -> bool:
        run = self.runs.get(stream_id)
        if run is not None and any(w.busy for w in run.workers):
            return True
        return any(f.claim.stream == stream_id for f in self._in_flight())

    # --- claiming ---------------------------------------------------------------------------
    def _dispatch(self) -> None:
        if self.scaling.draining:  # DFS or a lifecycle hook asked: claim nothing more
            return
        now = time.monotonic()
        for run in list(self.runs.values()):
            if now >= run.dry_until and run.stream.waiting:
                self._claim_for(run, now)

    def _claim_for(self, run: StreamRun, now: float) -> None:
        params = run.stream.params
        batch = run.sizer.size(params.frequency)
        want = pool.claim_size(
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
            run.backoff = Backoff(self.settings.poll_interval)
        if claim is None or not claim.jobs:
            run.dry_until = now + run.backoff.next_wait()
            return
        run.backoff.active()
        log.debug("claimed %d/%d jobs of %s (claim %s)", len(claim.jobs), want, sid, claim.claim_id)
        self.tracker.touch(sid, now)
        self.scaling.holding()
        flight = InFlight(claim, params.lease, {job.id for job in claim.jobs})
        with self._claims_lock:
            self.claims[claim.claim_id] = flight
        try:
            verdicts = [(job, self.gate.check(job)) for job in claim.jobs]
        except KeyUnavailable as exc:  # no verdict during an outage: the jobs wait, unrun
            log.warning("stream %s: %s; claim given back", sid, exc)
            self._give_back(flight)
            run.dry_until = now + run.backoff.next_wait()
            return
        admitted = []
        for job, refused in verdicts:
            if refused is None:
                admitted.append(job)
            else:
                log.warning("stream %s: job %s refused: %s", sid, job.id, refused.error["error"])
                self._settle_job(flight, job.id, refused)
        if admitted:
            self._hand_out(run, flight, [dataclasses.asdict(job) for job in admitted], batch)

    def _hand_out(
        self, run: StreamRun, flight: InFlight, jobs: list[dict[str, Any]], batch: int
    ) -> None:
        """Free workers (idle, then new ones) first; what they would not take at ``batch``
        each queues behind busy workers' current batches."""
        idle, roomy = run.idle, run.roomy()
        spawnable = run.stream.params.mpps - len(run.workers)
        queued = pool.queued_share(len(jobs), len(idle), spawnable, batch, len(roomy))
        now = len(jobs) - sum(queued)
        start = now
        for worker, size in zip(roomy, queued, strict=False):
            worker.assign(jobs[start : start + size], run.stream.params.frequency, flight)
            start += size
        if queued:
            log.debug("stream %s: queued %d jobs behind busy workers", run.stream.id, sum(queued))
        if now:
            self._start(run, flight, jobs[:now], batch)

    def _start(
        self, run: StreamRun, flight: InFlight, jobs: list[dict[str, Any]], batch: int
    ) -> None:
        idle = run.idle
        spawnable = run.stream.params.mpps - len(run.workers)
        sizes, spawn = pool.split_jobs(len(jobs), len(idle), spawnable, batch)
        workers = idle[: len(sizes) - spawn]
        try:
            new = [WorkerHandle(run.stream.id) for _ in range(spawn)]
        except Exception:  # out of memory or processes: give the jobs back, retry later
            log.exception("stream %s: cannot start workers", run.stream.id)
            self._give_back(flight)
            run.dry_until = time.monotonic() + self.settings.poll_interval
            return
        for worker in new:
            log.info("stream %s: started %s (pid %s)", run.stream.id, worker.name, worker.pid)
        run.workers += new
        workers += new
        start = 0
        for worker, size in zip(workers, sizes, strict=True):
            worker.assign(jobs[start : start + size], run.stream.params.frequency, flight)
            start += size

    def _give_back(self, flight: InFlight) -> None:
        try:
            self.queue.release(flight.claim)
        except Exception:
            log.exception("releasing claim %s failed", flight.claim.claim_id)
        self._forget(flight)

    # --- worker reports ---------------------------------------------------------------------
    def _workers(self) -> list[WorkerHandle]:
        return [w for run in self.runs.values() for w in run.workers]

    def _wait(self, timeout: float) -> None:
        workers = self._workers()
        if not workers:
            self._stop.wait(timeout)
            return
        by_object: dict[Any, WorkerHandle] = {}
        for worker in workers:
            by_object[worker.conn] = worker
            by_object[worker.sentinel] = worker
        ready = wait(list(by_object), timeout)
        for worker in {id(by_object[obj]): by_object[obj] for obj in ready}.values():
            self._read(worker)

    def _read(self, worker: WorkerHandle) -> None:
        messages, closed = worker.messages()
        for message in messages:
            if "job" in message:
                self._record(worker, message["job"], Outcome(**message["outcome"]))
            elif message.get("idle"):
                worker.batch_done()
        if closed or not worker.process.is_alive():
            self._worker_died(worker)

    def _record(self, worker: WorkerHandle, job_id: str, outcome: Outcome) -> None:
        flight: InFlight | None = worker.take(job_id)
        self.jobs_done += 1
        run = self.runs.get(worker.stream_id)
        if run is not None and outcome.finished >= outcome.started > 0:
            run.sizer.observe(outcome.finished - outcome.started)
        if flight is not None:
            self._settle_job(flight, job_id, outcome)

    def _settle_job(self, flight: InFlight, job_id: str, outcome: Outcome) -> None:
        """Keep a job's outcome; a claim whose every job has one is due for completion."""
        if job_id not in flight.pending:
            return
        flight.pending.discard(job_id)
        flight.outcomes[job_id] = outcome
        if not flight.pending:
            self._to_complete.append(flight)

    def _worker_died(self, worker: WorkerHandle) -> None:
        worker.process.join(1.0)
        code = worker.exitcode
        lost = worker.running()
        unstarted = worker.unstarted()
        log.warning(
            "stream %s: %s (pid %s) exited with code %s holding %d jobs",
            worker.stream_id,
            worker.name,
            worker.pid,
            code,
            len(lost),
        )
        for job_id in lost:
            self._record(worker, job_id, self._lost(code))
        worker.mark_idle()
        worker.close()
        run = self.runs.get(worker.stream_id)
        if run is not None and worker in run.workers:
            run.workers.remove(worker)  # a replacement is spawned lazily by the next claim
        for batch in unstarted:  # queued behind the lost job: never ran, so no attempt lost
            jobs = [job for job in batch.jobs if job["id"] in batch.pending]
            if run is not None and jobs:
                self._hand_out(run, batch.flight, jobs, run.sizer.size())
            else:  # no run to hand them to (not expected while it holds jobs): settle them
                for job in jobs:
                    self._settle_job(batch.flight, job["id"], self._lost(code))

    @staticmethod
    def _lost(code: int | None) -> Outcome:
        now = time.time()
        return Outcome(
            ERROR,
            error=system_error("lost", f"worker exited with code {code}"),
            started=now,
            finished=now,
            failure=CRASH,
        )

    # --- completing -------------------------------------------------------------------------
    def _in_flight(self) -> list[InFlight]:
        with self._claims_lock:
            return list(self.claims.values())

    def _forget(self, flight: InFlight) -> None:
        with self._claims_lock:
            self.claims.pop(flight.claim.claim_id, None)

    def _flush_completions(self) -> None:
        pending, self._to_complete = self._to_complete, []
        for flight in pending:
            if not self._complete(flight):
                self._to_complete.append(flight)  # try again on the next turn

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
            self.queue.complete(claim, flight.outcomes)
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

    # --- retiring ---------------------------------------------------------------------------
    def _retire_idle(self) -> None:
        now = time.monotonic()
        for run in self.runs.values():
            old = [
                w
                for w in run.idle
                if pool.should_retire(w.idle_since, now, run.stream.params.timeout)
            ]
            if old:
                log.info("stream %s: retiring %d idle workers", run.stream.id, len(old))
                run.workers = [w for w in run.workers if w not in old]
                self._stop_workers(old)

    @staticmethod
    def _stop_workers(workers: list[WorkerHandle]) -> None:
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            worker.stop()

    # --- heartbeat --------------------------------------------------------------------------
    def _update_stats(self) -> None:
        workers = self._workers()
        self._stats = {  # replaced whole: the heartbeat thread reads a consistent snapshot
            "streams": sorted(self.runs),
            "workers_total": len(workers),
            "workers_busy": sum(1 for w in workers if w.busy),
            "jobs_done": self.jobs_done,
            "claims": len(self.claims),
        }

    def beat(self) -> None:
        """One heartbeat: write the node item, renew every lease in flight."""
        self._write_node_item()
        self.scaling.on_beat(holds_jobs=bool(self.claims or self._to_complete))
        for flight in self._in_flight():
            if flight.lost:
                continue
            try:
                self.queue.renew(flight.claim, flight.lease)
            except ClaimLost:
                flight.lost = True
                log.warning(
                    "lease of claim %s (%s) lost", flight.claim.claim_id, flight.claim.stream
                )
            except Exception:
                log.exception("renewing claim %s failed", flight.claim.claim_id)

    def _write_node_item(self) -> None:
        self.scaling.write_item(
            node_item(
                node_id=self.node_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                started=self._started,
                now=time.time(),
                interval=self.settings.heartbeat_interval,
                properties=self.settings.properties,
                mpps=self.settings.mpps,
                stats=self._stats,
                state=self.scaling.state(self._stop.is_set(), bool(self.claims)),
            )
        )

    # --- draining ---------------------------------------------------------------------------
    def _drain(self) -> None:
        """Stop claiming; let running jobs finish within the grace period."""
        deadline = time.monotonic() + self.settings.grace
        log.info(
            "draining: %d claims in flight, grace %.0fs", len(self.claims), self.settings.grace
        )
        try:
            self._write_node_item()
        except Exception:
            log.exception("could not mark the node draining")
        while (self.claims or self._to_complete) and not self._force.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wait(min(MAX_WAIT, left))
            self._flush_completions()
            self.counters.maybe_flush()
            self._update_stats()

    def _shutdown(self) -> None:
        """Release unfinished claims, stop workers and the heartbeat, remove the node item."""
        self._heartbeat.stop()
        for flight in self._in_flight():
            log.info(
                "releasing claim %s of %s (%d jobs unfinished)",
                flight.claim.claim_id,
                flight.claim.stream,
                len(flight.pending),
            )
            self._give_back(flight)
        for run in self.runs.values():
            busy = [w for w in run.workers if w.busy]
            for worker in busy:
                worker.kill()  # its claim was released: the job runs again elsewhere
            self._stop_workers([w for w in run.workers if not w.busy])
            run.workers = []
        self.counters.flush()
        try:
            self.nodes.delete(self.node_id)
        except Exception:
            log.exception("could not delete the node item")
