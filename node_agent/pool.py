"""This node's worker processes, by stream: hand them jobs (starting workers as needed),
read their reports, replace the dead, retire the idle, stop them all at the end.

Outcomes go to :class:`~node_agent.claims.Claims`; the numbers (how many workers, how
many jobs each) come from node_agent/sizing.py; one worker process is a
:class:`~node_agent.handle.WorkerHandle`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from impetus.core.jobs import CRASH, ERROR, Outcome, system_error
from node_agent import sizing
from node_agent.claims import Claims, InFlight
from node_agent.handle import WorkerHandle
from node_agent.pacing import Backoff
from node_agent.sizing import BatchSizer
from node_agent.streams import TrackedStream

log = logging.getLogger(__name__)


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


def stop_workers(workers: list[WorkerHandle]) -> None:
    """Ask all to stop first, then wait for each: they wind down in parallel."""
    for worker in workers:
        worker.request_stop()
    for worker in workers:
        worker.stop()


def lost_outcome(code: int | None) -> Outcome:
    """The outcome of a job whose worker died under it."""
    now = time.time()
    return Outcome(
        ERROR,
        error=system_error("lost", f"worker exited with code {code}"),
        started=now,
        finished=now,
        failure=CRASH,
    )


class Pool:
    """The stream runs and their workers."""

    def __init__(self, claims: Claims, poll_interval: float, stopping: threading.Event) -> None:
        self.runs: dict[str, StreamRun] = {}
        self.jobs_done = 0
        self._claims = claims
        self._poll_interval = poll_interval
        self._stopping = stopping  # wakes an idle wait at once when the agent is told to stop

    def workers(self) -> list[WorkerHandle]:
        return [w for run in self.runs.values() for w in run.workers]

    def holds_jobs(self, stream_id: str) -> bool:
        run = self.runs.get(stream_id)
        return run is not None and any(w.busy for w in run.workers)

    # --- streams ----------------------------------------------------------------------------
    def follow(self, streams: dict[str, TrackedStream], added: Iterable[str]) -> None:
        """Start runs for newly tracked streams; point every run at its fresh description."""
        for sid in added:
            self.runs[sid] = StreamRun(streams[sid])
        for sid, run in self.runs.items():
            run.stream = streams[sid]
            if run.stream.waiting:
                run.dry_until = 0.0  # work appeared since the last dry claim: ask again now

    def drop(self, stream_id: str) -> None:
        """Stop following a stream (it holds no jobs here): its workers stop."""
        run = self.runs.pop(stream_id, None)
        if run is not None:
            stop_workers(run.workers)

    # --- handing out ------------------------------------------------------------------------
    def hand_out(
        self, run: StreamRun, flight: InFlight, jobs: list[dict[str, Any]], batch: int
    ) -> None:
        """Free workers (idle, then new ones) first; what they would not take at ``batch``
        each queues behind busy workers' current batches."""
        idle, roomy = run.idle, run.roomy()
        spawnable = run.stream.params.mpps - len(run.workers)
        queued = sizing.queued_share(len(jobs), len(idle), spawnable, batch, len(roomy))
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
        """Split jobs over idle workers and, when they would take too many, new ones."""
        idle = run.idle
        spawnable = run.stream.params.mpps - len(run.workers)
        sizes, spawn = sizing.split_jobs(len(jobs), len(idle), spawnable, batch)
        workers = idle[: len(sizes) - spawn]
        try:
            new = [WorkerHandle(run.stream.id) for _ in range(spawn)]
        except Exception:  # out of memory or processes: give the jobs back, retry later
            log.exception("stream %s: cannot start workers", run.stream.id)
            self._claims.give_back(flight)
            run.dry_until = time.monotonic() + self._poll_interval
            return
        for worker in new:
            log.info("stream %s: started %s (pid %s)", run.stream.id, worker.name, worker.pid)
        run.workers += new
        workers += new
        start = 0
        for worker, size in zip(workers, sizes, strict=True):
            worker.assign(jobs[start : start + size], run.stream.params.frequency, flight)
            start += size

    # --- reports ----------------------------------------------------------------------------
    def wait(self, timeout: float) -> None:
        """Block until a worker reports or dies (at most ``timeout`` s); handle what came."""
        workers = self.workers()
        if not workers:
            self._stopping.wait(timeout)
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
            self._claims.settle(flight, job_id, outcome)

    def _worker_died(self, worker: WorkerHandle) -> None:
        """Its running jobs are lost (a crash outcome); its queued batches go elsewhere."""
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
            self._record(worker, job_id, lost_outcome(code))
        worker.mark_idle()
        worker.close()
        run = self.runs.get(worker.stream_id)
        if run is not None and worker in run.workers:
            run.workers.remove(worker)  # a replacement is spawned lazily by the next claim
        for batch in unstarted:  # queued behind the lost job: never ran, so no attempt lost
            jobs = [job for job in batch.jobs if job["id"] in batch.pending]
            if run is not None and jobs:
                self.hand_out(run, batch.flight, jobs, run.sizer.size())
            else:  # no run to hand them to (not expected while it holds jobs): settle them
                for job in jobs:
                    self._claims.settle(batch.flight, job["id"], lost_outcome(code))

    # --- retiring ---------------------------------------------------------------------------
    def retire_idle(self) -> None:
        """Stop workers idle longer than their stream's ``idle_timeout``."""
        now = time.monotonic()
        for run in self.runs.values():
            old = [
                w
                for w in run.idle
                if sizing.should_retire(w.idle_since, now, run.stream.params.idle_timeout)
            ]
            if old:
                log.info("stream %s: retiring %d idle workers", run.stream.id, len(old))
                run.workers = [w for w in run.workers if w not in old]
                stop_workers(old)

    def stop_all(self) -> None:
        """Kill busy workers (call after their claims were given back), stop idle ones."""
        for run in self.runs.values():
            for worker in [w for w in run.workers if w.busy]:
                worker.kill()  # its claim was released: the job runs again elsewhere
            stop_workers([w for w in run.workers if not w.busy])
            run.workers = []
