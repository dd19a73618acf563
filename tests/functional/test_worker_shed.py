"""Handing back queued jobs (a Spot signal) through the agent's real pool and real
workers: the worker skips the jobs taken back, finishes the one it runs, reports its
batches idle and stays usable; abandoning a running job records no outcome for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from node_agent.claims import Claims
from node_agent.pool import Pool
from tests.nodeharness import flight_of, make_job, stream_run, support


def mark_then_sleep(args):
    path, seconds = args
    Path(path).write_text("started")
    time.sleep(seconds)
    return "slept"


def touch(path):
    Path(path).write_text("ran")
    return "ran"


def wait_until(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_queued_jobs_taken_back_are_skipped_and_the_worker_goes_on(tmp_path):
    pool = Pool(Claims(queue=None), 1.0, threading.Event(), support())
    run = stream_run()
    pool.runs[run.stream.id] = run
    marker = tmp_path / "long"
    jobs = [make_job(mark_then_sleep, (str(marker), 1.0), "long")]
    jobs += [make_job(touch, str(tmp_path / f"q{i}"), f"q{i}") for i in range(2)]
    flight = flight_of(jobs)
    pool.hand_out(run, flight, jobs, batch=3)  # one worker, one batch of three
    try:
        wait_until(lambda: (pool.wait(0.05), marker.exists())[1])
        pool.wait(0.2)  # its "started" is read
        assert pool.shed() == 2
        assert flight.unrun == {"q0", "q1"} and flight.pending == {"long"}
        [worker] = pool.workers()
        wait_until(lambda: (pool.wait(0.05), not worker.busy)[1])
        assert flight.outcomes["long"].status == "ready" and not flight.pending
        assert not any((tmp_path / f"q{i}").exists() for i in range(2))  # never ran
        assert worker.alive() and pool.workers() == [worker]

        again = [make_job(touch, str(tmp_path / "after"), "after")]
        second = flight_of(again)
        pool.hand_out(run, second, again, batch=1)
        wait_until(lambda: (pool.wait(0.05), not second.pending)[1])
        assert second.outcomes["after"].status == "ready"
    finally:
        pool.stop_all()


def test_an_abandoned_running_job_gets_no_outcome_and_goes_back_unrun(tmp_path):
    pool = Pool(Claims(queue=None), 1.0, threading.Event(), support())
    run = stream_run()
    pool.runs[run.stream.id] = run
    marker = tmp_path / "long"
    jobs = [make_job(mark_then_sleep, (str(marker), 60.0), "long")]
    flight = flight_of(jobs)
    pool.hand_out(run, flight, jobs, batch=1)
    try:
        wait_until(lambda: (pool.wait(0.05), marker.exists())[1])
        [worker] = pool.workers()
        pool.abandon_running()
        assert flight.outcomes == {} and flight.unrun == {"long"} and not flight.pending
        assert not worker.alive() and pool.workers() == []
    finally:
        pool.stop_all()
