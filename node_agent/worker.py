"""Worker processes: run claimed jobs, one at a time, and report their outcomes.

A worker is a long-lived process (spawn context) connected to the agent by a Pipe.

agent -> worker: ``{"jobs": [ClaimedJob as dict], "frequency": seconds}`` or ``None`` (stop)
worker -> agent: ``{"job": id, "outcome": Outcome as dict}`` per job, then ``{"idle": True}``

Only the worker unpickles: the agent never runs user code.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.core.jobs import CRASH, ERROR, EXCEPTION, READY, Outcome, error_record, system_error
from impetus.core.signing import sha256_hex
from impetus.jobcontext import context
from impetus.storage import payloads
from node_agent import capture, cloudlogs

log = logging.getLogger(__name__)

CACHE_SIZE = 256


class FunctionCache:
    """Decoded functions by code digest (a stream usually runs few functions many times)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._functions: OrderedDict[str, Any] = OrderedDict()

    def get(self, digest: str, encoded: str) -> Any:
        """The function of a code digest, decoded on first use."""
        entry = self._functions.get(digest)
        if entry is None:
            entry = codec.loads(encoded)
            self._functions[digest] = entry
            if len(self._functions) > self._size:
                self._functions.popitem(last=False)
        else:
            self._functions.move_to_end(digest)
        return entry


def _error(exc: BaseException, name: str, started: float) -> Outcome:
    return Outcome(
        ERROR,
        error=error_record(exc, name),
        started=started,
        finished=time.time(),
        failure=EXCEPTION,
    )


class PayloadStore:
    """The payload bucket, opened on first use (most workers never need it)."""

    def __init__(self, settings: AwsSettings | None = None) -> None:
        self._settings = settings
        self._store: payloads.Payloads | None = None

    def __call__(self) -> payloads.Payloads:
        if self._store is None:
            self._store = payloads.Payloads(self._settings or AwsSettings.from_env())
        return self._store


class _Refused(Exception):
    def __init__(self, kind: str, message: str, failure: str = "") -> None:
        super().__init__(message)
        self.kind, self.failure = kind, failure


def _fetch_args(job: dict[str, Any], store: PayloadStore) -> str:
    """The job's encoded args; from S3 when they travel there, checked against the signed
    digest before anything is loaded."""
    if job.get("transport") != "s3":
        return job["args"]
    try:
        data = store().get(job["args_ref"])
    except Exception as exc:  # S3 unreachable: not the job's fault, so it may run again
        raise _Refused("payload", f"cannot fetch args {job['args_ref']}: {exc}", CRASH) from exc
    if sha256_hex(data) != job.get("args_digest"):
        raise _Refused("signature", "the args object does not match its signed digest")
    return data


def _deliver(job: dict[str, Any], result: str, store: PayloadStore) -> Outcome:
    """A result too large for the queue goes to S3; the outcome carries its key."""
    if len(result) <= payloads.INLINE_RESULT_LIMIT:
        return Outcome(READY, result=result)
    key = payloads.result_key(job["stream"], job["id"], int(job.get("attempt") or 0))
    store().put(key, result)
    return Outcome(READY, result_ref=key)


def run_job(
    job: dict[str, Any], cache: FunctionCache, store: PayloadStore | None = None
) -> Outcome:
    """Run one job; every failure, including the user's, becomes an error outcome."""
    store = store or PayloadStore()
    started = time.time()
    name = str(job.get("name") or "")
    # The agent's gate (node_agent/gate.py) admitted the job: signature, code digest and
    # Python version are checked there, before any worker sees it.
    try:
        encoded_args = _fetch_args(job, store)
    except _Refused as refused:
        error = system_error(refused.kind, str(refused), name)
        return Outcome(
            ERROR, error=error, started=started, finished=time.time(), failure=refused.failure
        )
    try:
        fn = cache.get(job["code_digest"], job["code"])
        args = codec.loads(encoded_args)
        value = fn(args)  # the original passes args as one positional argument
    except BaseException as exc:  # the user's code may raise anything
        return _error(exc, name, started)
    try:
        outcome = _deliver(job, codec.dumps(value), store)
    except BaseException as exc:  # an unpicklable (or undeliverable) result is an error
        return _error(exc, name, started)
    outcome.started, outcome.finished = started, time.time()
    return outcome


def _ignore_signals() -> None:
    # Ctrl-C and SIGTERM go to the whole process group; the agent decides when workers stop
    # (it drains first), so workers ignore both and leave on the agent's word or pipe EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def worker_main(conn: Connection) -> None:
    """The worker process: run batches until told to stop or the agent goes away."""
    _ignore_signals()
    cache = FunctionCache()
    store = PayloadStore()
    logs = cloudlogs.shipper()
    last_end = 0.0
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the agent is gone
        if message is None:
            return
        frequency = float(message.get("frequency") or 0.0)
        for job in message["jobs"]:
            # The original's pacing: `frequency` seconds between the end of one job and
            # the start of the next.
            pause = frequency - (time.monotonic() - last_end)
            if pause > 0:
                time.sleep(pause)
            with context.running(job.get("stream", ""), job["id"]), capture.capture() as out:
                outcome = run_job(job, cache, store)
            outcome.output = out.output()
            logs.add(job.get("stream", ""), job["id"], outcome.output, outcome.finished)
            last_end = time.monotonic()
            conn.send({"job": job["id"], "outcome": dataclasses.asdict(outcome)})
        logs.flush()
        conn.send({"idle": True})
