"""Worker processes: run claimed jobs, one at a time, and report their outcomes.

A worker is a separate program (``python -m node_agent.worker IN OUT AGENT_PID``) that the
agent starts with a clean environment, possibly as another user
(node_agent/isolation.py), and talks to over two pipes in JSON frames
(node_agent/frames.py). It holds no AWS credentials: what a job needs from AWS goes
through the agent, which answers only for the worker's own stream and job: the stream
store (``impetus.context.store``), and presigned URLs for the job's S3 args and for a
result too large to travel inline.

Only the worker unpickles: the agent never runs user code, and never loads what a
worker sends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from collections import OrderedDict, deque
from multiprocessing.connection import Connection
from typing import Any

from impetus.core import codec
from impetus.core.exceptions import ImpetusError, InvalidRequest, KeyNotFound
from impetus.core.jobs import CRASH, ERROR, EXCEPTION, READY, Outcome, error_record, system_error
from impetus.core.signing import sha256_hex
from impetus.jobcontext import context
from impetus.storage import payloads
from node_agent import capture, frames, isolation

log = logging.getLogger(__name__)

CACHE_SIZE = 256
TRANSFER_TIMEOUT = 300.0
# This worker's channel. A job can reach it (as it can reach the pipes themselves): the
# agent answers only for the job the worker runs, whoever asks.
ACTIVE_CHANNEL: Channel | None = None


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


class Channel:
    """The worker's end of the pipes: reports out, batches and replies in.

    A job may ask the agent something (a store call) while the agent has already sent
    the next batch: messages that are not the awaited reply wait in ``pending``."""

    def __init__(self, incoming: Connection, outgoing: Connection) -> None:
        self._in, self._out = incoming, outgoing
        self._lock = threading.Lock()  # a job's threads may call the store at once
        self._numbers = itertools.count(1)
        self.pending: deque[dict[str, Any]] = deque()
        self.skipped: set[str] = set()  # jobs the agent took back (a Spot interruption)

    def send(self, message: dict[str, Any]) -> None:
        frames.send(self._out, message)

    def take_shed(self) -> set[str]:
        """Job ids the agent took back so far (``shed`` messages, which may wait in the
        pipe behind batches or in ``pending``): they must not start."""
        with self._lock:  # a thread the last job left behind may be awaiting a reply
            with contextlib.suppress(EOFError, OSError):  # the agent is gone: serve sees it
                while self._in.poll():
                    self.pending.append(frames.receive(self._in))
            shed = [m for m in self.pending if m.get("type") == "shed"]
            if shed:
                self.pending = deque(m for m in self.pending if m.get("type") != "shed")
                for message in shed:
                    self.skipped.update(str(job) for job in message.get("jobs") or [])
        return self.skipped

    def next_message(self) -> dict[str, Any]:
        """The next batch or stop (EOFError when the agent is gone)."""
        return self.pending.popleft() if self.pending else frames.receive(self._in)

    def request(self, kind: str, **body: Any) -> Any:
        """Ask the agent; its answer's value, or the error it names raised here."""
        with self._lock:
            number = next(self._numbers)
            self.send({"type": "request", "id": number, "kind": kind, **body})
            while True:
                message = frames.receive(self._in)
                if message.get("type") == "reply" and message.get("id") == number:
                    break
                self.pending.append(message)
        if message.get("ok"):
            return message.get("value")
        raise _reply_error(str(message.get("error") or "the agent refused the request"))


def _reply_error(text: str) -> Exception:
    kind, _, detail = text.partition(": ")
    if kind == "not_found":
        return KeyNotFound(detail)
    if kind == "invalid":
        return InvalidRequest(detail)
    return ImpetusError(text)


class PipeStore:
    """The stream store as seen from a worker: every call is a request to the agent."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def _call(self, op: str, key: str | None = None, **more: Any) -> Any:
        return self._channel.request("store", op=op, key=key, **more)

    def get(self, stream_id: str, key: str) -> Any:
        return self._call("get", key)

    def put(self, stream_id: str, key: str, value: Any) -> None:
        self._call("put", key, value=value)

    def add(self, stream_id: str, key: str, value: Any) -> bool:
        return bool(self._call("add", key, value=value))

    def delete(self, stream_id: str, key: str) -> None:
        self._call("delete", key)

    def keys(self, stream_id: str) -> list[str]:
        return list(self._call("keys"))


def _missing_module(exc: ModuleNotFoundError) -> str:
    """Say which module the job's code or args need, and how to ship it: this is not the
    user's function raising (re-running cannot help, so the failure is final)."""
    module = exc.name or str(exc)
    return (
        f"{module} is not installed on the node; ship it with include_modules=[{module!r}]"
        " or install it in the node class's requirements"
    )


def _error(exc: BaseException, name: str, started: float) -> Outcome:
    return Outcome(
        ERROR,
        error=error_record(exc, name),
        started=started,
        finished=time.time(),
        failure=EXCEPTION,
    )


class _Refused(Exception):
    def __init__(self, kind: str, message: str, failure: str = "") -> None:
        super().__init__(message)
        self.kind, self.failure = kind, failure


def _transfer(url: str, data: bytes | None = None) -> bytes:
    headers = {"Content-Type": payloads.CONTENT_TYPE} if data is not None else {}
    method = "PUT" if data is not None else "GET"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=TRANSFER_TIMEOUT) as answer:
        return answer.read()


