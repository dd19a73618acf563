"""When a failed job runs again: the retry policy as one pure function.

Two budgets, because they fail for different reasons:

* ``retries`` (default 0) counts re-runs after the user's function *raised*. They wait
  an exponential backoff with jitter, so a flaky dependency gets time to recover.
* ``max_attempts`` (default 3) counts runs *lost* to a dead worker or node (kill -9, out
  of memory, segfault, an expired lease). They run again at once; the last one lost
  becomes the error ``lost: ...``, so a job that kills its worker cannot loop forever.

Errors outside both (a bad signature, a Python mismatch) are final at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from impetus.core.jobs import CRASH, ERROR, EXCEPTION, Outcome

MAX_BACKOFF = 300.0  # seconds: the longest wait between two retries


@dataclass(frozen=True)
class Rerun:
    """Run the job again as ``attempt``, not before ``delay`` seconds from now."""

    attempt: int
    failures: int  # exception re-runs used, including this one
    delay: float


def backoff(failures: int, base: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random.

    The fixed half keeps retries from hammering a struggling dependency; the random half
    keeps many jobs that failed together from retrying together.
    """
    ceiling = min(MAX_BACKOFF, base * 2**failures)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def next_run(
    outcome: Outcome,
    *,
    attempt: int,
    failures: int,
    retries: int,
    max_attempts: int,
    backoff_base: float,
    rng: random.Random | None = None,
) -> Rerun | None:
    """The job's next run after ``outcome`` of run number ``attempt`` (0-based), or None
    when the outcome is final."""
    if outcome.status != ERROR:
        return None
    if outcome.failure == EXCEPTION and failures < retries:
        return Rerun(attempt + 1, failures + 1, backoff(failures, backoff_base, rng))
    lost_before = attempt - failures
    if outcome.failure == CRASH and lost_before + 1 < max_attempts:
        return Rerun(attempt + 1, failures, 0.0)
    return None
