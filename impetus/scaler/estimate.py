"""Job duration of a stream, measured from its counters alone (no per-job reads).

Little's law: jobs in service = throughput x time in service. DFS sees at each tick how
many jobs have completed (``finished + acked`` only grows) and how many run now. It
integrates the running count over its ticks (trapezoids) and, once enough jobs have
completed since the last sample, takes ``d = integral of running / completed``: a
sample over many completions, not one per tick (a tick that sees 3 completions right
after the first nodes boot says nothing reliable). The samples are smoothed by an EWMA;
the first one replaces ``DEFAULT_JOB_SECONDS``, which is a placeholder, not a
measurement.

A sample is taken after ``MIN_DONE`` completions, or after ``MIN_DONE_SECONDS`` with at
least one (slow streams still learn). Jobs that run for longer than the estimate
without one finishing raise it. State per stream (kept in the policy's memory):
``[t, completed at anchor, running at t, ewma, running-seconds since anchor, samples,
anchor t, running at anchor]``; the 4-number form of earlier versions is read as a
measured estimate.
"""

from __future__ import annotations

DEFAULT_JOB_SECONDS = 1.0
ALPHA = 0.3  # weight of the newest sample
MIN_SECONDS, MAX_SECONDS = 0.01, 86400.0
MIN_DONE = 20  # completions per sample
MIN_DONE_SECONDS = 60.0  # ... or this long with at least one


def _state(previous: list[float]) -> list[float]:
    if len(previous) >= 8:
        return list(previous[:8])
    t, completed, running, ewma = previous[:4]
    return [t, completed, running, ewma, 0.0, 1.0, t, running]


def update(previous: list[float] | None, now: float, completed: int, running: int) -> list[float]:
    """Next state of a stream's estimate, from the previous one."""
    if not previous:
        return [now, float(completed), float(running), DEFAULT_JOB_SECONDS, 0.0, 0.0, now, running]
    t, c0, r0, ewma, area, samples, anchor, r_anchor = _state(previous)
    fresh = [now, float(completed), float(running), ewma, 0.0, samples, now, float(running)]
    elapsed, done = now - t, completed - c0
    if elapsed <= 0 or done < 0:  # clock went back or counters were reset: restart
        return fresh
    area += (r0 + running) / 2 * elapsed
    if done == 0:
        if running == 0 and r0 == 0:  # nothing ran: nothing to measure, move the anchor
            return fresh
        if running > 0 and r0 > 0 and now - anchor > ewma:
            # Jobs ran the whole time without one finishing: they take longer.
            ewma = min(MAX_SECONDS, (1 - ALPHA) * ewma + ALPHA * (now - anchor))
        return [now, c0, float(running), ewma, area, samples, anchor, r_anchor]
    if done < MIN_DONE and now - anchor < MIN_DONE_SECONDS:
        return [now, c0, float(running), ewma, area, samples, anchor, r_anchor]
    # Jobs still running at either end ran part of their time inside the window: count
    # half of those that started in it and still run (finite-window Little's law).
    counted = max(1.0, done + (running - r_anchor) / 2)
    sample = min(MAX_SECONDS, max(MIN_SECONDS, area / counted))
    ewma = sample if samples == 0 else (1 - ALPHA) * ewma + ALPHA * sample
    return [now, float(completed), float(running), ewma, 0.0, samples + 1, now, float(running)]


def job_seconds(sample: list[float] | None) -> float:
    return sample[3] if sample else DEFAULT_JOB_SECONDS
