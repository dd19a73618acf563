"""The agent's side of one worker process: start it, hand it jobs, read its reports."""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import time
from multiprocessing.context import BaseContext
from typing import Any

from node_agent.worker import worker_main

log = logging.getLogger(__name__)

# Never fork the threaded agent: a forked child inherits locks held by other threads.
CONTEXT: BaseContext = multiprocessing.get_context("spawn")

STOP_TIMEOUT = 5.0

_numbers = itertools.count(1)


class WorkerHandle:
    """One worker process of one stream. ``batch`` is the jobs it is running now."""

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
        self.busy = False
        self.batch: Any = None  # the agent's record of the claim these jobs came from
        self.pending: set[str] = set()  # job ids without an outcome yet
        self.idle_since = time.monotonic()
        self._closed = False

    @property
    def sentinel(self) -> int:
        return self.process.sentinel

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def assign(self, jobs: list[dict[str, Any]], frequency: float, batch: Any) -> None:
        self.busy = True
        self.batch = batch
        self.pending = {job["id"] for job in jobs}
        self.conn.send({"jobs": jobs, "frequency": frequency})

    def mark_idle(self) -> None:
        self.busy = False
        self.batch = None
        self.pending = set()
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
