"""A run's timeline: when each job of a stream waited, ran and returned, per node and
worker slot. This module gathers and shapes the data; :mod:`impetus.timelineplot` draws
it (``impetus plot STREAM``, ``Executor.plot``, ``Impetus.plot``).

The stamps come from the job records' ``timeline`` objects (see
impetus.storage.jobqueue.stamps): fork, claim, start, finish and acknowledgement times,
the node, the worker slot and the outcome. Times here are seconds from the stream's
first fork.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A stream's jobs a plot reads at most: a listing reads the whole stream (impetus jobs).
MAX_JOBS = 100_000
UNKNOWN_WORKER = -1  # a run whose slot was not recorded (a lost run, an older node agent)


@dataclass(frozen=True, order=True)
class Row:
    """One line of the plot: a worker slot of a node."""

    node: str
    worker: int

    @property
    def label(self) -> str:
        slot = "?" if self.worker == UNKNOWN_WORKER else str(self.worker)
        return f"{self.node} w{slot}"


@dataclass
class Bar:
    """One job on its row; times in seconds from the stream's first fork (None: unknown)."""

    job: str
    row: Row
    forked: float | None
    claimed: float | None
    started: float | None
    finished: float | None
    acked: float | None
    error: bool


@dataclass
class Timeline:
    title: str
    origin: float  # epoch seconds of the first fork (the x axis' zero)
    bars: list[Bar] = field(default_factory=list)
    unplaced: int = 0  # jobs no node ran yet (waiting, cancelled): no row to put them on

    @property
    def rows(self) -> list[Row]:
        """The rows that ran jobs, sorted by node then slot."""
        return sorted({b.row for b in self.bars})

    @property
    def errors(self) -> int:
        return sum(b.error for b in self.bars)


def stream_title(description: dict[str, Any]) -> str:
    """The stream's name property if it has one, else its id."""
    return str((description.get("properties") or {}).get("name") or description["id"])


def build(title: str, jobs: list[dict[str, Any]]) -> Timeline:
    """The timeline of job listing rows (each with its ``timeline`` object)."""
    lines = [(j["id"], j.get("timeline") or {}) for j in jobs]
    forks = [t["forked_at"] for _, t in lines if t.get("forked_at")]
    starts = [t[k] for _, t in lines for k in ("claimed_at", "started_at") if t.get(k)]
    origin = min(forks or starts or [0.0])
    timeline = Timeline(title, origin)
    for job_id, line in lines:
        if not line.get("node"):
            timeline.unplaced += 1
            continue
        worker = line.get("worker")
        row = Row(str(line["node"]), UNKNOWN_WORKER if worker is None else int(worker))

        def at(key: str, line: dict[str, Any] = line) -> float | None:
            value = line.get(key)
            return None if value is None else float(value) - origin

        timeline.bars.append(
            Bar(
                job=job_id,
                row=row,
                forked=at("forked_at"),
                claimed=at("claimed_at"),
                started=at("started_at"),
                finished=at("finished_at"),
                acked=at("acked_at"),
                error=line.get("outcome") == "error",
            )
        )
    return timeline


# (phase, from, to) of a job's timeline object, as the plot's segments
PHASES = (
    ("waited", "forked_at", "claimed_at"),
    ("queued on node", "claimed_at", "started_at"),
    ("ran", "started_at", "finished_at"),
    ("returned", "finished_at", "acked_at"),
)


def phases_text(line: dict[str, Any]) -> str:
    """``waited 0.9 s, queued on node 1 s, ran 0.003 s, returned 1.5 s (local-0 w1)``:
    the phases known, then the worker (``impetus job``'s timeline line); "" when nothing
    is known."""
    parts = [
        f"{name} {float(line[b]) - float(line[a]):.3g} s"
        for name, a, b in PHASES
        if line.get(a) is not None and line.get(b) is not None
    ]
    text = ", ".join(parts)
    if line.get("node"):
        row = Row(str(line["node"]), int(line.get("worker", UNKNOWN_WORKER)))
        text = f"{text} ({row.label})" if text else row.label
    return text


def gather(api: Any, stream_id: str) -> Timeline:
    """The timeline of a stream, read through the API (an impetus.api_client.ApiClient)."""
    title = stream_title(api.get_stream(stream_id))
    return build(title, api.list_jobs(stream_id, limit=MAX_JOBS)["jobs"])


def plot(api: Any, stream_id: str, path: str | Path) -> Path:
    """Gather a stream's timeline and draw it as a PNG at ``path``; returns the path."""
    from impetus import timelineplot  # matplotlib loads only when a plot is drawn

    return timelineplot.draw(gather(api, stream_id), path)
