"""``concurrent.futures`` on Impetus: ``submit``, ``map``, ``as_completed``, ``wait``.

    with Executor() as ex:                       # creates a stream; deletes it at the end
        future = ex.submit(pow, 2, 10)
        print(future.result())                   # 1024
        print(list(ex.map(abs, [-1, -2], chunksize=100)))

One code path with the decorator pipeline: the executor is built on the parts an
:class:`impetus.Impetus` app is built on, with one stage: a stream session, a
:class:`impetus.forks.ForkSender` and a :class:`impetus.results.ResultCollector`.
``submit`` is a buffered fork of ``fn(*args, **kwargs)`` (a :class:`impetus.mapping.Call`);
``map`` forks chunk jobs (:mod:`impetus.mapping`). Two threads talk to the API at the
same time: a sender sends the buffered forks as soon as there are any (forks made while a
request is on its way go out together in the next one), and a collector receives results
(:meth:`~impetus.results.ResultCollector.receive`), resolves the futures and acknowledges
each batch at the start of its next round, after the forks that the futures' callbacks
made. One thread did both before: a 500-job fork waited for the acknowledgement of the
last results, and the next poll for the fork. A remote exception is re-raised with its
remote traceback as the cause (:mod:`impetus.remote`).

Polling adapts (:class:`impetus.polling.Pacer`, shared with the pipeline's collector):
fast while results flow, backing off to 0.5 s while jobs are out and nothing comes back,
and no request at all while no job is out.

Cancelling a future drops its result; the job itself may still run (it was queued).
A stream deleted under a running executor fails its pending futures at once with
:class:`~impetus.session.StreamDeleted`. Results are verified as the pipeline's are
(:mod:`impetus.integrity`): a job whose outcome does not verify fails its future with an
``integrity`` error, and nothing of it is unpickled.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from impetus import mapping
from impetus.api_client import ApiClient
from impetus.core import codec
from impetus.core.exceptions import ApiError
from impetus.core.jobs import READY
from impetus.forks import Callback, ForkSender, FunctionTable
from impetus.ledger import STARTUP, JobLedger
from impetus.polling import Pacer
from impetus.remote import rebuild
from impetus.results import RESULTS_LIMIT, ResultCollector
from impetus.session import StreamDeleted, StreamSession

log = logging.getLogger(__name__)

STAGE = "results"
MAX_FAILURES = 3  # consecutive failed collector rounds before pending futures fail


class Executor(cf.Executor):
    """A ``concurrent.futures.Executor`` whose calls run as Impetus jobs on the nodes.

    ``address``/``authkey`` as for :class:`Impetus` (default: env or the local stack);
    ``id`` names the stream (default: a new one); ``keep`` keeps it after shutdown;
    further keyword arguments are stream properties (``mpps``, ``frequency``, ...).
    """

    #: The API client class; a hook for unit tests (the end-to-end tests use the real one).
    api_class: type = ApiClient

    def __init__(
        self,
        address: str | None = None,
        authkey: str | None = None,
        id: str | None = None,
        keep: bool = False,
        **properties: Any,
    ) -> None:
        self._session = StreamSession.open(address, authkey, id, properties, self.api_class)
        self.id = self._session.id
        ledger = JobLedger((STAGE,))  # no task files: results live in the futures
        self._functions = FunctionTable()
        self._forks = ForkSender(self._session, self._functions, ledger, self._route)
        self._collector = ResultCollector(
            self._session, self._functions, ledger, None, self._hand_over
        )
        self._keep = keep
        self._lock = threading.Lock()
        self._futures: dict[str, tuple[cf.Future, Callable[..., Any]]] = {}
        self._wake = threading.Event()  # forks to send, or closing
        self._sent = threading.Event()  # forks went out: their results are worth a poll
        self._acks: list[str] = []  # collected, delivered, not yet acknowledged
        self._closing = False
        self._stopped = False  # the sender's end
        self._deleted = False
        self._sender = threading.Thread(
            target=self._send_loop, name=f"impetus-send-{self.id}", daemon=True
        )
        self._thread = threading.Thread(target=self._loop, name=f"impetus-{self.id}", daemon=True)
        self._sender.start()
        self._thread.start()

    # --- the Executor interface -------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        """Queue ``fn(*args, **kwargs)`` as one job; returns its future at once."""
        encoded = codec.dumps((args, kwargs))  # fails here, in the caller's frame
        future: cf.Future = cf.Future()
        job_id = uuid.uuid4().hex
        with self._lock:
            self._check_open()
            self._futures[job_id] = (future, fn)  # before the fork: results may come fast
            try:
                call = self._functions.wrapper(fn, mapping.Call)
                self._forks.fork(call, encoded, job_id=job_id)
            except BaseException:
                del self._futures[job_id]
                raise
        self._wake.set()
        return future

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> Iterator[Any]:
        """Results of ``fn(*args)`` over the zipped iterables, in order.

        Calls travel ``chunksize`` per job record (default: about 16 chunks). The first
        failed call raises its exception when the iterator reaches it.
        """
        items = list(zip(*iterables, strict=False))
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._check_open()
            # Registered under the lock: the collector cannot deliver before it is done.
            ids = self._forks.map(fn, items, chunksize, star=True)
            futures = [cf.Future() for _ in ids]
            self._futures.update((i, (f, fn)) for i, f in zip(ids, futures, strict=True))
        self._wake.set()
        return self._in_order(futures, end)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; with ``wait``, return when every future is done and the
        stream is deleted (unless ``keep``)."""
        with self._lock:
            self._closing = True
            if cancel_futures:
                for future, _ in self._futures.values():
                    future.cancel()
        self._wake.set()
        self._sent.set()  # an idle collector looks at _closing
        if wait:
            self._thread.join()

    # --- internals ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closing:
            raise RuntimeError("cannot schedule new futures after shutdown")

    @staticmethod
    def _in_order(futures: list[cf.Future], end: float | None) -> Iterator[Any]:
        for future in futures:
            yield future.result(None if end is None else max(0.0, end - time.monotonic()))

    @staticmethod
    def _route(callback: Callback) -> tuple[str, str]:
        """Every fork goes to the one stage; there is no step that forks."""
        return STAGE, STARTUP

    def _hand_over(
        self, stage: str, ready: list[dict[str, Any]], errors: list[dict[str, Any]]
    ) -> None:
        """The collector's handler: resolve the futures, then send the forks their
        callbacks made before the batch is acknowledged (as a pipeline stage's)."""
        self._deliver(ready + errors)
        self._forks.flush()

    def _deliver(self, jobs: list[dict[str, Any]]) -> None:
        with self._lock:
            entries = [(job, self._futures.pop(job["id"], None)) for job in jobs]
        for job, entry in entries:
            if entry is None:
                continue  # not ours (an earlier run of this stream id), or cancelled
            future, fn = entry
            if not future.set_running_or_notify_cancel():
                continue
            if job["status"] == READY:
                future.set_result(job["result"])
            else:
                future.set_exception(rebuild(job["result"], fn))

    def _pending(self) -> int:
        with self._lock:
            for key in [k for k, (f, _) in self._futures.items() if f.cancelled()]:
                del self._futures[key]
            return len(self._futures)

    def _send_loop(self) -> None:
        failures = 0
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            try:
                self._forks.flush()
                failures = 0
            except Exception as exc:  # the API is away: retry, then fail the futures
                failures += 1
                log.warning("executor %s: sending forks failed: %s", self.id, exc)
                if failures >= MAX_FAILURES or isinstance(exc, StreamDeleted):
                    self._fail_all(exc)
                time.sleep(min(2.0, 0.1 * 2**failures))
                self._wake.set()
                continue
            self._sent.set()

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
            pending = self._pending()
            if self._closing and not pending:
                self._stop_sender()
                with contextlib.suppress(Exception):  # the stream is about to go anyway
                    self._send_acks()
                break
            # nothing out: sleep until forks go out (no requests while idle)
            delay = pacer.after(got, RESULTS_LIMIT) if pending else None
        self._cleanup()

    def _stop_sender(self) -> None:
        self._stopped = True
        self._wake.set()
        self._sender.join()

    def _receive(self) -> int:
        """One batch: futures resolved, its ids kept to acknowledge in the next round."""
        ids = self._collector.receive(STAGE)
        self._acks += ids
        return len(ids)

    def _send_acks(self) -> None:
        if self._acks:
            self._collector.acknowledge(self._acks)
            self._acks = []

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            entries = list(self._futures.values())
            self._futures.clear()
        for future, _ in entries:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)

    def _cleanup(self) -> None:
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
