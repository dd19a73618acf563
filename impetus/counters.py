"""Stream counter updates gathered and written together, for node agents.

Every claim and every completion changes a stream's backlog counters (waiting, running,
finished, errors): written one by one, that is two of the ~6 requests of a claim cycle.
A node agent instead adds the deltas up here and writes them once per ``interval``, one
UpdateItem per stream.

The price, stated where it is paid: counters lag by up to ``interval`` seconds, and a
node killed between two flushes loses its unwritten deltas, so the counters drift a
little (as they already can when a process dies between a write and its count). Nothing
relies on them being exact: reapers visit every stream that is not idle by any counter
(:func:`impetus.streams.may_hold_claims`), and the queue itself is the truth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.5  # seconds


class BufferedCounters:
    """Drop-in for ``Streams.count`` that defers the writes (thread-safe)."""

    def __init__(self, streams: Any, interval: float = FLUSH_EVERY) -> None:
        self._streams = streams
        self._interval = interval
        self._pending: dict[str, defaultdict[str, int]] = {}
        self._lock = threading.Lock()
        self._flushed_at = time.monotonic()

    def count(self, stream_id: str, **deltas: int) -> None:
        with self._lock:
            merged = self._pending.setdefault(stream_id, defaultdict(int))
            for name, delta in deltas.items():
                merged[name] += delta

    def maybe_flush(self) -> None:
        if time.monotonic() - self._flushed_at >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Write every stream's summed deltas; a failed write is kept for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed_at = time.monotonic()
        for stream_id, deltas in pending.items():
            try:
                self._streams.count(stream_id, **deltas)
            except Exception:
                log.warning("counter update of stream %s failed; kept for later", stream_id)
                self.count(stream_id, **deltas)
