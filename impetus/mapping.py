"""Many calls in few job records: the wrappers behind ``map`` and ``submit``.

A *chunk job* carries a list of call arguments as its args; its function is a
:class:`ChunkRunner`, which runs the user's function over them in order and returns one
outcome per call, ``(OK, value)`` or ``(ERROR, error record)``, so one failing item does
not cost the others their results. The client expands a collected chunk job into one job
dict per item (:func:`expand`, ids ``<chunk id>:<index>``), so stages, task files and
futures see items, never chunks. A chunk job is marked by the job property ``map`` (its
item count).

:class:`Call` is ``submit``'s wrapper: ``fn(*args, **kwargs)`` as one job (a job's function
takes one positional argument, the original's contract).

The wrappers are classes of this installed package, so they travel by reference; the
user's function inside them travels as :func:`impetus.core.codec.dump_function` decides. For
that they present the wrapped function's ``__module__`` and ``__name__``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from impetus.core import codec
from impetus.core.jobs import ERROR, READY, error_record, fill_statement

MAP_PROPERTY = "map"  # job property marking a chunk job; its value is the item count
OK = "ok"
AUTO_CHUNKS = 16  # without a chunksize: about this many chunks (work for every worker)
MAX_AUTO_CHUNKSIZE = 512
MAX_CHUNK_ARGS_BYTES = 300 * 1024  # one chunk's encoded args stay under the 350 KB limit


class _Wrapper:
    """Shared plumbing: carries ``fn`` and passes for it where the codec looks."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__module__ = getattr(fn, "__module__", None) or __name__


def user_function(target: Any) -> Any:
    """The user's function behind a wrapper of this module; ``target`` itself otherwise."""
    return target.__wrapped__ if isinstance(target, _Wrapper) else target


class Call(_Wrapper):
    """``fn(*args, **kwargs)`` from one packed ``(args, kwargs)`` argument."""

    def __call__(self, packed: tuple[tuple[Any, ...], dict[str, Any]]) -> Any:
        args, kwargs = packed
        return self.__wrapped__(*args, **kwargs)


class ChunkRunner(_Wrapper):
    """Runs ``fn`` over a chunk's items; ``star``: each item is a tuple of arguments."""

    def __init__(self, fn: Callable[..., Any], star: bool = False) -> None:
        super().__init__(fn)
        self.star = star

    def __call__(self, items: list[Any]) -> list[tuple[str, Any]]:
        fn = self.__wrapped__
        outcomes: list[tuple[str, Any]] = []
        for item in items:
            try:
                value = fn(*item) if self.star else fn(item)
            except Exception as exc:  # the item's error; the chunk goes on
                outcomes.append((ERROR, error_record(exc, self.__name__)))
            else:
                outcomes.append((OK, value))
        return outcomes


def item_id(chunk_id: str, index: int) -> str:
    return f"{chunk_id}:{index}"


def chunk_size(total: int, chunksize: int | None) -> int:
    """The caller's chunksize, or one that makes about AUTO_CHUNKS chunks."""
    if chunksize is not None:
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be a positive integer")
        return chunksize
    return max(1, min(MAX_AUTO_CHUNKSIZE, math.ceil(total / AUTO_CHUNKS)))


def chunks(items: list[Any], size: int) -> Iterator[tuple[list[Any], str]]:
    """(items, encoded args) per chunk, in order; a chunk whose encoding would exceed the
    payload limit is split in halves until it fits (one huge item is left to the API)."""
    pending = [items[i : i + size] for i in range(0, len(items), size)]
    pending.reverse()
    while pending:
        part = pending.pop()
        encoded = codec.dumps(part)
        if len(encoded) > MAX_CHUNK_ARGS_BYTES and len(part) > 1:
            half = len(part) // 2
            pending += [part[half:], part[:half]]
            continue
        yield part, encoded


def chunk_count(raw: dict[str, Any]) -> int | None:
    """The item count of a chunk job as the API returns it; None for a plain job."""
    props = raw.get("properties")
    if not isinstance(props, dict) or MAP_PROPERTY not in props:
        return None
    count = props[MAP_PROPERTY]
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else 0


def expand(job: dict[str, Any], count: int, fn: Any = None) -> list[dict[str, Any]]:
    """A decoded chunk job as one job dict per item, in order.

    ``count``: the chunk's item count (its ``map`` property). A chunk that failed as a
    whole (lost node, unpicklable result, Python mismatch) gives each item the chunk's
    error record. ``fn`` (the user's function) lets error records quote the failing
    statement from the client's source.
    """
    items = job.get("args") if isinstance(job.get("args"), list) else []
    result = job.get("result")
    outcomes: Iterable[Any]
    if job.get("status") == READY and isinstance(result, list) and len(result) == count:
        outcomes = result
    else:
        record = result if isinstance(result, dict) else {"error": str(result), "type": ""}
        outcomes = [(ERROR, record)] * count
    expanded = []
    for index, (kind, value) in enumerate(outcomes):
        item = dict(job, id=item_id(job["id"], index))
        item["args"] = items[index] if index < len(items) else None
        if kind == OK:
            item.update(status=READY, result=value)
        else:
            value = dict(value)
            fill_statement(value, fn)
            item.update(status=ERROR, result=value)
        expanded.append(item)
    return expanded
