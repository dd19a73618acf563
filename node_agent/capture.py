"""Capturing a job's output in its worker: stdout, stderr and logging, bounded.

While a job runs, ``sys.stdout`` and ``sys.stderr`` are replaced by tail buffers and a
handler on the root logger records what the job logs (at the levels its loggers let
through: Python's default is WARNING). Each of the three keeps its last
:data:`OUTPUT_LIMIT` bytes (64 KiB, UTF-8); what was cut is named in ``truncated``.
Output written to the file descriptors directly (subprocesses, C extensions) is not
captured: it goes to the node's own log.
"""

from __future__ import annotations

import io
import logging
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

OUTPUT_LIMIT = 64 * 1024
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class TailBuffer(io.TextIOBase):
    """A text stream that keeps only its last ``limit`` bytes (memory stays bounded)."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self._limit = limit
        self._parts: deque[str] = deque()
        self._chars = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._parts.append(text)
        self._chars += len(text)
        # A character is at least one byte: beyond `limit` characters, the head is cut.
        while self._chars - len(self._parts[0]) >= self._limit:
            self._chars -= len(self._parts.popleft())
            self.truncated = True
        if self._chars > 2 * self._limit:  # one huge write: keep its tail only
            head = self._parts.popleft()
            rest = self._chars - len(head)
            self._parts.appendleft(head[-max(1, self._limit - rest) :])
            self._chars = rest + len(self._parts[0])
            self.truncated = True
        return len(text)

    def value(self) -> str:
        """The last ``limit`` bytes of what was written, cut at a character boundary."""
        data = "".join(self._parts).encode("utf-8", "replace")
        if len(data) > self._limit:
            self.truncated = True
            data = data[-self._limit :]
        return data.decode("utf-8", "ignore")


class _TailHandler(logging.Handler):
    def __init__(self, buffer: TailBuffer) -> None:
        super().__init__()
        self.buffer = buffer
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.buffer.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class Captured:
    """What a job wrote; :meth:`output` is the record's ``output`` field."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.buffers = {name: TailBuffer(limit) for name in ("stdout", "stderr", "log")}

    def output(self) -> dict[str, Any] | None:
        """``{"stdout"?, "stderr"?, "log"?, "truncated"?}`` (non-empty parts), or None."""
        found: dict[str, Any] = {}
        for name, buffer in self.buffers.items():
            text = buffer.value()
            if text:
                found[name] = text
        cut = [name for name, buffer in self.buffers.items() if buffer.truncated]
        if cut:
            found["truncated"] = cut
        return found or None


@contextmanager
def capture(limit: int = OUTPUT_LIMIT) -> Iterator[Captured]:
    """Redirect stdout, stderr and root logging into a :class:`Captured` for a block."""
    captured = Captured(limit)
    handler = _TailHandler(captured.buffers["log"])
    root = logging.getLogger()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = captured.buffers["stdout"], captured.buffers["stderr"]
    root.addHandler(handler)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        sys.stdout, sys.stderr = saved
