"""Collecting results: poll a stage's results, decode them, hand them over, acknowledge.

One batch goes: ``GET /results?stage=S`` -> verify and decode (args and results only
when impetus.integrity vouches for them; large results from S3; chunk jobs expanded into
their items) -> hand the new jobs ``(ready, errors)`` to the
owner's handler (the pipeline's stage, the executor's futures) -> append them to the
task files -> acknowledge. Jobs the ledger has as done (written by an earlier run, or by
an earlier batch whose acknowledgement was lost) are acknowledged only.

The handler runs before the batch is written, so a client that dies in between sees the
batch again after a restart: with deterministic ``job_id`` values the forks the handler
made are not duplicated. The lines are encoded before the handler runs, so the files hold
what the API returned, whatever the handler does to the job dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from impetus import mapping, taskfiles
from impetus.core import codec, joboutput
from impetus.core.exceptions import ApiError
from impetus.core.jobs import JOB_FIELDS, READY, fill_statement, system_error
from impetus.forks import FunctionTable
from impetus.integrity import OutcomeVerifier
from impetus.ledger import JobLedger, TaskFiles
from impetus.session import StreamSession, deleted_stream

RESULTS_LIMIT = 500
EXTRA_JOB_FIELDS = ("attempt", "node", "started", "finished", "args_ref", "output")

#: ``handler(stage, ready, errors)``: receives each batch's new jobs, decoded.
Handler = Callable[[str, list[dict[str, Any]], list[dict[str, Any]]], None]


@dataclass
class _Batch:
    """The new jobs of one results page, decoded, with their task-file lines."""

    ready: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    ok_lines: list[str] = field(default_factory=list)
    err_lines: list[str] = field(default_factory=list)
    new_ids: set[str] = field(default_factory=set)  # API job ids, new in this page
    line_ids: list[str] = field(default_factory=list)  # ids of the lines (chunks: items')
    key: bytes | None = None  # MACs the lines (see TaskFiles)

    def add(self, job: dict[str, Any]) -> None:
        line = taskfiles.encode_line(job, self.key)  # before the handler can change the job
        if job["status"] == READY:
            self.ready.append(job)
            self.ok_lines.append(line)
        else:
            self.errors.append(job)
            self.err_lines.append(line)
        self.line_ids.append(job["id"])


class ResultCollector:
    """Polls, decodes, hands over and acknowledges the results of one stream.

    ``files``: where batches are written; None keeps no task files (the executor keeps
    results in its futures instead).
    """

    def __init__(
        self,
        session: StreamSession,
        functions: FunctionTable,
        ledger: JobLedger,
        files: TaskFiles | None,
        handler: Handler,
        *,
        on_started: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._session = session
        #: called each round that sees jobs newly started (ids; a node marks a start
        #: within a fraction of a second, and not at all for a job that ends sooner)
        self._on_started = on_started
        self._running: dict[str, set[str]] = {}  # stage -> started, as of its last round
        self._functions = functions
        self._ledger = ledger
        self._files = files
        self._handler = handler
        self._verifier = OutcomeVerifier(session.id, session.key, ledger.fork_digest)
        #: where the jobs' captured output (stdout, stderr, logging) is shown; None: not
        self.echo: Callable[[str], None] | None = None
        #: whether the last page said finished jobs were left out (it was cut to fit the
        #: API's 6 MB answer): the caller asks again at once instead of pacing
        self.more = False

    def collect(self, stage: str) -> int:
        """One results batch of ``stage``: handed over, written and acknowledged at once.
        The number of API jobs in it (0: nothing waiting)."""
        ids = self.receive(stage)
        self.acknowledge(ids)
        return len(ids)

    def receive(self, stage: str) -> list[str]:
        """One results batch of ``stage``, handed over and written but not acknowledged:
        the ids to pass to :meth:`acknowledge` (the caller may send forks first). Until
        then a poll may return them again; they are skipped as done."""
        try:
            raw_jobs = self._fetch(stage)
        except ApiError as exc:
            raise deleted_stream(exc, self._session.id) from None
        if not raw_jobs:
            return []
        batch = self._new_jobs(stage, raw_jobs)
        if batch.ready or batch.errors:
            self._handler(stage, batch.ready, batch.errors)
        if self._files is not None:
            self._files.append(stage, batch.ok_lines, batch.err_lines)
        self._ledger.mark_done(stage, [*batch.new_ids, *batch.line_ids])
        self._ledger.record_collected(stage, batch.new_ids, len(batch.errors))
        return [raw["id"] for raw in raw_jobs]

    def _fetch(self, stage: str) -> list[dict[str, Any]]:
        """A results page (``more`` noted); with ``on_started``, the jobs newly started
        go to it first."""
        page = self._session.api.results_page(self._session.id, stage, RESULTS_LIMIT)
        self.more = bool(page.get("more"))
        started = page.get("started") or []
        new = [job_id for job_id in started if job_id not in self._running.get(stage, ())]
        self._running[stage] = set(started)
        if new and self._on_started is not None:
            self._on_started(new)
        return page["jobs"]

    def running(self) -> int:
        """Jobs a node marked started and not ended, as of each stage's last round."""
        return sum(len(ids) for ids in self._running.values())

    def acknowledge(self, job_ids: list[str]) -> None:
        """Tell the queue these results are kept: it will not return them again."""
        if job_ids:
            try:
                self._session.api.ack(self._session.id, job_ids)
            except ApiError as exc:
                raise deleted_stream(exc, self._session.id) from None

    # --- decoding -----------------------------------------------------------------------------
    def _new_jobs(self, stage: str, raw_jobs: list[dict[str, Any]]) -> _Batch:
        batch = _Batch(key=self._files.key if self._files is not None else None)
        for raw in raw_jobs:
            count = mapping.chunk_count(raw)
            # A chunk job's task-file lines are its items': item 0 marks it done.
            if raw["id"] in batch.new_ids or self._ledger.is_done(stage, raw["id"], bool(count)):
                continue  # written by an earlier batch or run: acknowledge only
            batch.new_ids.add(raw["id"])
            for job in self._jobs_of(raw, count):
                batch.add(job)
        return batch

    def _jobs_of(self, raw: dict[str, Any], count: int | None) -> list[dict[str, Any]]:
        """The job dicts a stage sees for one API job: itself, or a chunk's items."""
        job = self._decode(raw)
        self._echo_output(job)  # a chunk's output once, under the chunk's id
        if count is None:
            return [job]
        fn = self._functions.function(raw.get("code"))
        return mapping.expand(job, count, fn)

    def _decode(self, raw: dict[str, Any]) -> dict[str, Any]:
        """An API job as a stage sees it: args and result decoded, code filled in."""
        job = {key: raw.get(key) for key in JOB_FIELDS}
        job.update({k: raw[k] for k in EXTRA_JOB_FIELDS if raw.get(k) is not None})
        fn = self._functions.function(raw.get("code"))
        job["code"] = self._functions.code(raw.get("code"))
        job["args"] = None
        try:
            if raw.get("result_url"):  # a large result, in S3
                raw["result"] = self._session.api.get_payload(raw["result_url"])
            verdict = self._verifier.check(raw, raw.get("result"))
            if verdict.problem:  # nothing of it is unpickled
                job["status"] = "error"
                job["result"] = system_error("integrity", verdict.problem, job["name"] or "")
            # S3 args stay there (the job shows their args_ref) instead of coming back.
            if verdict.args_ok:
                job["args"] = codec.loads(raw["args"])
            if verdict.result_ok and isinstance(raw.get("result"), str):
                job["result"] = codec.loads(raw["result"])
        except Exception as exc:  # e.g. the result's class cannot be imported here
            job["status"] = "error"
            job["result"] = system_error("DecodeError", f"{type(exc).__name__}: {exc}", job["name"])
        if job["status"] != READY and isinstance(job["result"], dict):
            fill_statement(job["result"], fn)
        return job

    def _echo_output(self, job: dict[str, Any]) -> None:
        if self.echo is not None and job.get("output"):
            self.echo("\n".join(joboutput.lines(job["id"], job["output"])))
