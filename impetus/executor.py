"""``concurrent.futures`` on Impetus: ``submit``, ``map``, ``as_completed``, ``wait``.

    with Executor() as ex:                       # creates a stream; deletes it at the end
        future = ex.submit(pow, 2, 10)
        print(future.result())                   # 1024
        print(list(ex.map(abs, [-1, -2], chunksize=100)))

Built on the parts an :class:`impetus.Impetus` app is built on, with one stage: a stream
session, a :class:`impetus.forks.ForkSender` and a :class:`impetus.results.ResultCollector`.
``submit`` is a buffered fork of ``fn(*args, **kwargs)`` (a :class:`impetus.mapping.Call`);
``map`` forks chunk jobs (:mod:`impetus.mapping`). Two threads talk to the API: a
sender (:mod:`impetus.sender`) sends the buffered forks as soon as there are any
(``submit`` never waits on the network), and a collector receives results, resolves the
futures and acknowledges each batch at the start of its next round, after the forks the
futures' callbacks made. Polling adapts (:class:`impetus.polling.Pacer`); no request at
all while no job is out.

Futures (:class:`impetus.futures.ImpetusFuture`) keep the stdlib contract: RUNNING once a
node started the job, ``cancel()`` takes a job out of the queue or is False, and
``shutdown(cancel_futures=True)``, an expired ``map(timeout=)``, the interpreter's exit
and Ctrl-C behave as docs/guide/executor.md says. A remote exception is re-raised with
its remote traceback (:mod:`impetus.remote`); results are verified as the pipeline's
(:mod:`impetus.integrity`); a stream deleted under a running executor fails its pending
futures with :class:`~impetus.session.StreamDeleted`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from impetus import mapping, timeline
from impetus.api_client import ApiClient
from impetus.callprogress import CallProgress
from impetus.cancelling import JobCanceller
from impetus.core import codec
from impetus.core.config import DisplaySettings
from impetus.core.exceptions import ApiError
from impetus.core.jobs import READY
from impetus.core.properties import PROPERTIES
from impetus.forks import Callback, ForkSender, FunctionTable
from impetus.futures import (
    ExecutorOptions,
    ImpetusFuture,
    JobOptions,
    PendingFutures,
    register_exit,
    results_in_order,
)
from impetus.ledger import STARTUP, JobLedger
from impetus.polling import Pacer
from impetus.remote import rebuild
from impetus.results import RESULTS_LIMIT, ResultCollector
from impetus.sender import BackgroundSender
from impetus.session import StreamDeleted, StreamSession
from impetus.streamname import FirstFunctionName, with_default_name

log = logging.getLogger(__name__)

STAGE = "results"
MAX_FAILURES = 3  # consecutive failed collector rounds before pending futures fail
INTERRUPT_WAIT = 5.0  # seconds Ctrl-C waits for the threads before re-raising


class Executor(cf.Executor):
    """A ``concurrent.futures.Executor`` whose calls run as Impetus jobs on the nodes.

    ``address``/``authkey`` as for :class:`Impetus` (default: env or the local stack);
    ``id`` names the stream (default: a new one); ``keep`` keeps it after shutdown;
    ``output``: echo what jobs print to stderr, prefixed with the job id (default from
    ``IMPETUS_SHOW_OUTPUT``); ``include_modules`` ships installed modules by value, as for
    :class:`Impetus`. Further keyword arguments are stream properties (``mpps``,
    ``time_limit``, ...; any other name is a TypeError); custom properties (node filters)
    go in ``properties={...}``. ``max_workers`` is checked as the stdlib pools check it
    (> 0) and otherwise ignored: the nodes and ``mpps`` decide how many calls run at once.
    ``progress``: a line of the calls' progress on stderr (default: only when stderr is a
    terminal; impetus.callprogress).
    """

    #: The API client class; a hook for unit tests (the end-to-end tests use the real one).
    api_class: type = ApiClient

    def __init__(
        self,
        address: str | None = None,
        authkey: str | None = None,
        id: str | None = None,
        keep: bool = False,
        *,
        max_workers: int | None = None,
        properties: dict[str, Any] | None = None,
        output: bool | None = None,
        include_modules: Iterable[str | ModuleType] = (),
        progress: bool | None = None,
        **stream_properties: Any,
    ) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")  # as the stdlib pools
        unknown = sorted(set(stream_properties) - set(PROPERTIES))
        if unknown:
            raise TypeError(
                f"Executor() got unexpected keyword argument(s) {', '.join(unknown)}; "
                f"stream properties are {', '.join(sorted(PROPERTIES))} (custom ones go "
                "in properties={...})"
            )
        props = {**(properties or {}), **stream_properties}
        unnamed = id is None and props.get("name") is None
        props = with_default_name(props, id is None, "executor")  # no function known yet
        codec.ship_by_value(include_modules)  # before the stream exists: a typo leaves none
        self._session = StreamSession.open(address, authkey, id, props, self.api_class)
        self.id = self._session.id
        self._naming = FirstFunctionName(self._session, unnamed)  # then after its function
        ledger = JobLedger((STAGE,))  # no task files: results live in the futures
        self._functions = FunctionTable()
        self._forks = ForkSender(
            self._session, self._functions, ledger, self._route, flush_when_full=False
        )
        self._collector = ResultCollector(
            self._session,
            self._functions,
            ledger,
            None,
            self._hand_over,
            on_started=self._mark_started,
        )
        name = str(self._session.properties.get("name") or self.id)
        self._progress = CallProgress(name, progress)
        show = DisplaySettings.from_env().show_output if output is None else output
        # with a progress line, output goes above it (not appended to the line)
        echo = self._progress.note if self._progress.enabled else _to_stderr
        self._collector.echo = echo if show else None
        self._canceller = JobCanceller(self._session, self._forks)
        self._keep = keep
        self._lock = threading.Lock()
        self._futures = PendingFutures()
        self._id_prefix = uuid.uuid4().hex  # submit's job ids: <prefix>-<n>
        self._numbers = itertools.count()
        self._sent = threading.Event()  # forks went out: their results are worth a poll
        self._acks: list[str] = []  # collected, delivered, not yet acknowledged
        self._closing = False
        self._deleted = False
        self._sender = BackgroundSender(
            self._forks, f"impetus-send-{self.id}", self._sent.set, self._fail_all
        )
        self._thread = threading.Thread(target=self._loop, name=f"impetus-{self.id}", daemon=True)
        self._thread.start()
        register_exit(self, "shutdown")

    # --- the Executor interface -------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ImpetusFuture:
        """Queue ``fn(*args, **kwargs)`` as one job; returns its future at once."""
        return self.submit_with(JobOptions(), fn, args, kwargs)

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> Iterator[Any]:
        """Results of ``fn(*args)`` over the zipped iterables, in order.

        Calls travel ``chunksize`` per job record (default: about 16 chunks). The first
        failed call raises its exception when the iterator reaches it; on ``timeout`` (or
        when the iterator is dropped) the calls left are cancelled.
        """
        return self.map_with(JobOptions(), fn, iterables, timeout, chunksize)

    def options(
        self,
        *,
        retries: int | None = None,
        time_limit: float | None = None,
        priority: int | None = None,
        delay: float | None = None,
    ) -> ExecutorOptions:
        """A view whose ``submit``/``map`` fork jobs with these options: ``retries``
        (re-runs after an exception), ``time_limit`` (seconds), ``priority`` (lower runs
        first), ``delay`` (seconds before the job is due)."""
        return ExecutorOptions(self, JobOptions(retries, time_limit, priority, delay))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; ``cancel_futures`` cancels the calls no node has started (in
        the queue too); with ``wait``, return when every future is done and the stream
        is deleted (unless ``keep``)."""
        with self._lock:
            self._closing = True
            pending = self._futures.all() if cancel_futures else []
        if pending:
            self._cancel(pending)
        self._sender.forked()  # what is buffered goes out
        self._sent.set()  # an idle collector looks at _closing
        if wait:
            self._thread.join()

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Draw the stream's timeline (per node and worker) as a PNG at ``path``
        (impetus.timeline); before shutdown, or after it with ``keep=True``."""
        return timeline.plot(self._session.api, self.id, path)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._interrupt()
            return False
        return super().__exit__(exc_type, exc, tb)

    # --- submitting -------------------------------------------------------------------------
    def submit_with(
        self, options: JobOptions, fn: Callable[..., Any], args: tuple, kwargs: dict
    ) -> ImpetusFuture:
        """``submit`` with job options (see :meth:`options`)."""
        encoded = codec.dumps((args, kwargs))  # fails here, in the caller's frame
        job_id = f"{self._id_prefix}-{next(self._numbers)}"  # unique, without urandom
        future = ImpetusFuture(job_id, fn, self._cancel_one)
        with self._lock:
            self._check_open()
            self._futures.add(job_id, future)  # before the fork: results may come fast
            try:
                call = self._functions.wrapper(fn, mapping.Call)
                self._forks.fork(call, encoded, job_id=job_id, **options.fork_arguments())
            except BaseException:
                self._forget([future])
                raise
        self._named_after(fn)
        self._progress.track([future])
        self._sender.forked()
        return future

    def map_with(
        self,
        options: JobOptions,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> Iterator[Any]:
        """``map`` with job options (see :meth:`options`)."""
        items = list(zip(*iterables, strict=False))
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._check_open()
            # Registered under the lock: the collector cannot deliver before it is done.
            ids = self._forks.map(fn, items, chunksize, star=True, **options.fork_arguments())
            futures = [ImpetusFuture(_chunk_of(i), fn, self._cancel_one) for i in ids]
            for item_id, future in zip(ids, futures, strict=True):
                self._futures.add(item_id, future)
        self._named_after(fn)
        self._progress.track(futures)
        self._sender.forked()
        return results_in_order(futures, end, self._cancel)

    def _named_after(self, fn: Callable[..., Any]) -> None:
        if name := self._naming.first_function(fn):
            self._progress.rename(name)

    def _forget(self, futures: Iterable[ImpetusFuture]) -> None:
        """Drop pending futures (the caller holds the lock)."""
        for future in futures:
            self._futures.forget_job(future.job_id)

    def _check_open(self) -> None:
        if self._closing:
            raise RuntimeError("cannot schedule new futures after shutdown")

    @staticmethod
    def _route(callback: Callback) -> tuple[str, str]:
        """Every fork goes to the one stage; there is no step that forks."""
        return STAGE, STARTUP

    # --- states and cancellation ------------------------------------------------------------
    def _mark_started(self, job_ids: list[str]) -> None:
        """Jobs a node started (the collector's on_started): their futures are RUNNING."""
        with self._lock:
            futures = [f for j in job_ids for f in self._futures.of_job(j)]
        for future in futures:
            future.start()

    def _cancel_one(self, future: ImpetusFuture) -> bool:
        cancelled, _ = self._cancel([future])
        return future.cancelled() or bool(cancelled)

    def _cancel(self, futures: list[ImpetusFuture]) -> tuple[int, int]:
        """Cancel the jobs of pending futures in the queue; a job that a node claimed
        already makes its futures RUNNING. (cancelled jobs, running jobs)."""
        job_ids = {f.job_id for f in futures if not (f.done() or f.running())}
        if not job_ids:
            return 0, 0
        try:
            out, running = self._canceller.cancel(job_ids)
        except Exception as exc:  # the API is away: nothing changes
            log.warning("executor %s: cancelling failed: %s", self.id, exc)
            return 0, 0
        with self._lock:
            items = {j: self._futures.of_job(j) for j in job_ids}
            self._forget(f for j in out for f in items[j][:1])
        for job_id in out:
            for future in items[job_id]:
                future.cancel_here()
        for job_id in running:
            for future in items[job_id]:
                future.start()
        return len(out), len(running)

    def _interrupt(self) -> None:
        """Ctrl-C: cancel every pending job, say what became of them, end promptly."""
        with self._lock:
            self._closing = True
            pending = self._futures.all()
        cancelled = self._canceller.cancel_stream({f.job_id for f in pending})
        jobs = {f.job_id for f in pending if not f.done()}
        running = jobs - cancelled
        print(
            f"impetus: cancelled {len(jobs) - len(running)} jobs; "
            f"{len(running)} were still running",
            file=sys.stderr,
        )
        self._fail_all(cf.CancelledError("interrupted"), cancel=True)
        self._sent.set()
        self._thread.join(INTERRUPT_WAIT)

    # --- collecting -------------------------------------------------------------------------
    def _hand_over(
        self, stage: str, ready: list[dict[str, Any]], errors: list[dict[str, Any]]
    ) -> None:
        """The collector's handler: resolve the futures, then send the forks their
        callbacks made before the batch is acknowledged (as a pipeline stage's)."""
        self._deliver(ready + errors)
        self._forks.flush()

    def _deliver(self, jobs: list[dict[str, Any]]) -> None:
        with self._lock:
            entries = [(job, self._futures.take(job["id"])) for job in jobs]
        for job, future in entries:
            if future is None or not future.start():
                continue  # not ours (an earlier run of this stream id), or cancelled
            future.set_output(job.get("output"))
            if job["status"] == READY:
                future.set_result(job["result"])
            else:
                future.set_exception(rebuild(job["result"], future.fn))

    def _pending(self) -> int:
        with self._lock:
            return len(self._futures)

    def _loop(self) -> None:
        pacer = Pacer()
        delay: float | None = None
        failures = 0
        while True:
            if self._sent.wait(delay):
                self._sent.clear()
                pacer.reset()  # new work went out: its results are worth asking for soon
            try:
                self._send_acks()
                got = self._receive() if self._pending() else 0
                failures = 0
            except Exception as exc:  # the API is away: back off, then fail the futures
                failures += 1
                log.warning("executor %s: collecting failed: %s", self.id, exc)
                got = 0
                if failures >= MAX_FAILURES or isinstance(exc, StreamDeleted):
                    self._fail_all(exc)
            self._progress.show()
            pending = self._pending()
            if self._closing and not pending:
                self._sender.stop()
                with contextlib.suppress(Exception):  # the stream is about to go anyway
                    self._send_acks()
                break
            # nothing out: sleep until forks go out (no requests while idle)
            delay = pacer.after(got, RESULTS_LIMIT, self._collector.more) if pending else None
        self._cleanup()

    def _receive(self) -> int:
        """One batch: futures resolved, its ids kept to acknowledge in the next round."""
        ids = self._collector.receive(STAGE)
        self._acks += ids
        return len(ids)

    def _send_acks(self) -> None:
        if self._acks:
            self._collector.acknowledge(self._acks)
            self._acks = []

    def _fail_all(self, exc: BaseException, cancel: bool = False) -> None:
        """Fail every pending future (``cancel``: cancel the ones not running)."""
        with self._lock:
            futures = self._futures.clear()
        for future in futures:
            if cancel and not future.running():
                future.cancel_here()
            elif future.start():
                future.set_exception(exc)

    def _cleanup(self) -> None:
        self._progress.show(force=True)  # a batch ended by cancelling: its last line
        self._session.release()  # another client may collect the stream now
        if self._keep or self._deleted:
            return
        self._deleted = True
        try:
            self._session.delete()
        except ApiError as exc:
            log.warning("executor %s: deleting the stream failed: %s", self.id, exc)
        self._session.close()

    def __repr__(self) -> str:
        # A notebook echoes the executor: show which stream it runs on, where, and how much
        # is still out (a future not yet resolved counts as pending).
        state = "shut down" if self._closing else "open"
        return (
            f"<impetus.Executor stream={self.id!r} address={self._session.api.url!r} "
            f"pending={self._pending()} {state}>"
        )


def _chunk_of(item_id: str) -> str:
    return item_id.rsplit(":", 1)[0]


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
