"""Job duration of a stream, measured from its counters alone (no per-job reads).

Little's law: jobs in service = throughput x time in service. Between two ticks DFS sees
how many jobs completed (``finished + acked`` grows) and how many were running at each
end, so ``d = mean running / (completed / elapsed)``. The samples are smoothed by an
EWMA; until a stream has completed anything, ``DEFAULT_JOB_SECONDS`` stands in.
"""

from __future__ import annotations

DEFAULT_JOB_SECONDS = 1.0
ALPHA = 0.3  # weight of the newest sample
MIN_SECONDS, MAX_SECONDS = 0.01, 86400.0


def update(previous: list[float] | None, now: float, completed: int, running: int) -> list[float]:
    """Next ``[t, completed, running, ewma]`` for a stream, from the previous one."""
    if not previous:
        return [now, float(completed), float(running), DEFAULT_JOB_SECONDS]
    t0, c0, r0, ewma = previous
    elapsed, done = now - t0, completed - c0
    if elapsed <= 0 or done < 0:  # clock went back or counters were reset: restart
        return [now, float(completed), float(running), ewma]
    if done == 0:
        if running > 0 and r0 > 0 and elapsed > ewma:
            # Jobs ran the whole interval without one finishing: they take longer.
            ewma = min(MAX_SECONDS, (1 - ALPHA) * ewma + ALPHA * elapsed)
            return [now, float(completed), float(running), ewma]
        return [t0, c0, r0, ewma] if running else [now, float(completed), 0.0, ewma]
    sample = ((r0 + running) / 2) * elapsed / done
    if sample > 0:
        sample = min(MAX_SECONDS, max(MIN_SECONDS, sample))
        ewma = (1 - ALPHA) * ewma + ALPHA * sample
    return [now, float(completed), float(running), ewma]


def job_seconds(sample: list[float] | None) -> float:
    return sample[3] if sample else DEFAULT_JOB_SECONDS
