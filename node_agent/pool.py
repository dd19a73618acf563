"""This node's worker processes, by stream: hand them jobs (starting workers as needed),
read their reports, answer their requests, replace the dead, kill the overdue, retire the
idle, stop them all at the end.

Outcomes go to :class:`~node_agent.claims.Claims`; the numbers (how many workers, how
many jobs each) come from node_agent/sizing.py; one worker process is a
:class:`~node_agent.handle.WorkerHandle`. A worker is untrusted: a malformed report, an
exit or a job past its ``time_limit`` ends the running job as an error that counts as a
lost run (``max_attempts``), and the worker is replaced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from impetus.core.jobs import CRASH, ERROR, Outcome, system_error
from node_agent import cloudlogs, sizing
from node_agent.claims import Claims, InFlight
from node_agent.handle import WorkerHandle
from node_agent.isolation import WorkerIdentity
from node_agent.pacing import Backoff
from node_agent.requests import WorkerRequests
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

    def time_limit(self, job: dict[str, Any] | None) -> float | None:
        """A job's own limit, else its stream's."""
        own = (job or {}).get("time_limit")
        return float(own) if own else self.stream.params.time_limit


def stop_workers(workers: list[WorkerHandle]) -> None:
    """Ask all to stop first, then wait for each: they wind down in parallel."""
    for worker in workers:
        worker.request_stop()
    for worker in workers:
        worker.stop()


def failed_run(kind: str, message: str) -> Outcome:
    """The outcome of a job whose run ended outside its code: it counts as a lost run."""
    now = time.time()
    return Outcome(
        ERROR, error=system_error(kind, message), started=now, finished=now, failure=CRASH
    )


def lost_outcome(code: int | None) -> Outcome:
    """The outcome of a job whose worker died under it."""
    return failed_run("lost", f"worker exited with code {code}")


@dataclass
class WorkerSupport:
    """What every worker of this agent gets: who it runs as, who answers its requests,
    where its jobs' output is shipped."""

    identity: WorkerIdentity
    requests: WorkerRequests
    logs: Callable[[str], Any] = field(default=cloudlogs.shipper_for)


