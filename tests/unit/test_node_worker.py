"""The job-running function of node workers, and real worker processes via the pool."""

from __future__ import annotations

import dataclasses
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
from tests.nodeharness import make_job, run_jobs, stream_run, support


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


def test_worker_process_runs_a_batch_paced_by_frequency():
    run = stream_run()
    run.stream.params = dataclasses.replace(run.stream.params, frequency=0.2)
    jobs = [make_job(square, i, job_id=f"j{i}") for i in range(3)]
    outcomes = run_jobs(jobs, run=run)
    assert {k: codec.loads(v.result) for k, v in outcomes.items()} == {"j0": 0, "j1": 1, "j2": 4}
    starts = sorted(o.started for o in outcomes.values())
    assert starts[1] - starts[0] >= 0.19 and starts[2] - starts[1] >= 0.19


def test_outcomes_carry_the_agents_worker_slot():
    """Two workers of one stream are slots 0 and 1 (the timeline's rows); the agent
    sets the slot, whatever the worker's report said (it says None)."""
    jobs = [make_job(square, i, job_id=f"j{i}") for i in range(2)]
    outcomes = run_jobs(jobs, run=stream_run(mpps=2), batch=1)
    assert sorted(o.worker for o in outcomes.values()) == [0, 1]


def test_worker_process_death_is_seen_on_its_sentinel():
    worker = WorkerHandle("s", support().identity)
    try:
        worker.assign([make_job(time.sleep, 30)], frequency=0, flight=None)
        time.sleep(0.5)
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.sentinel in wait([worker.sentinel], 10)
        worker.process.wait(5)
        assert worker.exitcode == -signal.SIGKILL
    finally:
        worker.kill()
