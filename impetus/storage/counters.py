"""Stream counter updates gathered and written together, for node agents.

Every claim and every completion changes a stream's backlog counters (waiting, running,
finished, errors): written one by one, that is two of the ~6 requests of a claim cycle.
A node agent instead adds the deltas up here and writes them once per ``interval``, one
UpdateItem per stream, on one of its counter items picked at random
(:mod:`impetus.storage.streamcounters`), so 10,000 agents on one stream spread their
writes over its K counter items instead of one item's 1,000 writes per second.

The price, stated where it is paid: counters lag by up to ``interval`` seconds, and a
node killed between two flushes loses its unwritten deltas, so the counters drift a
little (as they already can when a process dies between a write and its count). The
queue itself is the truth: reapers visit every stream that is not idle by any counter
(:func:`impetus.storage.streams.may_hold_claims`), and DFS's audit (:mod:`impetus.scaler.audit`)
sets counters that stay off back to the queue's count.

For that audit to be safe, a delta is either written within ``MAX_DELTA_AGE`` seconds or
dropped (a failed write is retried until then): the audit corrects only a difference that
held for longer, so it does not count a delta still on its way (a single write hanging
in SDK retries longer than that is the exception, and the next audit corrects it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.5  # seconds
MAX_DELTA_AGE = 30.0  # seconds a delta may wait for its write (see the module docstring)


class BufferedCounters:
    """Drop-in for ``Streams.count`` that defers the writes (thread-safe)."""

    def __init__(
        self, streams: Any, interval: float = FLUSH_EVERY, max_age: float = MAX_DELTA_AGE
    ) -> None:
        self._streams = streams
        self._interval = interval
        self._max_age = max_age
        self._pending: dict[str, defaultdict[str, int]] = {}
        self._since: dict[str, float] = {}  # stream -> when its oldest unwritten delta came
        self._lock = threading.Lock()
        self._flushed_at = time.monotonic()

    def count(self, stream_id: str, **deltas: int) -> None:
        self._add(stream_id, deltas, time.monotonic())

    def _add(self, stream_id: str, deltas: dict[str, int], since: float) -> None:
        with self._lock:
            merged = self._pending.setdefault(stream_id, defaultdict(int))
            for name, delta in deltas.items():
                merged[name] += delta
            self._since[stream_id] = min(since, self._since.get(stream_id, since))

    def maybe_flush(self) -> None:
        if time.monotonic() - self._flushed_at >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Write every stream's summed deltas; a failed write is kept for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
            since, self._since = self._since, {}
            self._flushed_at = now = time.monotonic()
        for stream_id, deltas in pending.items():
            try:
                self._streams.count(stream_id, **deltas)
            except Exception:
                if now - since[stream_id] >= self._max_age:
                    log.warning(
                        "counter update of stream %s failed for %.0fs: dropped %s (DFS's "
                        "audit recounts the stream)",
                        stream_id,
                        now - since[stream_id],
                        dict(deltas),
                    )
                    continue
                log.warning("counter update of stream %s failed; kept for later", stream_id)
                self._add(stream_id, deltas, since[stream_id])
