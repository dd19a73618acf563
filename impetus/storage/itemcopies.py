"""Copies of stream items an API container reads once and reuses (impetus.storage.streams).

The API read a stream's item twice per request, strongly consistent (the owner check,
then the route's own read): at 100,000 jobs/s on one stream the API alone put 14,700
read units/s on that one item, whose limit is 3,000
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html).
In a :meth:`ItemCopies.scope` (one request) every read of an item is served by one
eventually consistent read (half the units,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html),
and a copy younger than the scope's ``ttl`` is reused by later requests of the same warm
container: a container reads a stream's item at most once per ``ttl``, however many
requests it serves.

Why a stale copy is safe there: the owner (nonce and key version) never changes while
the stream exists; properties were already trusted for PROPS_TTL (2 s) by the queue's
cache; a stream created a moment ago and missed is read again consistently, and a miss
is never kept. What staleness can do: a request up to ``ttl`` (plus replication, under a
second) after a delete or a property change, in another container, sees the stream as
it was, as an eventually consistent read would. A write to the item in a scope (a
property change, a delete) drops its copy and turns the rest of the scope consistent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Item = dict[str, Any]
MAX_COPIES = 1024  # a container serving more streams than this starts over


class ItemCopies:
    """``read(stream_id, consistent)``: the raw item or None."""

    def __init__(self, read: Callable[[str, bool], Item | None]) -> None:
        self._read = read
        self._copies: dict[str, tuple[float, Item]] = {}
        self._local = threading.local()  # .valid_from: monotonic time, in a scope

    @contextmanager
    def scope(self, ttl: float = 0.0) -> Iterator[None]:
        """Within (this thread): :meth:`get` reuses copies read since ``ttl`` seconds
        before the scope began."""
        self._local.valid_from = time.monotonic() - ttl
        try:
            yield
        finally:
            self._local.valid_from = None

    def get(self, stream_id: str) -> Item | None:
        valid_from = getattr(self._local, "valid_from", None)
        if valid_from is None:
            return self._read(stream_id, True)
        copy = self._copies.get(stream_id)
        if copy is not None and copy[0] >= valid_from:
            return copy[1]
        item = self._read(stream_id, False)
        if item is not None:
            if len(self._copies) >= MAX_COPIES:
                self._copies.clear()
            self._copies[stream_id] = (time.monotonic(), item)
        return item

    def changed(self, stream_id: str) -> None:
        """The item is being written: drop its copy; the rest of the scope reads fresh."""
        self._copies.pop(stream_id, None)
        self._local.valid_from = None
