"""Worker pool arithmetic: how many jobs to claim, how to split them, when to retire.

Pure functions; the agent owns the processes. Rules (from the original): at most
``mpps`` workers per stream, never more workers than jobs in hand (workers are spawned
lazily, only when claimed jobs outnumber what idle workers can take), and a worker
idle longer than the stream's ``timeout`` is retired.
"""

from __future__ import annotations

import math

# The most jobs one claim asks for (one Queue round trip; keeps claim items small).
MAX_CLAIM = 64


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
