"""Accounting of a client's jobs: the task files and the per-step counts behind progress.

:class:`TaskFiles` appends a stage's collected jobs to ``<stream dir>/<stage>.ok`` and
``.err`` (durable before the batch is acknowledged) and reads them back.

:class:`JobLedger` knows, per stage, which jobs were forked into it and by which step,
which are still outstanding and which are *done*: their lines are in the task files
(written by an earlier run with the same stream id, or by this one) or, without task
files, they were collected in this run. A done job is acknowledged but never written or
handed over again: that is what makes a restarted client exactly-once.

It also keeps the digest of the args of every fork this run made: the result collector
unpickles args only when a digest vouches for them (impetus.integrity).

The ledger is shared by the fork sender (forks made) and the result collector (results
collected), which may run in different threads (the executor's), so it has its own lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from impetus import mapping, taskfiles
from impetus.progress import Step

log = logging.getLogger(__name__)

STARTUP = "startup"  # the step before the first stage; its forks count as "forked by"


class TaskFiles:
    """The task files of one stream: ``<stream_dir>/<stage>.ok`` and ``.err``.

    ``key`` MACs the lines (impetus.streamkeys.taskfile_key): :meth:`read_all` restores
    pickled values only from lines whose MAC it verifies.
    """

    def __init__(self, stream_dir: Path, stages: Sequence[str], key: bytes | None = None) -> None:
        self.stream_dir = stream_dir
        self.key = key
        self._stages = tuple(stages)
        self._open: dict[str, IO[str]] = {}  # path -> file kept open for appending

    def written_ids(self, stage: str) -> Iterator[str]:
        """Ids of the jobs in a stage's files (a chunk job's lines are its items')."""
        for path in taskfiles.stage_paths(self.stream_dir, stage):
            for job in taskfiles.iter_jobs(path, restore=False):
                yield job["id"]

    def append(self, stage: str, ready: list[str], errors: list[str]) -> None:
        """Append encoded lines, durable (fsync) before the batch is acknowledged."""
        ok_path, err_path = taskfiles.stage_paths(self.stream_dir, stage)
        for path, lines in ((ok_path, ready), (err_path, errors)):
            if lines:
                fh = self._file(path)
                fh.write("".join(line + "\n" for line in lines))
                fh.flush()
                os.fsync(fh.fileno())

    def _file(self, path: Path) -> IO[str]:
        fh = self._open.get(str(path))
        if fh is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = self._open[str(path)] = open(path, "a", encoding="ascii")  # noqa: SIM115
        return fh

    def read_all(self) -> tuple[dict[str, list], dict[str, list]]:
        """({stage: ready jobs}, {stage: error jobs}), decoded, in file order."""
        ready: dict[str, list] = {}
        errors: dict[str, list] = {}
        for stage in self._stages:
            ok_path, err_path = taskfiles.stage_paths(self.stream_dir, stage)
            ready[stage] = taskfiles.read(ok_path, key=self.key)
            errors[stage] = taskfiles.read(err_path, key=self.key)
        return ready, errors

    def close(self) -> None:
        for fh in self._open.values():
            fh.close()
        self._open.clear()


class _Counts:
    """Per step: jobs forked into it / collected, and jobs it forked / collected."""

    __slots__ = ("errors_into", "forked_by", "forked_into", "processed_by", "processed_into")

    def __init__(self) -> None:
        self.forked_into = self.processed_into = self.forked_by = self.processed_by = 0
        self.errors_into = 0


