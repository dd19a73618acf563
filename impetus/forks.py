"""Sending forks: encode each function once, buffer the jobs, POST them in batches.

:class:`FunctionTable` encodes a function once per function object and keeps it by
digest: the sender sends the code once per stream and refers to it by digest; the result
collector quotes it back (the job's ``code``, a failing statement's source).

:class:`ForkSender` buffers the forks and sends them in batches of at most
:data:`FLUSH_JOBS` jobs and about :data:`FLUSH_BYTES` (when the buffer is full, and on
:meth:`ForkSender.flush`). Several threads may fork and flush at once (the executor's
submitters and its sender thread): no lock is held while a request is on its way, so forks
made meanwhile wait in the buffer for the next batch, not for the request; a batch that
fails goes back to the front of the buffer.

Where a fork goes (its stage, and the step that forked it) is the owner's business:
the sender asks a *route* with the fork's ``callback``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from impetus import mapping
from impetus.core import codec
from impetus.core.exceptions import ApiError
from impetus.core.signing import sha256_hex
from impetus.ledger import JobLedger
from impetus.session import StreamSession, deleted_stream
from impetus.storage import payloads

log = logging.getLogger(__name__)

FLUSH_JOBS = 500
FLUSH_BYTES = 4_000_000  # under the API's 6 MB body limit, with room for JSON overhead
CACHED_FUNCTIONS = 256  # function objects a FunctionTable keeps (see FunctionTable)

#: A fork's ``callback`` argument: a stage (method or name), or None for the default.
Callback = Callable[..., Any] | str | None
#: ``route(callback) -> (stage, origin)``: the stage receiving a fork's result and the step
#: that made the fork. Raises when the fork may not go there.
Route = Callable[[Callback], tuple[str, str]]


class FunctionTable:
    """Functions by digest, each encoded once per function object (thread-safe).

    Bounded and weak: the most recently used :data:`CACHED_FUNCTIONS` encodings are kept,
    and the table holds weak references to the functions themselves where they take one,
    so a client making a new callable per call (a lambda in a loop, a bound method of an
    object it then drops) keeps none of them alive, as the stdlib pools keep no finished
    call's callable. An evicted or collected function is encoded again if it comes back;
    a fork keeps its code until it is sent (see ForkSender).
    """

    def __init__(self, size: int = 0) -> None:
        self._size = size or CACHED_FUNCTIONS
        self._lock = threading.Lock()
        self._by_object: OrderedDict[Any, tuple[_Ref, str]] = OrderedDict()  # id -> digest
        # digest -> (the user's function, the encoding): the code to send, the source to quote
        self._by_digest: OrderedDict[str, tuple[_Ref, str]] = OrderedDict()

    def __len__(self) -> int:
        """Function objects alive that the table refers to (for leak checks)."""
        with self._lock:
            return sum(1 for ref, _ in self._by_object.values() if ref() is not None)

    def encode(self, fn: Any) -> tuple[str, str]:
        """(digest, code) of a function."""
        with self._lock:
            digest = self._known(id(fn), fn)
            if digest is None:
                try:
                    code = codec.dump_function(fn)
                except Exception as exc:
                    raise TypeError(f"cannot encode function {fn!r}: {exc}") from exc
                digest = codec.digest(code)
                # The reference also tells a later object with the same id() from fn.
                _put(self._by_object, id(fn), (_ref(fn), digest), self._size)
                _put(self._by_digest, digest, (_ref(mapping.user_function(fn)), code), self._size)
            self._by_digest.move_to_end(digest)
            return digest, self._by_digest[digest][1]

    def function(self, digest: str | None) -> Any:
        """The user's function encoded under ``digest`` (the one a wrapper wraps); None if
        this client did not encode it or no longer holds it."""
        with self._lock:
            return self._by_digest.get(digest or "", (_dead, ""))[0]()

    def code(self, digest: str | None) -> str | None:
        """The encoding under ``digest``; the digest itself if this client did not make it
        (a job forked by an earlier run)."""
        with self._lock:
            return self._by_digest.get(digest or "", (_dead, digest))[1]

    def wrapper(self, fn: Callable[..., Any], kind: type, *options: Any) -> Any:
        """A new ``kind(fn, *options)`` whose encoding is made once per (function, kind,
        options) while ``fn`` lives: the table knows the new wrapper as that encoding."""
        wrapped = kind(fn, *options)
        key = (id(fn), kind, options)
        with self._lock:
            digest = self._known(key, fn)
            if digest is not None:
                _put(self._by_object, id(wrapped), (_ref(wrapped), digest), self._size)
                return wrapped
        digest, _ = self.encode(wrapped)
        with self._lock:
            _put(self._by_object, key, (_ref(fn), digest), self._size)
        return wrapped

    def _known(self, key: Any, fn: Any) -> str | None:
        """The digest cached under ``key`` if it was made from this very ``fn`` and its
        encoding is still held (the caller holds the lock)."""
        cached = self._by_object.get(key)
        if cached is None or cached[0]() is not fn or cached[1] not in self._by_digest:
            return None
        self._by_object.move_to_end(key)
        return cached[1]


_Ref = Callable[[], Any]


def _dead() -> None:
    return None


def _ref(obj: Any) -> _Ref:
    """A weak reference to ``obj``; ``obj`` itself for the few callables that take none
    (builtins do take them; instances of classes with ``__slots__`` may not)."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _put(cache: OrderedDict, key: Any, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


