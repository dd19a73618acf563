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

from impetus import codec
from impetus.jobcontext import context
from impetus.jobs import ERROR, EXCEPTION, READY, Outcome, error_record, system_error
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


def run_job(job: dict[str, Any], cache: FunctionCache) -> Outcome:
    """Run one job; every failure, including the user's, becomes an error outcome."""
    started = time.time()
    name = str(job.get("name") or "")
    python = job.get("python")
    if python != codec.PYTHON_VERSION:
        # Nothing is unpickled: pickles do not travel safely across Python versions.
        message = f"job from {python}, node runs {codec.PYTHON_VERSION}"
        return Outcome(
            ERROR,
            error=system_error("python", message, name),
            started=started,
            finished=time.time(),
        )
    try:
        fn = cache.get(job["code_digest"], job["code"])
        args = codec.loads(job["args"])
        value = fn(args)  # the original passes args as one positional argument
    except BaseException as exc:  # the user's code may raise anything
        return _error(exc, name, started)
    try:
        result = codec.dumps(value)
    except BaseException as exc:  # an unpicklable result is the job's error
        return _error(exc, name, started)
    return Outcome(READY, result=result, started=started, finished=time.time())


def _ignore_signals() -> None:
    # Ctrl-C and SIGTERM go to the whole process group; the agent decides when workers stop
    # (it drains first), so workers ignore both and leave on the agent's word or pipe EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def worker_main(conn: Connection) -> None:
    """The worker process: run batches until told to stop or the agent goes away."""
    _ignore_signals()
    cache = FunctionCache()
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
                outcome = run_job(job, cache)
            outcome.output = out.output()
            logs.add(job.get("stream", ""), job["id"], outcome.output, outcome.finished)
            last_end = time.monotonic()
            conn.send({"job": job["id"], "outcome": dataclasses.asdict(outcome)})
        logs.flush()
        conn.send({"idle": True})
