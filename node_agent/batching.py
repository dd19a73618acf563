"""Per-worker batch size that adapts to how long a stream's jobs take.

Handing a worker several short jobs per dispatch saves Queue round trips (one claim and
one complete per dispatch); handing it several long ones would starve the other workers.
Aim for ``target`` seconds of work (job time plus the ``frequency`` pause) per worker
per dispatch, within [min_batch, max_batch]. Unknown durations start at 1.

The target is 0.5 s: a dispatch costs a claim and a completion (several Queue requests,
tens of ms on a loaded local stack) during which the worker waits, so 50 ms jobs one at
a time left workers idle a third of the time; ten per dispatch keep them busy. The tail
this adds (a worker's last batch) is at most ~0.5 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TARGET_SECONDS = 0.5
MIN_BATCH = 1
MAX_BATCH = 16


@dataclass
class BatchSizer:
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
