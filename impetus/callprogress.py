"""The executor's progress over its calls (``Executor.map``, ``as_completed`` loops, any
``submit``): one line on stderr, redrawn in place on a terminal::

    square [############............]  60/120  errors 2  14.5/s  ETA 4s  3 running

Off a terminal (when switched on there) it prints the pipeline's plain status line
(impetus.progress.status_line) at most every ``interval`` seconds. On by default only
when stderr is a terminal. A batch ends when every call tracked so far is done: its
line is finished with a newline, and the next calls start a new one.

It reads the futures' own states (done, exception, running), so it counts what the
caller sees, whichever way the results are consumed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import TextIO

from impetus.progress import CLEAR_LINE, RateMeter, Step, bar_line, is_terminal, status_line


class CallProgress:
    """``enabled=None``: on when ``stream`` (default stderr) is a terminal."""

    def __init__(
        self,
        name: str,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        interval: float | None = None,
    ) -> None:
        self._stream = stream or sys.stderr
        self._tty = is_terminal(self._stream)
        self.enabled = self._tty if enabled is None else enabled
        self._interval = interval if interval is not None else (0.25 if self._tty else 5.0)
        self._name = name
        self._lock = threading.Lock()
        self._futures: list[Future] = []
        self._began = 0.0
        self._last = float("-inf")
        self._meter = RateMeter()

    def track(self, futures: Iterable[Future]) -> None:
        """Count these calls in the current batch (a new batch when none is open)."""
        if not self.enabled:
            return
        with self._lock:
            if not self._futures:
                self._began, self._last, self._meter = time.monotonic(), float("-inf"), RateMeter()
            self._futures.extend(futures)

    def rename(self, name: str) -> None:
        """The stream's name changed (an executor's, after its first function)."""
        self._name = name

    def note(self, text: str) -> None:
        """Print a line (a job's output) without garbling the bar: on a terminal the
        bar's line is cleared first, and drawn again below at the next show."""
        with self._lock:
            prefix = "\r" + CLEAR_LINE if self._tty else ""
            self._stream.write(prefix + text.rstrip("\n") + "\n")
            self._stream.flush()
            self._last = float("-inf")

    def show(self, force: bool = False) -> None:
        """Draw the current batch (at most every ``interval`` s unless ``force``, and
        always its last state); end the batch when all its calls are done."""
        if not self.enabled:
            return
        with self._lock:
            if not self._futures:
                return
            total, done, errors, running = _counts(self._futures)
            now = time.monotonic()
            finished = done == total
            if not (force or finished) and now - self._last < self._interval:
                return
            self._last = now
            self._stream.write(self._line(total, done, errors, running, now, finished))
            self._stream.flush()
            if finished:
                self._futures = []

    def _line(
        self, total: int, done: int, errors: int, running: int, now: float, finished: bool
    ) -> str:
        if not self._tty:
            return status_line(self._name, total, done, errors, running, now - self._began) + "\n"
        rate = self._meter.observe(self._name, done, now)
        bar = bar_line(Step(self._name, total, done, errors), rate, label=len(self._name))
        return "\r" + CLEAR_LINE + f"{bar}  {running} running" + ("\n" if finished else "")


def _counts(futures: list[Future]) -> tuple[int, int, int, int]:
    """(calls, done, failed, running): cancelled calls count as done, not failed."""
    done = errors = running = 0
    for future in futures:
        if future.done():
            done += 1
            errors += not future.cancelled() and future.exception(0) is not None
        elif future.running():
            running += 1
    return len(futures), done, errors, running
