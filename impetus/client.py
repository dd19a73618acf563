"""The client programming model: ``class App(Impetus)`` with a startup, stages, a shutdown.

How a run goes (``Impetus.run``):

1. ``startup`` runs; its forks default to the first stage.
2. One collector loop in the calling thread polls each unfinished stage's results
   (``GET /results?stage=S``), calls the stage with the new jobs ``(ready, errors)``, sends
   its forks, appends the jobs to ``<taskdir>/<id>/<stage>.ok`` or ``.err`` and then
   acknowledges the batch. Stage
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
from its function, stage and args (see ``_derived_id``), so the restarted run's forks
carry the ids the first run sent, and the queue skips those it has. A fork
whose ``job_id`` is already in the files counts as forked and processed at once. A stage
may see a batch twice only if the client died after the stage ran and before the batch
was written; its forks are idempotent when it uses deterministic ``job_id`` values.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import IO, Any

from impetus import mapping, taskfiles
from impetus.api_client import ApiClient
from impetus.core import codec, joboutput
from impetus.core.config import ClientSettings, DisplaySettings
from impetus.core.exceptions import ApiError, ImpetusError
from impetus.core.jobs import JOB_FIELDS, READY, fill_statement, system_error
from impetus.core.keys import JOB_ID, STREAM_ID
from impetus.core.signing import sha256_hex
from impetus.polling import Pacer
from impetus.progress import Progress, Step
from impetus.storage import payloads

log = logging.getLogger(__name__)

STARTUP = "startup"
SHUTDOWN = "shutdown"
FLUSH_JOBS = 500
FLUSH_BYTES = 4_000_000  # under the API's 6 MB body limit, with room for JSON overhead
RESULTS_LIMIT = 500
EXTRA_JOB_FIELDS = ("attempt", "node", "started", "finished", "args_ref", "output")

_ORDER = itertools.count()  # declaration order of decorated steps, across classes


def _mark(fn: Callable[..., Any], role: str) -> Callable[..., Any]:
    fn._impetus_role = role  # type: ignore[attr-defined]
    fn._impetus_order = next(_ORDER)  # type: ignore[attr-defined]
    return fn


class StreamStore(MutableMapping):
    """Dict-like view on the stream's key-value store; every access is one API call.

    Values are JSON. A missing key raises KeyError, as a dict does.
    """

    def __init__(self, api: ApiClient, stream_id: str) -> None:
        self._api = api
        self._id = stream_id

    def __getitem__(self, key: str) -> Any:
        try:
            return self._api.store_get(self._id, key)
        except ApiError as exc:
            if exc.status == 404:
                raise KeyError(key) from None
            raise

    def __setitem__(self, key: str, value: Any) -> None:
        self._api.store_put(self._id, key, value)

    def __delitem__(self, key: str) -> None:
        try:
            self._api.store_delete(self._id, key)
        except ApiError as exc:
            if exc.status == 404:
                raise KeyError(key) from None
            raise

    def keys(self) -> list[str]:  # type: ignore[override]  # one call, not a live view
        return list(self._api.store_keys(self._id))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


class _Counts:
    """Per step: jobs forked into it / collected, and jobs it forked / collected."""

    __slots__ = ("errors_into", "forked_by", "forked_into", "processed_by", "processed_into")

    def __init__(self) -> None:
        self.forked_into = self.processed_into = self.forked_by = self.processed_by = 0
        self.errors_into = 0


class Impetus:
    """Base class of an Impetus program. See the module doc and DESIGN.md "Client"."""

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
        taskdir: str | os.PathLike[str] | None = "tasks",
        id: str | None = None,  # the seed's parameter name
        **properties: Any,
    ) -> None:
        stream_id = id if id is not None else uuid.uuid4().hex
        if not STREAM_ID.match(stream_id):
            raise ValueError(f"invalid stream id {stream_id!r}: 1-100 of [A-Za-z0-9_.-]")
        self._api = self.api_class(ClientSettings.resolve(address, authkey))
        answer = self._api.create_stream(stream_id, properties)
        self.id: str = answer.get("id", stream_id)
        self.properties: dict[str, Any] = dict(answer.get("properties") or {})
        if any(self.properties.get(k) != v for k, v in properties.items()):
            # The id existed with other properties: this run's properties win.
            answer = self._api.update_properties(self.id, properties)
            self.properties = dict(answer.get("properties") or {})
        self.store = StreamStore(self._api, self.id)
        # None: no task files (the executor keeps results in its futures instead)
        self.taskdir = Path(taskdir) if taskdir is not None else None
        self._lock = threading.RLock()
        self._current: str | None = None  # the step running now (explicit bookkeeping)
        self._last_step: str | None = None
        self._ended: set[str] = set()
        # fork side
        self._buffer: list[dict[str, Any]] = []
        self._buffer_bytes = 0
        self._sending = 0  # batches of forks on their way (see flush)
        self._fn_cache: dict[int, tuple[Any, str]] = {}  # id(fn) -> (fn, digest)
        # digest -> (function, its encoding): the code to send, and the source to quote
        self._functions: dict[str, tuple[Any, str]] = {}
        self._sent: set[str] = set()  # digests the stream has
        self._wrappers: dict[tuple, tuple[Any, Any]] = {}  # see _wrapper
        self._identical_calls: dict[str, int] = {}  # see _derived_id
        # accounting
        self._job_stage: dict[str, tuple[str, str]] = {}  # forked id -> (stage, origin)
        self._outstanding: dict[str, set[str]] = {s: set() for s in self._stage_names}
        self._done: dict[str, set[str]] = {s: set() for s in self._stage_names}
        self._counts: dict[str, _Counts] = {s: _Counts() for s in (STARTUP, *self._stage_names)}
        self._files: dict[str, IO[str]] = {}
        self._progress = Progress(enabled=False)  # run() sets the real ones
        self._show_output = False
        self._load_done()

    @property
    def stream_dir(self) -> Path | None:
        return self.taskdir / self.id if self.taskdir is not None else None

    # --- forking ------------------------------------------------------------------------------
    def fork(
        self,
        target: Callable[..., Any],
        args: Any = None,
        callback: Callable[..., Any] | str | None = None,
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
        return self._fork_encoded(
            target, encoded_args, job_id, callback, priority, delay, properties
        )

    def map(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[..., Any] | str | None = None,
        priority: int | None = None,
    ) -> list[str]:
        """Queue ``fn(item)`` for every item, packed ``chunksize`` items per job record.

        Few records and few requests for many small calls; the receiving stage sees one
        job per item, in order, with ids ``<chunk id>:<index>``. Returns those item ids.
        Default chunksize: about 16 chunks (see :mod:`impetus.mapping`).
        """
        return self._map(fn, list(iterable), chunksize, callback, priority, star=False)

    def _map(
        self,
        fn: Callable[..., Any],
        items: list[Any],
        chunksize: int | None,
        callback: Callable[..., Any] | str | None,
        priority: int | None,
        star: bool,
    ) -> list[str]:
        """Chunk jobs of ``fn`` over ``items`` (``star``: items are argument tuples)."""
        if isinstance(fn, staticmethod):
            fn = fn.__func__
        if not callable(fn):
            raise TypeError(f"map target must be callable, not {type(fn).__name__}")
        size = mapping.chunk_size(len(items), chunksize)
        runner = self._wrapper(fn, mapping.ChunkRunner, star)
        ids: list[str] = []
        for part, encoded in mapping.chunks(items, size):
            props = {mapping.MAP_PROPERTY: len(part)}
            # a derived chunk id: a restarted client re-forks the same chunks (idempotent)
            chunk_id = self._fork_encoded(runner, encoded, None, callback, priority, None, props)
            ids += [mapping.item_id(chunk_id, i) for i in range(len(part))]
        return ids

    def _wrapper(self, fn: Callable[..., Any], kind: type, *options: Any) -> Any:
        """One wrapper object per (function, kind, options): its code is encoded once."""
        key = (id(fn), kind, options)
        cached = self._wrappers.get(key)
        if cached is None or cached[0] is not fn:
            cached = self._wrappers[key] = (fn, kind(fn, *options))
        return cached[1]

    def _fork_encoded(
        self,
        target: Callable[..., Any],
        encoded_args: str,
        job_id: str | None,
        callback: Callable[..., Any] | str | None,
        priority: int | None,
        delay: float | None,
        properties: dict[str, Any],
    ) -> str:
        """Buffer one job whose args are encoded already (fork, map and the executor)."""
        with self._lock:
            stage = self._resolve_callback(callback)
            digest, code = self._encode(target)
            jid = job_id if job_id is not None else self._derived_id(digest, stage, encoded_args)
            if jid in self._job_stage:
                return jid  # forked already in this run
            origin = self._current or STARTUP
            self._job_stage[jid] = (stage, origin)
            self._counts[stage].forked_into += 1
            self._counts[origin].forked_by += 1
            # collected by an earlier run with this id (a chunk's lines are its items')
            chunk = mapping.MAP_PROPERTY in properties
            if jid in self._done[stage] or (chunk and mapping.item_id(jid, 0) in self._done[stage]):
                self._counted_processed(jid)
                return jid
            self._outstanding[stage].add(jid)
            spec: dict[str, Any] = {
                "id": jid,
                "name": getattr(target, "__name__", "function"),
                "code": digest,
                "stage": stage,
                **self._args_fields(encoded_args),
            }
            if priority is not None:
                spec["priority"] = int(priority)
            if delay is not None:
                spec["delay"] = float(delay)
            if properties:
                spec["properties"] = properties
            self._buffer.append(spec)
            self._buffer_bytes += len(spec.get("args") or "") + (
                0 if digest in self._sent else len(code)
            )
            if len(self._buffer) >= FLUSH_JOBS or self._buffer_bytes >= FLUSH_BYTES:
                self.flush()
        return jid

    def flush(self) -> None:
        """Send the buffered forks (batches of at most FLUSH_JOBS and about FLUSH_BYTES).

        The lock is not held while a batch is on its way: forks made meanwhile (by another
        thread: the executor's submitters) wait in the buffer for the next batch instead
        of for the request. A batch that fails goes back to the front of the buffer.
        """
        while True:
            with self._lock:
                batch = self._take_batch()
                if not batch:
                    return
                functions = {
                    spec["code"]: self._functions[spec["code"]][1]
                    for spec in batch
                    if spec["code"] not in self._sent  # sent and accepted before
                }
                self._sending += 1
            try:
                answer = self._api.enqueue(
                    self.id, batch, functions, codec.PYTHON_VERSION, codec.CLOUDPICKLE_VERSION
                )
            except BaseException:
                with self._lock:
                    self._buffer[:0] = batch
                    self._buffer_bytes = self._buffered_bytes()
                raise
            finally:
                with self._lock:
                    self._sending -= 1
            with self._lock:
                self._sent.update(functions)
                if answer.get("existing"):
                    log.debug("%d forks existed already", len(answer["existing"]))
                self._forget_collected(answer.get("acked") or [])

    def _take_batch(self) -> list[dict[str, Any]]:
        """The next batch off the buffer's front (the caller holds the lock)."""
        batch, size = [], 0
        for spec in self._buffer:
            if batch and (len(batch) >= FLUSH_JOBS or size >= FLUSH_BYTES):
                break
            batch.append(spec)
            size += len(spec.get("args") or "")
        del self._buffer[: len(batch)]
        self._buffer_bytes = self._buffered_bytes()
        return batch

    def _buffered_bytes(self) -> int:
        return sum(len(spec.get("args") or "") for spec in self._buffer)

    def _forget_collected(self, acked: list[str]) -> None:
        """Forks the queue reports as collected by an earlier run, whose task-file lines
        are gone (files deleted, another taskdir): they will never come back, so stop
        waiting for them."""
        for jid in acked:
            stage = self._job_stage.get(jid, ("", ""))[0]
            if jid in self._outstanding.get(stage, ()):
                log.warning(
                    "job %s was collected by an earlier run, but its line is not in %s: "
                    "it will not be delivered again",
                    jid,
                    self.stream_dir,
                )
                self._outstanding[stage].discard(jid)
                self._counted_processed(jid)

    def _derived_id(self, digest: str, stage: str, encoded_args: str) -> str:
        """The id of a fork without ``job_id``: derived from what it runs, so that a
        client restarted with the same stream id makes the same calls under the same ids
        and the queue skips them (idempotent fork). The n-th identical call gets ``-n``.

        Deterministic as long as the args pickle the same way in every process (sets of
        strings do not, under hash randomisation): give ``job_id`` for those.
        """
        call = sha256_hex(f"{digest}\0{stage}\0{encoded_args}")[:20]
        n = self._identical_calls.get(call, 0)
        self._identical_calls[call] = n + 1
        return f"{call}-{n}"

    def _args_fields(self, encoded_args: str) -> dict[str, Any]:
        """Inline args, or (too large for an item) uploaded to S3 through a presigned URL."""
        if len(encoded_args) <= payloads.INLINE_ARGS_LIMIT:
            return {"args": encoded_args}
        answer = self._api.upload_urls(self.id, 1)
        upload = answer["uploads"][0]
        self._api.put_payload(upload["url"], answer["content_type"], encoded_args)
        return {
            "transport": "s3",
            "args_ref": upload["ref"],
            "args_digest": sha256_hex(encoded_args),
        }

    def _encode(self, fn: Any) -> tuple[str, str]:
        """(digest, code) of a function, encoded once per function object."""
        cached = self._fn_cache.get(id(fn))
        if cached is None or cached[0] is not fn:
            try:
                code = codec.dump_function(fn)
            except Exception as exc:
                raise TypeError(f"cannot encode function {fn!r}: {exc}") from exc
            # Keeping fn referenced keeps its id() from being reused by another object.
            cached = (fn, codec.digest(code))
            self._fn_cache[id(fn)] = cached
            self._functions[cached[1]] = (fn, code)
        digest = cached[1]
        return digest, self._functions[digest][1]

    def _resolve_callback(self, callback: Callable[..., Any] | str | None) -> str:
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
        return name

    # --- running ----------------------------------------------------------------------------
    def run(
        self, keep: bool = False, progress: Progress | None = None, output: bool | None = None
    ) -> None:
        """Startup, stages until all jobs are collected, shutdown; then delete the stream.

        ``output``: print what jobs wrote (stdout, stderr, logging), each line prefixed
        with the job id; default from ``IMPETUS_SHOW_OUTPUT`` (on unless it is 0).
        """
        progress = progress or Progress()
        self._progress = progress
        self._show_output = DisplaySettings.from_env().show_output if output is None else output
        try:
            self._step(STARTUP, self._startup_name, ())
            self._ended.add(STARTUP)
            self._collect_loop(progress)
            progress.update(self._progress_steps(), self._last_step, force=True)
            ready, errors = self._read_task_files()
            self._step(SHUTDOWN, self._shutdown_name, (ready, errors, self.progress()))
        finally:
            self._close_files()
            progress.close()
        if not (keep or self.properties.get("keep")):
            try:
                self._api.delete_stream(self.id)
            except ApiError as exc:
                if exc.status != 404:
                    raise

    def progress(self) -> dict[str, dict[str, int]]:
        """{stage: {"forked": n, "processed": m}} of this run."""
        with self._lock:
            return {
                s: {
                    "forked": self._counts[s].forked_into,
                    "processed": self._counts[s].processed_into,
                }
                for s in self._stage_names
            }

    def _step(self, label: str, name: str | None, args: tuple[Any, ...]) -> None:
        """Run one step with its label as the current stage, then send its forks."""
        if name is not None:
            self._current = self._last_step = label
            try:
                getattr(self, name)(*args)
            finally:
                self._current = None
        self.flush()

    def _collect_loop(self, progress: Progress) -> None:
        polled: set[str] = set()
        pacer = Pacer()
        while True:
            self._end_stages(polled)
            active = [s for s in self._stage_names if s not in self._ended]
            if not active:
                return
            got = 0
            for stage in active:
                # Every stage is polled at least once before it can end: results of an
                # earlier run with this id (written but not acknowledged) may wait there.
                if self._outstanding[stage] or stage not in polled:
                    polled.add(stage)
                    got += self._collect(stage)
            progress.update(self._progress_steps(), self._last_step)
            wait = pacer.after(got, RESULTS_LIMIT * len(active))
            if wait:
                time.sleep(wait)

    def _end_stages(self, polled: set[str]) -> None:
        previous = STARTUP
        for stage in self._stage_names:
            ready_to_end = stage not in self._ended and previous in self._ended
            idle = (
                stage in polled
                and not self._outstanding[stage]
                and not self._buffer
                and not self._sending
            )
            if ready_to_end and idle:
                self._ended.add(stage)
            previous = stage

    def _collect(self, stage: str, acks: list[str] | None = None) -> int:
        """One results batch of a stage: hand to the stage, write, acknowledge.

        With ``acks``, the ids to acknowledge are appended there for the caller to send
        later (the executor sends its next forks first); until then a poll may return
        them again, and they are skipped as written.

        The stage runs (and its forks are sent) before the batch is written, so a client
        that dies in between sees the batch again after a restart and re-forks: with
        deterministic ``job_id`` values nothing is lost and nothing is duplicated. The
        lines are encoded before the stage runs, so the files hold what the API returned.
        """
        raw_jobs = self._api.results(self.id, stage, RESULTS_LIMIT)
        if not raw_jobs:
            return 0
        ready: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        lines: dict[bool, list[str]] = {True: [], False: []}  # is ready -> encoded lines
        seen: set[str] = set()
        written: list[str] = []  # ids of the lines (a chunk job's are its items')
        done = self._done[stage]
        for raw in raw_jobs:
            count = mapping.chunk_count(raw)
            # A chunk job's task-file lines are its items': item 0 marks it written.
            marker = raw["id"] if count is None else mapping.item_id(raw["id"], 0)
            if raw["id"] in seen or raw["id"] in done or (count and marker in done):
                continue  # written by an earlier batch or run: acknowledge only
            seen.add(raw["id"])
            for job in self._jobs_of(raw, count):
                is_ready = job["status"] == READY
                (ready if is_ready else errors).append(job)
                lines[is_ready].append(taskfiles.encode_line(job))
                written.append(job["id"])
        if ready or errors:
            self._step(stage, stage, (ready, errors))
        self._write(stage, lines[True], lines[False])
        done.update(seen)
        done.update(written)
        if acks is None:
            self._api.ack(self.id, [raw["id"] for raw in raw_jobs])
        else:
            acks.extend(raw["id"] for raw in raw_jobs)
        with self._lock:
            self._counts[stage].errors_into += len(errors)
            for job_id in seen:
                if job_id in self._outstanding[stage]:
                    self._outstanding[stage].discard(job_id)
                    self._counted_processed(job_id)
        return len(raw_jobs)

    def _print_output(self, job: dict[str, Any]) -> None:
        if self._show_output and job.get("output"):
            self._progress.note("\n".join(joboutput.lines(job["id"], job["output"])))

    def _counted_processed(self, job_id: str) -> None:
        stage, origin = self._job_stage[job_id]
        self._counts[stage].processed_into += 1
        self._counts[origin].processed_by += 1

    def _jobs_of(self, raw: dict[str, Any], count: int | None) -> list[dict[str, Any]]:
        """The job dicts a stage sees for one API job: itself, or a chunk's items."""
        job = self._decode(raw)
        self._print_output(job)  # a chunk's output once, under the chunk's id
        if count is None:
            return [job]
        fn = self._functions.get(raw.get("code") or "", (None, ""))[0]
        return mapping.expand(job, count, getattr(fn, "__wrapped__", fn))

    def _decode(self, raw: dict[str, Any]) -> dict[str, Any]:
        """An API job as a stage sees it: args and result decoded, code filled in."""
        job = {key: raw.get(key) for key in JOB_FIELDS}
        job.update({k: raw[k] for k in EXTRA_JOB_FIELDS if raw.get(k) is not None})
        fn, code = self._functions.get(raw.get("code") or "", (None, raw.get("code")))
        job["code"] = code
        try:
            if raw.get("result_url"):  # a large result, in S3
                raw["result"] = self._api.get_payload(raw["result_url"])
            # S3 args stay there (the job shows their args_ref) instead of coming back.
            job["args"] = codec.loads(raw["args"]) if raw.get("args") else None
            if job["status"] == READY and isinstance(raw.get("result"), str):
                job["result"] = codec.loads(raw["result"])
        except Exception as exc:  # e.g. the result's class cannot be imported here
            job["status"] = "error"
            job["result"] = system_error("DecodeError", f"{type(exc).__name__}: {exc}", job["name"])
        if job["status"] != READY and isinstance(job["result"], dict):
            fill_statement(job["result"], getattr(fn, "__wrapped__", fn))
        return job

    # --- task files -------------------------------------------------------------------------
    def _load_done(self) -> None:
        if self.stream_dir is None:
            return
        for stage in self._stage_names:
            for path in taskfiles.stage_paths(self.stream_dir, stage):
                for job in taskfiles.iter_jobs(path, restore=False):
                    self._done[stage].add(job["id"])

    def _write(self, stage: str, ready: list[str], errors: list[str]) -> None:
        """Append encoded lines, durable before the batch is acknowledged."""
        if self.stream_dir is None:
            return
        ok_path, err_path = taskfiles.stage_paths(self.stream_dir, stage)
        for path, lines in ((ok_path, ready), (err_path, errors)):
            if not lines:
                continue
            fh = self._files.get(str(path))
            if fh is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = self._files[str(path)] = open(path, "a", encoding="ascii")  # noqa: SIM115
            fh.write("".join(line + "\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())

    def _close_files(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def _read_task_files(self) -> tuple[dict[str, list], dict[str, list]]:
        ready: dict[str, list] = {}
        errors: dict[str, list] = {}
        if self.stream_dir is None:
            return ready, errors
        for stage in self._stage_names:
            ok_path, err_path = taskfiles.stage_paths(self.stream_dir, stage)
            ready[stage] = taskfiles.read(ok_path)
            errors[stage] = taskfiles.read(err_path)
        return ready, errors

    def _progress_steps(self) -> list[Step]:
        with self._lock:
            start = self._counts[STARTUP]
            steps = [Step(STARTUP, start.forked_by, start.processed_by)]
            for stage in self._stage_names:
                c = self._counts[stage]
                steps.append(Step(stage, c.forked_into, c.processed_into, c.errors_into))
            return steps


def _single(cls: type, roles: dict[str, str], role: str) -> str | None:
    names = [name for name, r in roles.items() if r == role]
    if len(names) > 1:
        raise TypeError(f"{cls.__name__}: more than one @Impetus.{role}: {names}")
    return names[0] if names else None
