"""The executor's futures, its per-call options, and its exit hook.

:class:`ImpetusFuture` is a ``concurrent.futures.Future`` with the job behind it: its
``job_id`` (a ``map`` item's is its chunk's) and :meth:`~ImpetusFuture.output`, what the
job printed and logged. Its :meth:`~ImpetusFuture.cancel` asks the queue: a job no node
has claimed is taken out (it never runs) and the future is cancelled; a claimed one
cannot be, and the future is RUNNING (or done) instead, as a stdlib future that a
worker has picked up.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from impetus.core import joboutput

#: ``canceller(future) -> bool``: take the future's job out of the queue (see cancel).
Canceller = Callable[["ImpetusFuture"], bool]


class ImpetusFuture(cf.Future):
    """A future of one call that runs as (part of) an Impetus job."""

    def __init__(self, job_id: str, fn: Callable[..., Any], canceller: Canceller) -> None:
        super().__init__()
        self.job_id = job_id
        self.fn = fn  # rebuilds its remote exception (see impetus.remote.rebuild)
        self._canceller = canceller
        self._output: dict[str, Any] | None = None

    def cancel(self) -> bool:
        """Cancel a call no node has started: True once its job is out of the queue.
        False for a running or finished call (the future is then RUNNING or done)."""
        with self._condition:
            if self.cancelled():
                return True
            if self.running() or self.done():
                return False
        return self._canceller(self)

    def cancel_here(self) -> bool:
        """Cancel the future only (its job is known to be out of the queue)."""
        return super().cancel()

    def start(self) -> bool:
        """Mark RUNNING (no-op when it is); False when it was cancelled."""
        with self._condition:
            if self.running() or self.done():
                return not self.cancelled()
        return self.set_running_or_notify_cancel()

    def output(self) -> str:
        """What the job printed and logged (stdout, stderr, logging), one line each,
        prefixed with the job id as the client shows it; empty before the job ended."""
        return "\n".join(joboutput.lines(self.job_id, self._output))

    def set_output(self, output: dict[str, Any] | None) -> None:
        self._output = output


class PendingFutures:
    """An executor's pending futures, by delivered job id (a ``map`` item's) and by API
    job id (a chunk's items share it). Not thread-safe: the executor holds its lock."""

    def __init__(self) -> None:
        self._items: dict[str, ImpetusFuture] = {}
        self._by_job: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item_id: str, future: ImpetusFuture) -> None:
        self._items[item_id] = future
        self._by_job.setdefault(future.job_id, set()).add(item_id)

    def of_job(self, job_id: str) -> list[ImpetusFuture]:
        return [self._items[i] for i in self._by_job.get(job_id, ())]

    def all(self) -> list[ImpetusFuture]:
        return list(self._items.values())

    def forget_job(self, job_id: str) -> None:
        for item_id in self._by_job.pop(job_id, set()):
            self._items.pop(item_id, None)

    def take(self, item_id: str) -> ImpetusFuture | None:
        """The future of a delivered job, no longer pending; None if not pending."""
        future = self._items.pop(item_id, None)
        if future is not None:
            items = self._by_job.get(future.job_id, set())
            items.discard(item_id)
            if not items:
                self._by_job.pop(future.job_id, None)
        return future

    def clear(self) -> list[ImpetusFuture]:
        """Every pending future, forgotten."""
        futures = self.all()
        self._items.clear()
        self._by_job.clear()
        return futures


@dataclass(frozen=True)
class JobOptions:
    """Per-call job options (see :meth:`impetus.Executor.options`)."""

    retries: int | None = None
    time_limit: float | None = None
    priority: int | None = None
    delay: float | None = None

    def __post_init__(self) -> None:
        for name, kind, low in (
            ("retries", int, 0),
            ("time_limit", (int, float), 0.1),
            ("priority", int, None),
            ("delay", (int, float), 0),
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(f"{name} must be a number, not {type(value).__name__}")
            if low is not None and value < low:
                raise ValueError(f"{name} must be at least {low}")

    def fork_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ForkSender.fork/map."""
        props = {k: getattr(self, k) for k in ("retries", "time_limit")}
        return {
            "priority": self.priority,
            "delay": self.delay,
            "properties": {k: v for k, v in props.items() if v is not None},
        }

    def merged(self, **changes: Any) -> JobOptions:
        """These options with ``changes`` (those given, not None) applied."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


class ExecutorOptions:
    """An executor with job options: ``submit``/``map`` as the executor's, each job
    forked with them (see :meth:`Executor.options`)."""

    def __init__(self, executor: Any, options: JobOptions) -> None:
        """``executor``: an :class:`impetus.Executor`."""
        self.executor = executor
        self.job_options = options

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ImpetusFuture:
        return self.executor.submit_with(self.job_options, fn, args, kwargs)

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> Iterator[Any]:
        return self.executor.map_with(self.job_options, fn, iterables, timeout, chunksize)

    def options(self, **changes: Any) -> ExecutorOptions:
        return ExecutorOptions(self.executor, self.job_options.merged(**changes))


def results_in_order(
    futures: list[ImpetusFuture],
    end: float | None,
    cancel: Callable[[list[ImpetusFuture]], Any],
) -> Iterator[Any]:
    """``map``'s iterator: results in order, holding no future it has handed back (as
    the stdlib's); ``cancel`` gets whatever is left when it stops (timeout, error,
    dropped)."""
    futures.reverse()
    try:
        while futures:
            # No local holds the value across the yield: the caller may drop it.
            yield _next_result(futures, end)
    finally:
        if futures:
            cancel(futures)


def _next_result(futures: list[ImpetusFuture], end: float | None) -> Any:
    """The result of the last future of ``futures``, popped; kept there on timeout."""
    future = futures.pop()
    try:
        return future.result(None if end is None else max(0.0, end - time.monotonic()))
    except cf.TimeoutError:
        futures.append(future)
        raise


def register_exit(target: Any, method: str) -> None:
    """Call ``target.<method>()`` when the interpreter exits, before daemon threads stop
    (threading's hook, which the stdlib pools use): the interpreter waits for what is
    pending. A weak reference: an executor shut down and dropped is not kept alive."""
    ref = weakref.ref(target)

    def at_exit() -> None:
        obj = ref()
        if obj is not None:
            getattr(obj, method)()

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        with contextlib.suppress(RuntimeError):  # the interpreter is shutting down already
            register(at_exit)
