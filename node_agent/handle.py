"""The agent's side of one worker process: start it, hand it jobs, read its reports.

The worker is a program of its own (node_agent/worker.py) started with
``subprocess.Popen``: a clean environment, possibly another user
(node_agent/isolation.py). Two pipes carry JSON frames (node_agent/frames.py).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from node_agent import frames, isolation
from node_agent.isolation import WorkerIdentity

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
# Batches a worker may hold: the one it runs and the next, already in its pipe, so that
# it starts the next job the moment it finishes one instead of waiting for the agent's
# next claim (a Queue round trip per batch).
DEPTH = 2
# Frames read per wake-up at most: a worker that floods its pipe cannot starve the rest.
MAX_READS = 256


@dataclass
class Assignment:
    """One batch handed to a worker: the claim it came from and the jobs without outcome."""

    flight: Any
    jobs: list[dict[str, Any]]
    pending: set[str]


@dataclass
class Reading:
    """What one look at a worker's pipe found."""

    reports: list[frames.Report]
    closed: bool = False  # the pipe is closed: the worker is gone
    malformed: str = ""  # why the worker's last frame was refused ("" when none was)


_numbers = itertools.count(1)


def _spawn(identity: WorkerIdentity) -> tuple[subprocess.Popen[bytes], Connection, Connection]:
    to_worker_r, to_worker_w = os.pipe()
    from_worker_r, from_worker_w = os.pipe()
    try:
        program = [
            identity.python,
            "-m",
            "node_agent.worker",
            str(to_worker_r),
            str(from_worker_w),
            str(os.getpid()),
        ]
        process = subprocess.Popen(
            identity.command(program),
            env=identity.env,
            cwd=identity.cwd,
            pass_fds=(to_worker_r, from_worker_w),
            stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(to_worker_r)
        os.close(from_worker_w)
    return (
        process,
        Connection(to_worker_w, readable=False),
        Connection(from_worker_r, writable=False),
    )


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+: the pipe's EOF has to do
        return None


class WorkerHandle:
    """One worker process of one stream and the batches it holds (at most ``DEPTH``).

    The worker runs its batches in the order they were sent, reports ``started`` before
    each job and ``idle`` after each batch, so the first assignment is the one running
    and ``current`` is the job it is in."""

    def __init__(self, stream_id: str, identity: WorkerIdentity) -> None:
        self.process, self._out, self.conn = _spawn(identity)
        self.stream_id = stream_id
        self.name = f"worker-{next(_numbers)}"
        self.slot = 0  # its row on this node's timeline (Pool gives the lowest free one)
        self.assignments: deque[Assignment] = deque()
        self.idle_since = time.monotonic()
        self.current: str | None = None  # the job running now
        self.current_since = 0.0  # monotonic
        self.skipped: set[str] = set()  # jobs taken back: the worker must not start them
        self._closed = False
        self._pidfd = _pidfd(self.process.pid)

    @property
    def sentinel(self) -> int | Connection:
        """What to wait on for the worker's exit: a pidfd (readable once it exits). Its
        pipe is no proof: a child the job forked may hold the write end open."""
        return self._pidfd if self._pidfd is not None else self.conn

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def busy(self) -> bool:
        return bool(self.assignments)

    @property
    def has_room(self) -> bool:
        """Busy, but may take the next batch now."""
        return 0 < len(self.assignments) < DEPTH

    def assign(self, jobs: list[dict[str, Any]], frequency: float, flight: Any) -> None:
        self.assignments.append(Assignment(flight, jobs, {job["id"] for job in jobs}))
        self.send({"type": "batch", "jobs": jobs, "frequency": frequency})

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError, ValueError):  # gone: its pipe reads EOF next
            frames.send(self._out, message)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The job record of a job this worker holds without outcome."""
        for assignment in self.assignments:
            if job_id in assignment.pending:
                return next(j for j in assignment.jobs if j["id"] == job_id)
        return None

    def start(self, job_id: str) -> bool:
        """The worker began ``job_id``; False when that is not the next job it may run."""
        if not self.assignments or job_id not in self.assignments[0].pending:
            return False
        self.current, self.current_since = job_id, time.monotonic()
        return True

    def take(self, job_id: str) -> Any:
        """The claim a reported job came from (None if unknown); it is no longer pending."""
        for assignment in self.assignments:
            if job_id in assignment.pending:
                assignment.pending.discard(job_id)
                if self.current == job_id:
                    self.current = None
                return assignment.flight
        return None

    def batch_done(self) -> None:
        """The worker reported the end of its oldest batch."""
        if self.assignments:
            self.assignments.popleft()
        self.current = None
        if not self.assignments:
            self.idle_since = time.monotonic()

    def unstarted(self) -> list[Assignment]:
        """What it holds that never started: its batches minus the running job."""
        left = []
        for assignment in self.assignments:
            pending = assignment.pending - {self.current}
            if pending:
                left.append(Assignment(assignment.flight, assignment.jobs, pending))
        return left

    def take_back(self, running: bool = False) -> list[tuple[Any, set[str]]]:
        """Take back what it holds unstarted (and the running job too when ``running``):
        (claim in flight, job ids) pairs. The worker is told to skip them; their
        assignments stay until it reports them idle, so its reports stay in step."""
        taken = []
        for assignment in self.assignments:
            ids = set(assignment.pending) if running else assignment.pending - {self.current}
            if ids:
                assignment.pending -= ids
                taken.append((assignment.flight, ids))
                self.skipped |= ids
        if running:
            self.current = None
        if taken:
            self.send({"type": "shed", "jobs": sorted(set().union(*(ids for _, ids in taken)))})
        return taken

    def mark_idle(self) -> None:
        self.assignments.clear()
        self.current = None
        self.idle_since = time.monotonic()

    def read(self) -> Reading:
        """Every report waiting in the pipe (up to MAX_READS), checked."""
        reading = Reading([])
        try:
            for _ in range(MAX_READS):
                if not self.conn.poll():
                    break
                message = frames.receive(self.conn, frames.MAX_REPORT_BYTES)
                reading.reports.append(frames.parse_report(message))
        except (EOFError, OSError):
            reading.closed = True
        except frames.Malformed as exc:
            reading.malformed = str(exc)
        return reading

    def request_stop(self) -> None:
        """Ask the worker to exit after its current batch (see :meth:`stop`)."""
        self.send({"type": "stop"})

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the worker to exit; kill it if it has not within ``timeout``."""
        self.request_stop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """Kill the worker and everything it started, reap it, release its pipes."""
        if self._closed:
            return
        if self.process.poll() is None:
            isolation.kill_tree(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in (self._out, self.conn):
            with contextlib.suppress(OSError):
                conn.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.process.poll()

    def alive(self) -> bool:
        return not self._closed and self.process.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()