class Pool:
    """The stream runs and their workers."""

    def __init__(
        self,
        claims: Claims,
        poll_interval: float,
        stopping: threading.Event,
        support: WorkerSupport,
    ) -> None:
        self.runs: dict[str, StreamRun] = {}
        self.jobs_done = 0
        self._support = support
        self._logs: dict[str, Any] = {}  # worker name -> its output shipper
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
            new = [WorkerHandle(run.stream.id, self._support.identity) for _ in range(spawn)]
        except Exception:  # out of memory or processes: give the jobs back, retry later
            log.exception("stream %s: cannot start workers", run.stream.id)
            self._claims.give_back(flight)
            run.dry_until = time.monotonic() + self._poll_interval
            return
        used = {w.slot for w in run.workers}
        for worker in new:
            worker.slot = min(set(range(len(used) + 1)) - used)
            used.add(worker.slot)
            log.info("stream %s: started %s (pid %s)", run.stream.id, worker.name, worker.pid)
        run.workers += new
        workers += new
        start = 0
        for worker, size in zip(workers, sizes, strict=True):
            worker.assign(jobs[start : start + size], run.stream.params.frequency, flight)
            start += size

    # --- reports ----------------------------------------------------------------------------
    def wait(self, timeout: float) -> None:
        """Block until a worker reports or dies (at most ``timeout`` s, less when a job's
        time limit falls earlier); handle what came, kill what is overdue."""
        workers = self.workers()
        if not workers:
            self._stopping.wait(timeout)
            return
        by_object: dict[Any, WorkerHandle] = {}
        for worker in workers:
            by_object[worker.conn] = worker
            by_object[worker.sentinel] = worker
        ready = wait(list(by_object), min(timeout, self._next_deadline()))
        for worker in {id(by_object[obj]): by_object[obj] for obj in ready}.values():
            self._read(worker)
        self.enforce_limits()

    def _read(self, worker: WorkerHandle) -> None:
        reading = worker.read()
        for report in reading.reports:
            if report.type == "started" and report.job in worker.skipped:
                # It began a job just as the agent took it back (the shed crossed its
                # "started" in the pipes): the job is queued again, so stop this run.
                self._abandon(worker, f"it started {report.job} after it was handed back")
                return
            why = self._handle(worker, report)
            if why:
                reading.malformed = why
                break
        if reading.malformed:
            self._kill(worker, "worker", f"the worker broke protocol: {reading.malformed}")
        elif reading.closed or not worker.alive():
            self._worker_died(worker)
        elif not worker.busy:
            self._flush_logs(worker)

    def _handle(self, worker: WorkerHandle, report: Any) -> str:
        """Act on one report; a non-empty answer says why it is not acceptable."""
        if report.type == "started":
            if not worker.start(report.job):
                return f"started {report.job[:40]!r} out of turn"
            self._claims.started(worker.assignments[0].flight, report.job)
        elif report.type == "outcome":
            if report.job != worker.current:
                return f"outcome for {report.job[:40]!r}, which it is not running"
            self._record(worker, report.job, report.outcome)
        elif report.type == "request":
            worker.send(self._support.requests.answer(worker, report))
        elif report.type == "idle":
            if not worker.assignments or worker.assignments[0].pending:
                return "idle before its batch ended"
            worker.batch_done()
        return ""

    def _record(self, worker: WorkerHandle, job_id: str, outcome: Outcome) -> None:
        flight: InFlight | None = worker.take(job_id)
        outcome.worker = worker.slot  # the agent's own slot number, not the worker's word
        self.jobs_done += 1
        run = self.runs.get(worker.stream_id)
        if run is not None and outcome.finished >= outcome.started > 0:
            run.sizer.observe(outcome.finished - outcome.started)
        self._shipper(worker).add(worker.stream_id, job_id, outcome.output, outcome.finished)
        if flight is not None:
            self._claims.settle(flight, job_id, outcome)

    # --- limits -----------------------------------------------------------------------------
    def _deadline(self, worker: WorkerHandle) -> float | None:
        run = self.runs.get(worker.stream_id)
        if worker.current is None or run is None:
            return None
        limit = run.time_limit(worker.job(worker.current))
        return None if limit is None else worker.current_since + limit

    def _next_deadline(self) -> float:
        """Seconds until the earliest running job's time limit (inf when none has one)."""
        deadlines = [d for w in self.workers() if (d := self._deadline(w)) is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else float("inf")

    def enforce_limits(self) -> None:
        """Kill workers whose job overran its time limit or whose claim's lease was lost."""
        now = time.monotonic()
        for worker in self.workers():
            deadline = self._deadline(worker)
            if deadline is not None and now >= deadline:
                limit = deadline - worker.current_since
                message = f"the job ran longer than its time_limit of {limit:g} s"
                self._kill(worker, "timeout", message)
            elif worker.assignments and worker.current and worker.assignments[0].flight.lost:
                self._kill(worker, "lost", "the claim's lease was lost while the job ran")

    def _kill(self, worker: WorkerHandle, kind: str, message: str) -> None:
        """End a worker: its running job gets ``kind: message`` (a lost run)."""
        log.warning(
            "stream %s: killing %s (pid %s) running %s: %s",
            worker.stream_id, worker.name, worker.pid, worker.current, message,
        )  # fmt: skip
        self._worker_died(worker, failed_run(kind, message))

    def _worker_died(self, worker: WorkerHandle, outcome: Outcome | None = None) -> None:
        """Its running job is lost (a crash outcome); what never started goes elsewhere."""
        worker.kill()
        running, unstarted = worker.current, worker.unstarted()
        if outcome is None:
            log.warning(
                "stream %s: %s (pid %s) exited with code %s running %s",
                worker.stream_id, worker.name, worker.pid, worker.exitcode, running,
            )  # fmt: skip
            outcome = lost_outcome(worker.exitcode)
        if running is not None:
            self._record(worker, running, outcome)
        self._flush_logs(worker)
        worker.mark_idle()
        run = self.runs.get(worker.stream_id)
        if run is not None and worker in run.workers:
            run.workers.remove(worker)  # a replacement is spawned lazily by the next claim
        for batch in unstarted:  # never ran, so no run lost
            jobs = [job for job in batch.jobs if job["id"] in batch.pending]
            if run is not None and jobs and not batch.flight.lost:
                self.hand_out(run, batch.flight, jobs, run.sizer.size())
            else:  # nowhere to go (or the lease is gone): settle them, they are dropped
                for job in jobs:
                    self._claims.settle(batch.flight, job["id"], lost_outcome(worker.exitcode))

    # --- output -----------------------------------------------------------------------------
    def _shipper(self, worker: WorkerHandle) -> Any:
        if worker.name not in self._logs:
            self._logs[worker.name] = self._support.logs(f"{worker.pid}")
        return self._logs[worker.name]

    def _flush_logs(self, worker: WorkerHandle) -> None:
        shipper = self._logs.get(worker.name)
        if shipper is not None:
            shipper.flush()
            if not worker.alive():
                del self._logs[worker.name]

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

    # --- Spot interruptions (node_agent/interruption.py) -------------------------------------
    def shed(self) -> int:
        """Hand back every job a worker holds but has not started (the node is about to
        go away): they go back to the queue unrun, attempt unchanged, at the next flush;
        the workers are told to skip them. Returns how many."""
        self.wait(0.0)  # read the starts already sent, so running jobs stay running
        count = 0
        for worker in self.workers():
            for flight, ids in worker.take_back():
                self._claims.hand_back(flight, ids)
                count += len(ids)
        return count

    def abandon_running(self) -> None:
        """The node goes away under its running jobs (a Spot interruption): kill their
        workers; the jobs go back unrun with no attempt charged, the fault is not theirs."""
        for worker in self.workers():
            if worker.busy:
                self._abandon(worker, "the instance is being interrupted")

    def _abandon(self, worker: WorkerHandle, why: str) -> None:
        log.warning(
            "stream %s: stopping %s (pid %s) running %s: %s",
            worker.stream_id, worker.name, worker.pid, worker.current, why,
        )  # fmt: skip
        for flight, ids in worker.take_back(running=True):
            self._claims.hand_back(flight, ids)
        worker.kill()
        self._flush_logs(worker)
        worker.mark_idle()
        run = self.runs.get(worker.stream_id)
        if run is not None and worker in run.workers:
            run.workers.remove(worker)

    def stop_running(self) -> None:
        """Kill the workers still running a job (the agent is stopping): each such job
        gets a lost run; what they held unstarted stays pending in its claim."""
        for worker in self.workers():
            if worker.current is not None:
                worker.kill()
                self._record(
                    worker, worker.current, failed_run("lost", "the node stopped while it ran")
                )

    def stop_all(self) -> None:
        """Kill busy workers (call after their claims were ended), stop idle ones."""
        for run in self.runs.values():
            for worker in [w for w in run.workers if w.busy]:
                worker.kill()  # its claim was ended: unstarted jobs run again elsewhere
            stop_workers([w for w in run.workers if not w.busy])
            run.workers = []