class JobLedger:
    """Forked, outstanding and done jobs per stage, and the counts of every step.

    ``files``: the stream's task files; their ids are done from the start.
    """

    def __init__(self, stages: Sequence[str], files: TaskFiles | None = None) -> None:
        self._lock = threading.Lock()
        self._stages = tuple(stages)
        self._stream_dir = files.stream_dir if files is not None else None  # for messages
        self._forked: dict[str, tuple[str, str]] = {}  # forked id -> (stage, origin)
        self._digests: dict[str, bytes] = {}  # forked id -> sha256 of its encoded args
        self._outstanding: dict[str, set[str]] = {s: set() for s in self._stages}
        self._done: dict[str, set[str]] = {s: set() for s in self._stages}
        self._counts = {s: _Counts() for s in (STARTUP, *self._stages)}
        if files is not None:
            for stage in self._stages:
                self._done[stage].update(files.written_ids(stage))

    # --- forks ------------------------------------------------------------------------------
    def add_fork(
        self, job_id: str, stage: str, origin: str, chunk: bool = False, args_digest: str = ""
    ) -> bool:
        """Count a fork from step ``origin`` into ``stage``. True if it is to be sent:
        False for an id forked already in this run, or done (collected by an earlier
        run: it counts as forked and processed at once). ``args_digest``: the sha256 of
        its encoded args, what its result's args are checked against."""
        with self._lock:
            if job_id in self._forked:
                return False
            self._forked[job_id] = (stage, origin)
            if args_digest:
                self._digests[job_id] = bytes.fromhex(args_digest)
            self._counts[stage].forked_into += 1
            self._counts[origin].forked_by += 1
            if self._is_done(stage, job_id, chunk):
                self._count_processed(job_id)
                return False
            self._outstanding[stage].add(job_id)
            return True

    def forget_collected(self, job_ids: Iterable[str]) -> None:
        """Forks the queue reports as collected by an earlier run, whose task-file lines
        are gone (files deleted, another taskdir): they will never come back, so stop
        waiting for them."""
        with self._lock:
            for job_id in job_ids:
                stage = self._forked.get(job_id, ("", ""))[0]
                if job_id in self._outstanding.get(stage, ()):
                    log.warning(
                        "job %s was collected by an earlier run, but its line is not in %s: "
                        "it will not be delivered again",
                        job_id,
                        self._stream_dir,
                    )
                    self._outstanding[stage].discard(job_id)
                    self._count_processed(job_id)

    def fork_digest(self, job_id: str) -> str | None:
        """The sha256 of the args this run forked under ``job_id``; None: not forked here."""
        with self._lock:
            digest = self._digests.get(job_id)
        return digest.hex() if digest is not None else None

    # --- results ----------------------------------------------------------------------------
    def is_done(self, stage: str, job_id: str, chunk: bool = False) -> bool:
        """Written (or collected) before; a chunk job is, when its item 0 is."""
        with self._lock:
            return self._is_done(stage, job_id, chunk)

    def mark_done(self, stage: str, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._done[stage].update(job_ids)

    def record_collected(self, stage: str, job_ids: Iterable[str], errors: int) -> None:
        """A batch of ``stage`` was handed over: its jobs are no longer outstanding."""
        with self._lock:
            self._counts[stage].errors_into += errors
            for job_id in job_ids:
                if job_id in self._outstanding[stage]:
                    self._outstanding[stage].discard(job_id)
                    self._count_processed(job_id)

    def has_outstanding(self, stage: str) -> bool:
        """Jobs forked into ``stage`` whose results have not been collected yet."""
        with self._lock:
            return bool(self._outstanding[stage])

    # --- progress ---------------------------------------------------------------------------
    def progress(self) -> dict[str, dict[str, int]]:
        """{stage: {"forked": n, "processed": m}}."""
        with self._lock:
            return {
                s: {
                    "forked": self._counts[s].forked_into,
                    "processed": self._counts[s].processed_into,
                }
                for s in self._stages
            }

    def steps(self) -> list[Step]:
        """The progress display's steps: startup (forked by it), then every stage."""
        with self._lock:
            start = self._counts[STARTUP]
            steps = [Step(STARTUP, start.forked_by, start.processed_by)]
            for stage in self._stages:
                c = self._counts[stage]
                steps.append(Step(stage, c.forked_into, c.processed_into, c.errors_into))
            return steps

    # --- helpers (the caller holds the lock) --------------------------------------------------
    def _is_done(self, stage: str, job_id: str, chunk: bool) -> bool:
        done = self._done[stage]
        return job_id in done or (chunk and mapping.item_id(job_id, 0) in done)

    def _count_processed(self, job_id: str) -> None:
        stage, origin = self._forked[job_id]
        self._counts[stage].processed_into += 1
        self._counts[origin].processed_by += 1
