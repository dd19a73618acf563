"""The job-running function of node workers, and a real worker process over its pipe."""

from __future__ import annotations

import inspect
import os
import signal
import threading
import time
from multiprocessing.connection import wait

import pytest

from impetus.core import codec
from impetus.core.jobs import ERROR, READY, fill_statement
from node_agent.handle import WorkerHandle
from node_agent.worker import FunctionCache, run_job


def make_job(fn, args, job_id="j1", python=codec.PYTHON_VERSION):
    code = codec.dump_function(fn)
    return {
        "id": job_id,
        "index": 0,
        "name": getattr(fn, "__name__", "fn"),
        "code": code,
        "code_digest": codec.digest(code),
        "args": codec.dumps(args),
        "python": python,
        "cloudpickle": codec.CLOUDPICKLE_VERSION,
        "stage": "stage1",
        "attempt": 1,
    }


def square(i):
    return i * i


def divide(pair):
    numerator, denominator = pair
    return numerator / denominator  # the failing statement


def test_runs_function_with_args_as_one_positional_argument():
    outcome = run_job(make_job(square, 7), FunctionCache())
    assert outcome.status == READY
    assert codec.loads(outcome.result) == 49
    assert outcome.error is None
    assert 0 < outcome.started <= outcome.finished


def failing_line(fn) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if "the failing" in line)


def test_error_record_points_at_the_failing_line():
    outcome = run_job(make_job(divide, (1, 0)), FunctionCache())
    assert outcome.status == ERROR
    record = outcome.error
    assert record["type"] == "ZeroDivisionError"
    assert record["name"] == "divide"
    assert record["linenumber"] == failing_line(divide)
    assert "ZeroDivisionError" in record["traceback"]
    assert record["error"] == "division by zero"
    # cloudpickle drops the file name: the client quotes the statement from its source.
    assert record["statement"] == ""
    fill_statement(record, divide)
    assert record["statement"] == "return numerator / denominator  # the failing statement"


def test_unpicklable_result_is_an_error_outcome():
    def make_lock(_):
        return threading.Lock()

    outcome = run_job(make_job(make_lock, None), FunctionCache())
    assert outcome.status == ERROR
    assert outcome.error["type"] == "TypeError"
    assert "lock" in outcome.error["error"]


def test_closures_and_lambdas_travel_by_value():
    offset = 100

    def add_offset(i):
        return i + offset

    assert codec.loads(run_job(make_job(add_offset, 1), FunctionCache()).result) == 101
    lam = run_job(make_job(lambda s: s.upper(), "abc"), FunctionCache())
    assert codec.loads(lam.result) == "ABC"


def test_system_exit_and_keyboard_interrupt_are_caught():
    def leave(_):
        raise SystemExit(3)

    def interrupt(_):
        raise KeyboardInterrupt

    assert run_job(make_job(leave, None), FunctionCache()).error["type"] == "SystemExit"
    assert run_job(make_job(interrupt, None), FunctionCache()).error["type"] == (
        "KeyboardInterrupt"
    )


def test_undecodable_code_is_an_error_outcome():
    job = make_job(square, 1)
    job["code"] = codec.encode_bytes(b"garbage")
    job["code_digest"] = "other"
    outcome = run_job(job, FunctionCache())
    assert outcome.status == ERROR


def test_function_cache_decodes_once_per_digest():
    cache = FunctionCache(size=2)
    job = make_job(square, 2)
    fn = cache.get(job["code_digest"], job["code"])
    assert cache.get(job["code_digest"], "ignored: cached") is fn
    cache.get("b", job["code"])
    cache.get("c", job["code"])  # evicts the least recently used
    with pytest.raises(Exception):  # noqa: B017 - "ignored" is no pickle: it was evicted
        cache.get(job["code_digest"], "ignored")


# --- a real worker process ------------------------------------------------------------------


def read_until_idle(worker: WorkerHandle, timeout: float = 30.0) -> list[dict]:
    received: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wait([worker.conn], 0.5)
        messages, closed = worker.messages()
        received += messages
        if any(m.get("idle") for m in messages) or closed:
            return received
    raise AssertionError("worker did not report idle")


def test_worker_process_runs_a_batch_paced_by_frequency():
    worker = WorkerHandle("s")
    try:
        jobs = [make_job(square, i, job_id=f"j{i}") for i in range(3)]
        worker.assign(jobs, frequency=0.2, flight=None)
        messages = read_until_idle(worker)
        outcomes = {m["job"]: m["outcome"] for m in messages if "job" in m}
        assert {k: codec.loads(v["result"]) for k, v in outcomes.items()} == {
            "j0": 0,
            "j1": 1,
            "j2": 4,
        }
        starts = sorted(o["started"] for o in outcomes.values())
        assert starts[1] - starts[0] >= 0.19 and starts[2] - starts[1] >= 0.19
        assert messages[-1] == {"idle": True}
    finally:
        worker.stop()
    assert worker.exitcode is None  # closed


def test_worker_process_death_is_seen_on_its_sentinel():
    worker = WorkerHandle("s")
    try:
        worker.assign([make_job(time.sleep, 30)], frequency=0, flight=None)
        time.sleep(0.5)
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.sentinel in wait([worker.sentinel], 10)
        worker.process.join(5)
        assert worker.exitcode == -signal.SIGKILL
        _, closed = worker.messages()
        assert closed
    finally:
        worker.kill()
