"""Worker pool arithmetic: how many jobs to claim, how to split them over workers, how
many to hand a worker at once, when to retire an idle one. Pure logic; node_agent/pool.py
owns the processes.

Pool rules: at most ``mpps`` workers per stream, never more workers than jobs in hand
(workers are spawned lazily, only when claimed jobs outnumber what idle workers can
take), and a worker idle longer than the stream's ``idle_timeout`` is retired.

Batches: handing a worker several short jobs per dispatch saves Queue round trips (one
claim and one complete per dispatch); handing it several long ones would starve the
other workers. :class:`BatchSizer` aims for ``target`` seconds of work (job time plus the
``frequency`` pause) per worker per dispatch, within [min_batch, max_batch]. Unknown
durations start at 1. The target is 0.5 s: a dispatch costs a claim and a completion
(several Queue requests, tens of ms on a loaded local stack) during which the worker
waits, so 50 ms jobs one at a time left workers idle a third of the time; ten per
dispatch keep them busy. The tail this adds (a worker's last batch) is at most ~0.5 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The most jobs one claim asks for (one Queue round trip; keeps claim items small).
MAX_CLAIM = 64

TARGET_SECONDS = 0.5
MIN_BATCH = 1
MAX_BATCH = 16


def claim_size(idle: int, total: int, max_workers: int, batch: int, roomy: int = 0) -> int:
    """Jobs to ask for: a batch for every idle worker, every worker we may still spawn
    and every busy worker with room for its next batch (``roomy``)."""
    slots = idle + max(0, max_workers - total) + roomy
    return min(slots * max(1, batch), MAX_CLAIM)


def queued_share(n_jobs: int, idle: int, spawnable: int, batch: int, roomy: int) -> list[int]:
    """Jobs queued behind busy workers' current batches, per roomy worker: only those that
    idle and new workers would not take at ``batch`` each (a free worker always goes first)."""
    extra = max(0, n_jobs - (idle + max(0, spawnable)) * max(1, batch))
    sizes = []
    while extra > 0 and len(sizes) < roomy:
        sizes.append(min(extra, max(1, batch)))
        extra -= sizes[-1]
    return sizes


def split_jobs(n_jobs: int, idle: int, spawnable: int, batch: int) -> tuple[list[int], int]:
    """Split ``n_jobs`` claimed jobs over workers.

    Idle workers all get work when there are enough jobs (they cost nothing); new ones are
    spawned only when the idle ones would take more than ``batch`` each. Returns
    (jobs per worker, idle workers first; number of workers to spawn).
    """
    if n_jobs <= 0:
        return [], 0
    wanted = max(min(idle, n_jobs), math.ceil(n_jobs / max(1, batch)))
    workers = max(1, min(wanted, idle + max(0, spawnable)))
    base, extra = divmod(n_jobs, workers)
    sizes = [base + (1 if i < extra else 0) for i in range(workers)]
    return sizes, max(0, workers - idle)


def should_retire(idle_since: float, now: float, timeout: float) -> bool:
    return now - idle_since > timeout


@dataclass
class BatchSizer:
    """Per-worker batch size of one stream, adapting to how long its jobs take."""

    target: float = TARGET_SECONDS
    min_batch: int = MIN_BATCH
    max_batch: int = MAX_BATCH
    smoothing: float = 0.3  # weight of the newest observation
    average: float | None = None  # seconds per job (exponential moving average)

    def observe(self, duration: float) -> None:
        duration = max(0.0, duration)
        if self.average is None:
            self.average = duration
        else:
            self.average += self.smoothing * (duration - self.average)

    def queue_ahead(self, frequency: float = 0.0) -> bool:
        """Whether a busy worker should already hold its next batch: only for jobs known to
        be short, so a queued batch waits at most about ``target`` seconds (a long job would
        keep it from an idle worker, on this node or a new one, for its whole run)."""
        return self.average is not None and self.average + max(0.0, frequency) <= self.target

    def size(self, frequency: float = 0.0) -> int:
        if self.average is None:
            return self.min_batch
        per_job = self.average + max(0.0, frequency)
        if per_job <= 0:
            return self.max_batch
        return max(self.min_batch, min(self.max_batch, math.floor(self.target / per_job)))
