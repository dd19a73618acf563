"""Running jobs on real worker processes through the agent's real pool, without a queue.

A claim is an :class:`InFlight` the test makes; the pool hands its jobs to workers,
reads their reports, answers their requests and kills what overruns, exactly as in the
agent; the test gets each job's :class:`Outcome`.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from impetus.core import codec
from impetus.core.claims import Claim
from impetus.core.jobs import Outcome
from node_agent import isolation
from node_agent.claims import Claims, InFlight
from node_agent.pool import Pool, StreamRun, WorkerSupport
from node_agent.requests import WorkerRequests
from node_agent.streams import StreamParams, TrackedStream


def make_job(fn: Any, args: Any, job_id: str = "j1", stream: str = "s", **more: Any) -> dict:
    code = codec.dump_function(fn)
    return {
        "id": job_id,
        "index": 0,
        "stream": stream,
        "name": getattr(fn, "__name__", "fn"),
        "code": code,
        "code_digest": codec.digest(code),
        "args": codec.dumps(args),
        "python": codec.PYTHON_VERSION,
        "cloudpickle": codec.CLOUDPICKLE_VERSION,
        "stage": "stage1",
        "attempt": 0,
        **more,
    }


def no_aws() -> WorkerRequests:
    def refuse() -> Any:
        raise RuntimeError("this test gives workers no AWS")

    return WorkerRequests(store=refuse, bucket=refuse)


def support(
    requests: WorkerRequests | None = None,
    user: str | None = None,
    env: dict[str, str] | None = None,
    logs: Any = None,
) -> WorkerSupport:
    identity = isolation.identity(os.environ if env is None else env, user)
    extra = {"logs": logs} if logs is not None else {}
    return WorkerSupport(identity=identity, requests=requests or no_aws(), **extra)


def stream_run(stream: str = "s", mpps: int = 1, time_limit: float | None = None) -> StreamRun:
    params = StreamParams(
        mpps=mpps, frequency=0.0, idle_timeout=60.0, lease=60.0, time_limit=time_limit
    )
    return StreamRun(TrackedStream(stream, {}, params, last_active=time.monotonic()))


def flight_of(jobs: list[dict], stream: str = "s") -> InFlight:
    claim = Claim(
        claim_id="c1", stream=stream, node="n", pk="pk", sk="sk", attempt=0,
        expires=time.time() + 60, jobs=[], failures=0, priority=0,
    )  # fmt: skip
    return InFlight(claim, 60.0, {job["id"] for job in jobs})


def run_jobs(
    jobs: list[dict],
    *,
    run: StreamRun | None = None,
    worker_support: WorkerSupport | None = None,
    timeout: float = 60.0,
    batch: int = 100,
) -> dict[str, Outcome]:
    """Every job's outcome, run by the pool's workers (stopped afterwards)."""
    run = run or stream_run(jobs[0].get("stream", "s"))
    pool = Pool(Claims(queue=None), 1.0, threading.Event(), worker_support or support())
    pool.runs[run.stream.id] = run
    flight = flight_of(jobs, run.stream.id)
    pool.hand_out(run, flight, jobs, batch)
    deadline = time.monotonic() + timeout
    try:
        while flight.pending:
            assert time.monotonic() < deadline, f"no outcome for {sorted(flight.pending)}"
            pool.wait(0.5)
        for _ in range(10):  # let the idle reports in, so output is shipped
            if not any(w.busy for w in pool.workers()):
                break
            pool.wait(0.2)
    finally:
        pool.stop_all()
    return flight.outcomes
