"""The client's progress line.

``thread: startup 100/100 -> stage1 100/100 via stage1``: for startup, the jobs it forked
and how many of them have been collected; for each stage, the jobs forked into it and how
many have been collected; ``via`` names the step that ran last. On a terminal the line
updates in place; otherwise a new line is printed when it changed, at most every
``interval`` seconds (logs stay short).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

Step = tuple[str, int, int]  # (name, forked, processed)


def render(steps: Sequence[Step], current: str | None) -> str:
    parts = " -> ".join(f"{name} {processed}/{forked}" for name, forked, processed in steps)
    return f"thread: {parts} via {current or '-'}"


class Progress:
    """Throttled printer of :func:`render` lines."""

    def __init__(
        self, stream: TextIO | None = None, interval: float | None = None, enabled: bool = True
    ) -> None:
        self._stream = stream or sys.stdout
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval if interval is not None else (0.25 if self._tty else 2.0)
        self._enabled = enabled
        self._last_line = ""
        self._last_time = 0.0
        self._width = 0

    def update(self, steps: Sequence[Step], current: str | None, force: bool = False) -> None:
        if not self._enabled:
            return
        line = render(steps, current)
        now = time.monotonic()
        if line == self._last_line or (not force and now - self._last_time < self._interval):
            return
        self._last_line, self._last_time = line, now
        if self._tty:
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            self._stream.write("\r" + line + pad)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End the in-place line so later output starts on its own line."""
        if self._enabled and self._tty and self._last_line:
            self._stream.write("\n")
            self._stream.flush()