class ForkSender:
    """Encodes, buffers and sends the forks of one stream."""

    def __init__(
        self,
        session: StreamSession,
        functions: FunctionTable,
        ledger: JobLedger,
        route: Route,
        flush_when_full: bool = True,
    ) -> None:
        """``flush_when_full``: a fork that fills the buffer sends it in the forking
        thread; False leaves sending to the owner (the executor's sender thread)."""
        self._session = session
        self._flush_when_full = flush_when_full
        self._functions = functions
        self._ledger = ledger
        self._route = route
        self._lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._buffer_bytes = 0
        self._sending = 0  # batches on their way (see flush)
        self._sent: set[str] = set()  # digests the stream has
        self._unsent_code: dict[str, str] = {}  # code of buffered forks not sent yet
        self._identical_calls: dict[str, int] = {}  # see _derived_id

    @property
    def buffered(self) -> int:
        """Forks waiting in the buffer."""
        with self._lock:
            return len(self._buffer)

    @property
    def sending(self) -> int:
        """Batches of forks on their way."""
        with self._lock:
            return self._sending

    @property
    def idle(self) -> bool:
        """Nothing buffered and nothing on its way."""
        with self._lock:
            return not self._buffer and not self._sending

    # --- forking ------------------------------------------------------------------------------
    def fork(
        self,
        target: Callable[..., Any],
        encoded_args: str,
        *,
        job_id: str | None = None,
        callback: Callback = None,
        priority: int | None = None,
        delay: float | None = None,
        properties: dict[str, Any] | None = None,
    ) -> str:
        """Buffer one job of ``target`` whose args are encoded already; its id.

        Without ``job_id`` the id is derived from the call (see :meth:`_derived_id`). A job
        forked already in this run, or done by an earlier one, is not sent again.
        """
        properties = properties or {}
        with self._lock:
            stage, origin = self._route(callback)
            digest, code = self._functions.encode(target)
            jid = job_id if job_id is not None else self._derived_id(digest, stage, encoded_args)
            chunk = mapping.MAP_PROPERTY in properties
            args_digest = sha256_hex(encoded_args)
            if not self._ledger.add_fork(jid, stage, origin, chunk, args_digest):
                return jid
        spec: dict[str, Any] = {
            "id": jid,
            "name": getattr(target, "__name__", "function"),
            "code": digest,
            "stage": stage,
            **self._args_fields(encoded_args),  # may upload: no lock held meanwhile
        }
        if priority is not None:
            spec["priority"] = int(priority)
        if delay is not None:
            spec["delay"] = float(delay)
        if properties:
            spec["properties"] = properties
        if self._buffered(spec, code) and self._flush_when_full:
            self.flush()
        return jid

    def withdraw(self, job_ids: Iterable[str]) -> list[str]:
        """Take forks that are still in the buffer out of it (they are never sent); the
        ids taken."""
        wanted = set(job_ids)
        with self._lock:
            taken = [spec["id"] for spec in self._buffer if spec["id"] in wanted]
            if taken:
                self._buffer = [spec for spec in self._buffer if spec["id"] not in wanted]
                self._buffer_bytes = self._buffered_bytes()
            return taken

    def map(
        self,
        fn: Callable[..., Any],
        items: list[Any],
        chunksize: int | None = None,
        *,
        callback: Callback = None,
        priority: int | None = None,
        star: bool = False,
        delay: float | None = None,
        properties: dict[str, Any] | None = None,
    ) -> list[str]:
        """Chunk jobs of ``fn`` over ``items`` (``star``: items are argument tuples); the
        ids of the items, ``<chunk id>:<index>``."""
        if isinstance(fn, staticmethod):
            fn = fn.__func__
        if not callable(fn):
            raise TypeError(f"map target must be callable, not {type(fn).__name__}")
        size = mapping.chunk_size(len(items), chunksize)
        runner = self._functions.wrapper(fn, mapping.ChunkRunner, star)
        ids: list[str] = []
        for part, encoded in mapping.chunks(items, size):
            props = {**(properties or {}), mapping.MAP_PROPERTY: len(part)}
            # a derived chunk id: a restarted client re-forks the same chunks (idempotent)
            chunk_id = self.fork(
                runner, encoded, callback=callback, priority=priority, delay=delay, properties=props
            )
            ids += [mapping.item_id(chunk_id, i) for i in range(len(part))]
        return ids

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
        api = self._session.api
        answer = api.upload_urls(self._session.id, 1)
        upload = answer["uploads"][0]
        api.put_payload(upload["url"], answer["content_type"], encoded_args)
        return {
            "transport": "s3",
            "args_ref": upload["ref"],
            "args_digest": sha256_hex(encoded_args),
        }

    def _buffered(self, spec: dict[str, Any], code: str) -> bool:
        """Append a spec to the buffer; True when the buffer is full and due for a flush."""
        with self._lock:
            self._buffer.append(spec)
            # a function the stream does not have yet travels with the batch
            if spec["code"] not in self._sent:
                self._unsent_code[spec["code"]] = code
            self._buffer_bytes += len(spec.get("args") or "") + (
                0 if spec["code"] in self._sent else len(code)
            )
            return len(self._buffer) >= FLUSH_JOBS or self._buffer_bytes >= FLUSH_BYTES

    # --- sending ------------------------------------------------------------------------------
    def flush(self) -> None:
        """Send the buffered forks, batch by batch, until the buffer is empty.

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
                    spec["code"]: self._unsent_code.get(spec["code"])
                    or self._functions.code(spec["code"])
                    for spec in batch
                    if spec["code"] not in self._sent  # sent and accepted before
                }
                self._sending += 1
            answer = self._send(batch, functions)
            with self._lock:
                self._sent.update(functions)
                for digest in functions:
                    self._unsent_code.pop(digest, None)
            if answer.get("existing"):
                log.debug("%d forks existed already", len(answer["existing"]))
            self._ledger.forget_collected(answer.get("acked") or [])

    def _send(self, batch: list[dict[str, Any]], functions: dict[str, Any]) -> dict[str, Any]:
        """POST one batch; on failure, put it back at the front of the buffer."""
        try:
            return self._session.api.enqueue(
                self._session.id, batch, functions, codec.PYTHON_VERSION, codec.CLOUDPICKLE_VERSION
            )
        except BaseException as exc:
            with self._lock:
                self._buffer[:0] = batch
                self._buffer_bytes = self._buffered_bytes()
            if isinstance(exc, ApiError):
                raise deleted_stream(exc, self._session.id) from None
            raise
        finally:
            with self._lock:
                self._sending -= 1

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
