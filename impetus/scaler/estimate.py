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
anchor t, running at anchor, throughput, busy seconds since anchor]``; the 4- and 8-number
forms of earlier versions are read as a measured estimate (without a throughput).

The same samples give the stream's *throughput*: jobs completed per second the stream
had work (seconds between ticks where nothing ran do not count, so a stream that works
in bursts is measured at its burst rate), smoothed the same way. While the fleet
keeps up, that is the arrival rate, and ``throughput * d`` is how many worker slots the
stream keeps busy on average (Little's law again). The policy uses it as a floor under
scale-in only (:func:`impetus.scaler.policy.stream_floor`): a fleet that does not keep up
completes only what it can, so the floor would never ask for more than it already has.
"""

from __future__ import annotations

DEFAULT_JOB_SECONDS = 1.0
ALPHA = 0.3  # weight of the newest sample
MIN_SECONDS, MAX_SECONDS = 0.01, 86400.0
MIN_DONE = 20  # completions per sample
MIN_DONE_SECONDS = 60.0  # ... or this long with at least one
STATE_LENGTH = 10


def _state(previous: list[float]) -> list[float]:
    if len(previous) >= STATE_LENGTH:
        return list(previous[:STATE_LENGTH])
    if len(previous) >= 8:  # before throughput: none measured, busy time unknown
        return [*previous[:8], 0.0, previous[0] - previous[6]]
    t, completed, running, ewma = previous[:4]
    return [t, completed, running, ewma, 0.0, 1.0, t, running, 0.0, 0.0]


def update(previous: list[float] | None, now: float, completed: int, running: int) -> list[float]:
    """Next state of a stream's estimate, from the previous one."""
    if not previous:
        return [now, completed, running, DEFAULT_JOB_SECONDS, 0.0, 0.0, now, running, 0.0, 0.0]
    t, c0, r0, ewma, area, samples, anchor, r_anchor, rate, busy = _state(previous)
    fresh = [now, completed, running, ewma, 0.0, samples, now, running, rate, 0.0]
    elapsed, done = now - t, completed - c0
    if elapsed <= 0 or done < 0:  # clock went back or counters were reset: restart
        return fresh
    area += (r0 + running) / 2 * elapsed
    if r0 > 0 or running > 0:
        busy += elapsed
    if done == 0:
        if running == 0 and r0 == 0:  # nothing ran: nothing to measure, move the anchor
            return fresh
        if running > 0 and r0 > 0 and now - anchor > ewma:
            # Jobs ran the whole time without one finishing: they take longer.
            ewma = min(MAX_SECONDS, (1 - ALPHA) * ewma + ALPHA * (now - anchor))
        return [now, c0, running, ewma, area, samples, anchor, r_anchor, rate, busy]
    if done < MIN_DONE and now - anchor < MIN_DONE_SECONDS:
        return [now, c0, running, ewma, area, samples, anchor, r_anchor, rate, busy]
    # Jobs still running at either end ran part of their time inside the window: count
    # half of those that started in it and still run (finite-window Little's law).
    counted = max(1.0, done + (running - r_anchor) / 2)
    sample = min(MAX_SECONDS, max(MIN_SECONDS, area / counted))
    ewma = sample if samples == 0 else (1 - ALPHA) * ewma + ALPHA * sample
    throughput = done / max(busy, MIN_SECONDS)
    rate = throughput if samples == 0 or rate <= 0 else (1 - ALPHA) * rate + ALPHA * throughput
    return [now, completed, running, ewma, 0.0, samples + 1, now, running, rate, 0.0]


def job_seconds(sample: list[float] | None) -> float:
    return sample[3] if sample else DEFAULT_JOB_SECONDS


def throughput(sample: list[float] | None) -> float:
    """Jobs/s the stream completed while it had work (0: not measured yet)."""
    return _state(sample)[8] if sample else 0.0