def _fetch_args(job: dict[str, Any], channel: Channel | None) -> str:
    """The job's encoded args; from S3 (a URL the agent presigns for this job) when they
    travel there, checked against the signed digest before anything is loaded."""
    if job.get("transport") != "s3":
        return job["args"]
    try:
        if channel is None:
            raise ImpetusError("no agent to ask for the args' URL")
        data = _transfer(channel.request("args_url", job=job["id"]))
    except Exception as exc:  # S3 unreachable: not the job's fault, so it may run again
        raise _Refused("payload", f"cannot fetch args {job['args_ref']}: {exc}", CRASH) from exc
    if sha256_hex(data) != job.get("args_digest"):
        raise _Refused("signature", "the args object does not match its signed digest")
    return data.decode()


def _deliver(job: dict[str, Any], result: str, channel: Channel | None) -> Outcome:
    """A result too large for the queue goes to S3; the outcome carries its key."""
    if len(result) <= payloads.INLINE_RESULT_LIMIT:
        return Outcome(READY, result=result)
    if channel is None:
        raise ImpetusError("no agent to ask for an upload URL")
    upload = channel.request("result_url", job=job["id"])
    data = result.encode()
    _transfer(upload["url"], data)
    # The node MACs this digest into the outcome instead of downloading the object again;
    # the client checks the object it downloads against it (a worker that lies only fails
    # its own job).
    return Outcome(READY, result_ref=upload["key"], result_digest=sha256_hex(data))


def run_job(job: dict[str, Any], cache: FunctionCache, channel: Channel | None = None) -> Outcome:
    """Run one job; every failure, including the user's, becomes an error outcome.

    Without a channel (no agent to ask) args must be inline and the result small."""
    started = time.time()
    name = str(job.get("name") or "")
    # The agent's gate (node_agent/gate.py) admitted the job: signature, code digest and
    # Python version are checked there, before any worker sees it.
    try:
        encoded_args = _fetch_args(job, channel)
    except _Refused as refused:
        error = system_error(refused.kind, str(refused), name)
        return Outcome(
            ERROR, error=error, started=started, finished=time.time(), failure=refused.failure
        )
    try:
        fn = cache.get(job["code_digest"], job["code"])
        args = codec.loads(encoded_args)
    except ModuleNotFoundError as exc:  # the job's code needs a module the node lacks
        error = system_error("module", _missing_module(exc), name)
        return Outcome(ERROR, error=error, started=started, finished=time.time())
    except BaseException as exc:  # unpickling runs the job's code too (__reduce__...)
        return _error(exc, name, started)
    try:
        value = fn(args)  # the original passes args as one positional argument
    except BaseException as exc:  # the user's code may raise anything
        return _error(exc, name, started)
    try:
        outcome = _deliver(job, codec.dumps(value), channel)
    except BaseException as exc:  # an unpicklable (or undeliverable) result is an error
        return _error(exc, name, started)
    outcome.started, outcome.finished = started, time.time()
    return outcome


def _ignore_signals() -> None:
    # Ctrl-C and SIGTERM go to the whole process group; the agent decides when workers stop
    # (it drains first), so workers ignore both and leave on the agent's word or pipe EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_batch(
    message: dict[str, Any], channel: Channel, cache: FunctionCache, last_end: float
) -> float:
    """Run one batch's jobs in order; returns when the last one ended (monotonic)."""
    frequency = float(message.get("frequency") or 0.0)
    store = PipeStore(channel)
    for job in message["jobs"]:
        # The original's pacing: `frequency` seconds between the end of one job and the
        # start of the next.
        pause = frequency - (time.monotonic() - last_end)
        if pause > 0:
            time.sleep(pause)
        if job["id"] in channel.take_shed():  # handed back by the agent: never start it
            continue
        channel.send({"type": "started", "job": job["id"]})
        with context.running(job.get("stream", ""), job["id"], store), capture.capture() as out:
            outcome = run_job(job, cache, channel)
        outcome.output = out.output()
        isolation.kill_descendants()  # what the job started does not outlive it
        last_end = time.monotonic()
        channel.send({"type": "outcome", "job": job["id"], "outcome": dataclasses.asdict(outcome)})
    channel.send({"type": "idle"})
    return last_end


def serve(channel: Channel) -> None:
    """Run batches until told to stop or the agent goes away."""
    global ACTIVE_CHANNEL
    ACTIVE_CHANNEL = channel
    cache = FunctionCache()
    last_end = 0.0
    while True:
        try:
            message = channel.next_message()
        except (EOFError, OSError):
            return  # the agent is gone
        if message.get("type") == "shed":  # nothing of it is held here any more
            continue
        if message.get("type") != "batch":
            return
        last_end = run_batch(message, channel, cache, last_end)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    incoming = Connection(int(args[0]), writable=False)
    outgoing = Connection(int(args[1]), readable=False)
    isolation.die_with_parent(int(args[2]))
    _ignore_signals()
    isolation.become_subreaper()
    serve(Channel(incoming, outgoing))
    return 0


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: jobs that import node_agent.worker
    # (or impetus.context) must see the state of the one that runs them.
    from node_agent import worker

    os._exit(worker.main())  # no atexit hooks a job registered: they are not the worker's
