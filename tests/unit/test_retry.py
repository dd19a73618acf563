"""The retry policy: which failed runs run again, when, and when a job gives up."""

from __future__ import annotations

import random

import pytest

from impetus.core import retry
from impetus.core.jobs import CRASH, ERROR, EXCEPTION, READY, Outcome

RAISED = Outcome(ERROR, error={"error": "boom"}, failure=EXCEPTION)
CRASHED = Outcome(ERROR, error={"error": "lost: worker exited"}, failure=CRASH)
REFUSED = Outcome(ERROR, error={"error": "signature: invalid"})


def run_after(outcome, attempt=0, failures=0, retries=0, max_attempts=3, base=1.0):
    return retry.next_run(
        outcome,
        attempt=attempt,
        failures=failures,
        retries=retries,
        max_attempts=max_attempts,
        backoff_base=base,
        rng=random.Random(7),
    )


def test_a_result_is_final():
    assert run_after(Outcome(READY, result="x"), retries=5) is None


def test_an_exception_runs_again_while_retries_last():
    first = run_after(RAISED, retries=2)
    assert (first.attempt, first.failures) == (1, 1) and 0.5 <= first.delay <= 1.0
    second = run_after(RAISED, attempt=1, failures=1, retries=2)
    assert (second.attempt, second.failures) == (2, 2) and 1.0 <= second.delay <= 2.0
    assert run_after(RAISED, attempt=2, failures=2, retries=2) is None


def test_no_retries_by_default():
    assert run_after(RAISED) is None


def test_a_crash_runs_again_at_once_until_max_attempts_were_lost():
    again = run_after(CRASHED, attempt=0, max_attempts=3)
    assert again == retry.Rerun(1, 0, 0.0)
    assert run_after(CRASHED, attempt=1, max_attempts=3) == retry.Rerun(2, 0, 0.0)
    assert run_after(CRASHED, attempt=2, max_attempts=3) is None


def test_exception_retries_do_not_use_up_crash_attempts():
    # two runs raised (retried), none lost yet: a crash now is the first lost run
    assert run_after(CRASHED, attempt=2, failures=2, max_attempts=2) == retry.Rerun(3, 2, 0.0)


def test_refused_jobs_never_run_again():
    assert run_after(REFUSED, retries=9, max_attempts=9) is None


@pytest.mark.parametrize("failures", [0, 3, 20, 200])
def test_backoff_is_jittered_and_capped(failures):
    delays = {retry.backoff(failures, 2.0, random.Random(seed)) for seed in range(20)}
    ceiling = min(retry.MAX_BACKOFF, 2.0 * 2**failures)
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(delays) > 1  # jitter: jobs that failed together do not retry together
