"""The agent's side of one worker process: start it, hand it jobs, read its reports."""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from node_agent.worker import worker_main

log = logging.getLogger(__name__)

# Never fork the threaded agent: a forked child inherits locks held by other threads.
CONTEXT: BaseContext = multiprocessing.get_context("spawn")

STOP_TIMEOUT = 5.0
# Batches a worker may hold: the one it runs and the next, already in its pipe, so that
# it starts the next job the moment it finishes one instead of waiting for the agent's
# next claim (a Queue round trip per batch).
DEPTH = 2


@dataclass
class Assignment:
    """One batch handed to a worker: the claim it came from and the jobs without outcome."""

    flight: Any
    jobs: list[dict[str, Any]]
    pending: set[str]


_numbers = itertools.count(1)


class WorkerHandle:
    """One worker process of one stream and the batches it holds (at most ``DEPTH``).

    The worker runs its batches in the order they were sent and reports ``idle`` after
    each, so the first assignment is the one running and any later one has not started.
    """

    def __init__(self, stream_id: str, context: BaseContext = CONTEXT) -> None:
        parent, child = context.Pipe()
        self.stream_id = stream_id
        self.name = f"worker-{next(_numbers)}"
        self.process = context.Process(
            target=worker_main, args=(child,), name=f"impetus-{self.name}", daemon=False
        )
        self.process.start()
        child.close()  # our copy; the worker's end closes when it exits, which we see as EOF
        self.conn = parent
        self.assignments: deque[Assignment] = deque()
        self.idle_since = time.monotonic()
        self._closed = False

    @property
    def sentinel(self) -> int:
        return self.process.sentinel

    @property
    def pid(self) -> int | None:
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
        self.conn.send({"jobs": jobs, "frequency": frequency})

    def take(self, job_id: str) -> Any:
        """The claim a reported job came from (None if unknown); it is no longer pending."""
        for assignment in self.assignments:
            if job_id in assignment.pending:
                assignment.pending.discard(job_id)
                return assignment.flight
        return None

    def batch_done(self) -> None:
        """The worker reported the end of its oldest batch."""
        if self.assignments:
            self.assignments.popleft()
        if not self.assignments:
            self.idle_since = time.monotonic()

    def running(self) -> list[str]:
        """Ids of the jobs of the batch it is running that have no outcome yet."""
        return sorted(self.assignments[0].pending) if self.assignments else []

    def unstarted(self) -> list[Assignment]:
        """Batches behind the running one: none of their jobs has started."""
        return list(self.assignments)[1:]

    def mark_idle(self) -> None:
        self.assignments.clear()
        self.idle_since = time.monotonic()

    def messages(self) -> tuple[list[dict[str, Any]], bool]:
        """Every report waiting in the pipe; the flag is True when the pipe is closed."""
        received: list[dict[str, Any]] = []
        try:
            while self.conn.poll():
                received.append(self.conn.recv())
        except (EOFError, OSError):
            return received, True
        return received, False

    def request_stop(self) -> None:
        """Ask the worker to exit after its current batch (see :meth:`stop`)."""
        with contextlib.suppress(OSError, ValueError):  # already gone
            self.conn.send(None)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the worker to exit; kill it if it has not within ``timeout``."""
        self.request_stop()
        self.process.join(timeout)
        self.kill()

    def kill(self) -> None:
        """Kill the worker (if alive), reap it and release its pipe."""
        if self._closed:
            return
        if self.process.is_alive():
            self.process.kill()
        self.process.join(STOP_TIMEOUT)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.conn.close()
        self.process.join(0)
        if self.process.exitcode is not None:
            self.process.close()

    @property
    def exitcode(self) -> int | None:
        return None if self._closed else self.process.exitcode
