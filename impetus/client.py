"""The client programming model: ``class App(Impetus)`` with a startup, stages, a shutdown.

How a run goes (``Impetus.run``):

1. ``startup`` runs; its forks default to the first stage.
2. One collector loop in the calling thread polls each unfinished stage's results
   (``GET /results?stage=S``), calls the stage with the new jobs ``(ready, errors)``, sends
   its forks, appends the jobs to ``<taskdir>/<id>/<stage>.ok`` or ``.err`` (``taskdir``
   defaults to ``$IMPETUS_HOME/tasks``) and then acknowledges the batch. Stage
   calls never overlap, so stages need no locks for the instance's state. A stage ends
   when the step before it (startup, then the previous stage) has ended and every job
   forked into it has been collected.
3. ``shutdown(ready, errors, progress)`` gets every job of the task files by stage,
   ``{stage: [job]}``, and ``{stage: {"forked": n, "processed": m}}``.
4. The stream is deleted unless ``run(keep=True)`` or the stream property ``keep``.

Forks are buffered and sent in batches (at most :data:`FLUSH_JOBS` per request, flushed
when full and whenever a step returns). A function is encoded once per function object
and sent once per stream, referenced by its digest.

Exactly-once task files: ids already in a stage's files are loaded at start; such a job is
acknowledged but neither written nor handed to the stage again, so a client restarted with
the same ``id`` resumes without duplicates: a fork without ``job_id`` gets an id derived
from its function, stage and args (see ``ForkSender._derived_id``), so the restarted run's
forks carry the ids the first run sent, and the queue skips those it has. A fork
whose ``job_id`` is already in the files counts as forked and processed at once. A stage
may see a batch twice only if the client died after the stage ran and before the batch
was written; its forks are idempotent when it uses deterministic ``job_id`` values.

:class:`Impetus` declares the steps and runs them; the work is done by its parts (see
docs/architecture.md): the stream (:mod:`impetus.session`), the fork sender
(:mod:`impetus.forks`), the result collector (:mod:`impetus.results`) and the task files
and counts (:mod:`impetus.ledger`). :class:`impetus.Executor` is built on the same parts.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from impetus import timeline
from impetus.api_client import ApiClient
from impetus.core import codec
from impetus.core.config import DisplaySettings, tasks_root
from impetus.core.exceptions import ImpetusError
from impetus.core.keys import JOB_ID
from impetus.forks import FLUSH_BYTES, FLUSH_JOBS, Callback, ForkSender, FunctionTable
from impetus.ledger import STARTUP, JobLedger, TaskFiles
from impetus.polling import Pacer
from impetus.progress import Progress
from impetus.results import RESULTS_LIMIT, ResultCollector
from impetus.session import StreamSession, StreamStore
from impetus.streamkeys import taskfile_key
from impetus.streamname import program_name, with_default_name

# FLUSH_* and RESULTS_LIMIT are re-exported: the module doc and callers name them here.
__all__ = [
    "FLUSH_BYTES",
    "FLUSH_JOBS",
    "RESULTS_LIMIT",
    "SHUTDOWN",
    "STARTUP",
    "Impetus",
    "StreamStore",
]

SHUTDOWN = "shutdown"

_ORDER = itertools.count()  # declaration order of decorated steps, across classes


#: ``Impetus(taskdir=...)``'s default: ``$IMPETUS_HOME/tasks`` (impetus.core.config).
TASKDIR_DEFAULT = "$IMPETUS_HOME/tasks"


def _taskdir(taskdir: str | os.PathLike[str] | None) -> Path | None:
    if taskdir is None:
        return None
    return tasks_root() if taskdir == TASKDIR_DEFAULT else Path(taskdir)


def _mark(fn: Callable[..., Any], role: str) -> Callable[..., Any]:
    fn._impetus_role = role  # type: ignore[attr-defined]
    fn._impetus_order = next(_ORDER)  # type: ignore[attr-defined]
    return fn


def _single(cls: type, roles: dict[str, str], role: str) -> str | None:
    names = [name for name, r in roles.items() if r == role]
    if len(names) > 1:
        raise TypeError(f"{cls.__name__}: more than one @Impetus.{role}: {names}")
    return names[0] if names else None


class Impetus:
    """Base class of an Impetus program. See the module doc and docs/architecture.md.

    Its parts live under underscore names (``_session``, ``_forks``, ...): a subclass's
    own attributes share the instance's namespace.
    """

    #: The API client class; a hook for unit tests (the end-to-end tests use the real one).
    api_class: type = ApiClient

    _startup_name: str | None = None
    _stage_names: tuple[str, ...] = ()
    _shutdown_name: str | None = None

    # --- declaration ------------------------------------------------------------------------
    @staticmethod
    def node(fn: Callable[..., Any]) -> Any:
        """A function that runs on nodes. Callable as a plain function, on the class too."""
        fn._impetus_node = True  # type: ignore[attr-defined]
        return staticmethod(fn)

    @staticmethod
    def startup(fn: Callable[..., Any]) -> Callable[..., Any]:
        """``startup(self)``: runs first; forks default to the first stage."""
        return _mark(fn, STARTUP)

    @staticmethod
    def process(fn: Callable[..., Any]) -> Callable[..., Any]:
        """``stage(self, ready, errors)``: a stage, called once per batch of its jobs."""
        return _mark(fn, "process")

    @staticmethod
    def shutdown(fn: Callable[..., Any]) -> Callable[..., Any]:
        """``shutdown(self, ready, errors, progress)``: runs last."""
        return _mark(fn, SHUTDOWN)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        roles: dict[str, str] = {}  # name -> role; a base's position survives an override
        for klass in reversed(cls.__mro__):
            marked = [
                (attr._impetus_order, name, attr._impetus_role)
                for name, attr in vars(klass).items()
                if getattr(attr, "_impetus_role", None)
            ]
            for _, name, role in sorted(marked):
                roles[name] = role
        for name in list(roles):  # an override without the decorator drops the step
            if getattr(getattr(cls, name, None), "_impetus_role", None) is None:
                del roles[name]
        cls._startup_name = _single(cls, roles, STARTUP)
        cls._shutdown_name = _single(cls, roles, SHUTDOWN)
        cls._stage_names = tuple(name for name, role in roles.items() if role == "process")
        if STARTUP in cls._stage_names:
            raise TypeError(f"{cls.__name__}: a stage cannot be named {STARTUP!r}")

    # --- construction -------------------------------------------------------------------------
    def __init__(
        self,
        address: str | None = None,
        authkey: str | None = None,
        taskdir: str | os.PathLike[str] | None = TASKDIR_DEFAULT,
        id: str | None = None,  # the seed's parameter name
        include_modules: Iterable[str | ModuleType] = (),
        **properties: Any,
    ) -> None:
        # Modules to ship by value though installed here (impetus.core.codec): checked
        # before the stream exists, so a typo fails without leaving one behind.
        codec.ship_by_value(include_modules)
        properties = with_default_name(properties, id is None, program_name(type(self).__name__))
        self._session = StreamSession.open(address, authkey, id, properties, self.api_class)
        self.id: str = self._session.id
        self.properties: dict[str, Any] = self._session.properties
        self.store: StreamStore = self._session.store
        # None: no task files; the default: under IMPETUS_HOME, not the working directory
        self.taskdir = _taskdir(taskdir)
        self._current: str | None = None  # the step running now (explicit bookkeeping)
        self._last_step: str | None = None
        self._ended: set[str] = set()
        stream_dir = self.stream_dir
        self._files = (
            TaskFiles(stream_dir, self._stage_names, taskfile_key(self.id))
            if stream_dir is not None
            else None
        )
        self._ledger = JobLedger(self._stage_names, self._files)
        functions = FunctionTable()
        self._forks = ForkSender(self._session, functions, self._ledger, self._route)
        self._collector = ResultCollector(
            self._session, functions, self._ledger, self._files, self._hand_over
        )

    @property
    def stream_dir(self) -> Path | None:
        return self.taskdir / self.id if self.taskdir is not None else None

    # --- forking ------------------------------------------------------------------------------
    def fork(
        self,
        target: Callable[..., Any],
        args: Any = None,
        callback: Callback = None,
        priority: int | None = None,
        job_id: str | None = None,
        delay: float | None = None,
        **properties: Any,
    ) -> str:
        """Queue ``target(args)`` on the nodes; returns the job id at once.

        ``callback``: the stage (method or name) that receives the result; default the
        stage after the running one. A given ``job_id`` makes the fork idempotent.
        """
        if isinstance(target, staticmethod):
            target = target.__func__
        if not callable(target):
            raise TypeError(f"fork target must be callable, not {type(target).__name__}")
        if job_id is not None and (not isinstance(job_id, str) or not JOB_ID.match(job_id)):
            raise ValueError(f"invalid job_id {job_id!r}: must match {JOB_ID.pattern}")
        encoded_args = codec.dumps(args)  # fail here, in the caller's frame, if unpicklable
        return self._forks.fork(
            target,
            encoded_args,
            job_id=job_id,
            callback=callback,
            priority=priority,
            delay=delay,
            properties=properties,
        )

    def map(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callback = None,
        priority: int | None = None,
    ) -> list[str]:
        """Queue ``fn(item)`` for every item, packed ``chunksize`` items per job record.

        Few records and few requests for many small calls; the receiving stage sees one
        job per item, in order, with ids ``<chunk id>:<index>``. Returns those item ids.
        Default chunksize: about 16 chunks (see :mod:`impetus.mapping`).
        """
        return self._forks.map(fn, list(iterable), chunksize, callback=callback, priority=priority)

    def flush(self) -> None:
        """Send the buffered forks now (a step's forks are sent when it returns anyway)."""
        self._forks.flush()

    def cancel(self, job_ids: list[str] | None = None) -> dict[str, list[str]]:
        """Take forked jobs that no node has claimed out of the queue: they never run and
        the run stops waiting for them. ``job_ids``: the forks' ids (None: every waiting
        or delayed job of the stream). Returns {"cancelled", "running_or_done",
        "unknown"} id lists (see ``POST /streams/{id}/cancel``)."""
        self._forks.flush()  # a fork still in the buffer is not in the queue yet
        answer = self._session.api.cancel(self.id, job_ids)
        self._ledger.forget_collected(answer.get("cancelled", []))
        return answer

    def _route(self, callback: Callback) -> tuple[str, str]:
        """(stage, origin) of a fork: the stage that receives its result, by default the
        one after the running step; and the running step, which forked it."""
        stages = self._stage_names
        if callback is None:
            current = self._current
            if current is None or current == STARTUP:
                index = 0
            elif current in stages:
                index = stages.index(current) + 1
            else:
                raise ImpetusError(f"fork from {current!r} needs an explicit callback")
            if index >= len(stages):
                raise ImpetusError(f"no stage after {current or STARTUP!r} to receive the job")
            name = stages[index]
        else:
            name = callback if isinstance(callback, str) else getattr(callback, "__name__", "")
            if name not in stages:
                raise ImpetusError(f"callback {callback!r} is not a stage of {type(self).__name__}")
        if name in self._ended:
            raise ImpetusError(f"stage {name!r} has ended; it cannot receive jobs")
        return name, self._current or STARTUP

    # --- running ----------------------------------------------------------------------------
    def run(
        self, keep: bool = False, progress: Progress | None = None, output: bool | None = None
    ) -> None:
        """Startup, stages until all jobs are collected, shutdown; then delete the stream.

        ``output``: print what jobs wrote (stdout, stderr, logging), each line prefixed
        with the job id; default from ``IMPETUS_SHOW_OUTPUT`` (on unless it is 0).
        """
        progress = progress or Progress()
        if isinstance(progress, Progress) and not progress.name:
            # the status line's head: the stream's name, else its id (as commands show
            # it); any other object with update, note and close is used as it is
            progress.name = str(self.properties.get("name") or self.id)
        show = DisplaySettings.from_env().show_output if output is None else output
        self._collector.echo = progress.note if show else None
        try:
            self._step(STARTUP, self._startup_name, ())
            self._ended.add(STARTUP)
            self._collect_loop(progress)
            progress.update(self._ledger.steps(), self._last_step, force=True)
            ready, errors = self._files.read_all() if self._files else ({}, {})
            self._step(SHUTDOWN, self._shutdown_name, (ready, errors, self.progress()))
        finally:
            self._session.release()  # another run may collect the stream now
            if self._files is not None:
                self._files.close()
            progress.close()
        if not (keep or self.properties.get("keep")):
            self._session.delete()

    def progress(self) -> dict[str, dict[str, int]]:
        """{stage: {"forked": n, "processed": m}} of this run."""
        return self._ledger.progress()

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Draw the stream's timeline (per node and worker: when each job waited, ran and
        returned) as a PNG at ``path`` (impetus.timeline). ``run`` deletes the stream at
        its end: call it from the shutdown step, or after ``run(keep=True)``."""
        return timeline.plot(self._session.api, self.id, path)

    def _step(self, label: str, name: str | None, args: tuple[Any, ...]) -> None:
        """Run one step with its label as the current stage, then send its forks."""
        if name is not None:
            self._current = self._last_step = label
            try:
                getattr(self, name)(*args)
            finally:
                self._current = None
        self._forks.flush()

    def _hand_over(
        self, stage: str, ready: list[dict[str, Any]], errors: list[dict[str, Any]]
    ) -> None:
        """The collector's handler: a batch of new jobs goes to its stage."""
        self._step(stage, stage, (ready, errors))

    def _collect_loop(self, progress: Progress) -> None:
        polled: set[str] = set()
        pacer = Pacer()
        while True:
            self._end_stages(polled)
            active = [s for s in self._stage_names if s not in self._ended]
            if not active:
                return
            got, more = 0, False
            for stage in active:
                # Every stage is polled at least once before it can end: results of an
                # earlier run with this id (written but not acknowledged) may wait there.
                if self._ledger.has_outstanding(stage) or stage not in polled:
                    polled.add(stage)
                    got += self._collector.collect(stage)
                    more = more or self._collector.more
            # jobs running: only impetus's Progress takes them (see run)
            ours = isinstance(progress, Progress)
            running = {"running": self._collector.running()} if ours else {}
            progress.update(self._ledger.steps(), self._last_step, **running)
            wait = pacer.after(got, RESULTS_LIMIT * len(active), more)
            if wait:
                time.sleep(wait)

    def _end_stages(self, polled: set[str]) -> None:
        previous = STARTUP
        for stage in self._stage_names:
            ready_to_end = stage not in self._ended and previous in self._ended
            idle = stage in polled and not self._ledger.has_outstanding(stage) and self._forks.idle
            if ready_to_end and idle:
                self._ended.add(stage)
            previous = stage
