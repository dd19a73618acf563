"""The client's progress display.

Not a terminal (a log, a pipe, CI): one plain status line a person can read, over all
stages (each stage's count added when there are several)::

    helloworld: 30/50 done, 2 errors, 18 waiting, 4 running, 12 s

*done* counts collected jobs, *running* the ones a node marked started (when known),
*waiting* the rest. A new line is printed when it changed, at most every ``interval``
seconds (logs stay short).

On a terminal: one live bar per stage, redrawn in place with ANSI escapes (no curses)::

    startup  forked 100
    stage1   [############........]  60/100  errors 2  14.5/s  ETA 3s

*rate* is collected jobs per second over the last :data:`RATE_WINDOW` seconds, *ETA*
the jobs still outstanding divided by that rate.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple, TextIO

BAR_WIDTH = 24
RATE_WINDOW = 5.0  # seconds of history behind a rate: smooth, yet quick to follow changes
UP_AND_CLEAR = "\x1b[{n}F"  # cursor to the start of the line n lines up
CLEAR_LINE = "\x1b[2K"


class Step(NamedTuple):
    """One step's counts: jobs forked into it (startup: forked by it), collected, errors."""

    name: str
    forked: int
    processed: int
    errors: int = 0


def status_line(name: str, forked: int, done: int, errors: int, running: int, secs: float) -> str:
    """The plain one-line status (see the module doc)."""
    waiting = max(0, forked - done - running)
    return (
        f"{name}: {done}/{forked} done, {errors} errors, {waiting} waiting, "
        f"{running} running, {secs:.0f} s"
    )


def render(steps: Sequence[Step], name: str, running: int, secs: float) -> str:
    """The status line of a pipeline's stages (``steps[0]`` is startup: its jobs are
    counted in their stages)."""
    stages = steps[1:]
    line = status_line(
        name,
        sum(s.forked for s in stages),
        sum(s.processed for s in stages),
        sum(s.errors for s in stages),
        running,
        secs,
    )
    if len(stages) > 1:
        line += " (" + ", ".join(f"{s.name} {s.processed}/{s.forked}" for s in stages) + ")"
    return line


def is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class RateMeter:
    """Collected jobs per second of each stage over a sliding window."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self._window = window
        self._history: dict[str, deque[tuple[float, int]]] = {}

    def observe(self, name: str, processed: int, now: float) -> float | None:
        """Record a count; the rate over the window, None until two samples exist."""
        history = self._history.setdefault(name, deque())
        history.append((now, processed))
        while len(history) > 2 and now - history[1][0] >= self._window:
            history.popleft()
        (t0, n0), (t1, n1) = history[0], history[-1]
        if t1 - t0 <= 0:
            return None
        return max(0.0, (n1 - n0) / (t1 - t0))

    def forget_except(self, names: set[str]) -> None:
        """Drop the history of every name not in ``names`` (a stream gone)."""
        for gone in set(self._history) - names:
            del self._history[gone]


def _eta(left: int, rate: float | None) -> str:
    if left <= 0:
        return "done"
    if not rate:
        return "ETA -"
    seconds = int(left / rate + 0.5)
    if seconds >= 3600:
        return f"ETA {seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"ETA {seconds // 60}m{seconds % 60:02d}s"
    return f"ETA {seconds}s"


def bar_line(step: Step, rate: float | None, width: int = BAR_WIDTH, label: int = 8) -> str:
    """One stage's bar: collected of forked, errors, rate, ETA."""
    name = step.name.ljust(label)
    fraction = step.processed / step.forked if step.forked else 0.0
    filled = round(min(1.0, fraction) * width)
    digits = len(str(step.forked))
    counts = f"{step.processed:>{digits}}/{step.forked}"
    speed = "-" if rate is None else f"{rate:.1f}"
    left = step.forked - step.processed
    eta = _eta(left, rate) if step.forked else "-"  # nothing forked into it yet
    return (
        f"{name} [{'#' * filled}{'.' * (width - filled)}] {counts}"
        f"  errors {step.errors}  {speed}/s  {eta}"
    )


def render_bars(steps: Sequence[Step], rates: dict[str, float | None]) -> list[str]:
    """Startup's forks, then a bar per stage."""
    label = max([len(s.name) for s in steps] + [7])
    lines = []
    for index, step in enumerate(steps):
        if index == 0:  # startup: what it forked (its jobs are counted in their stages)
            lines.append(f"{step.name.ljust(label)}  forked {step.forked}")
        else:
            lines.append(bar_line(step, rates.get(step.name), label=label))
    return lines


class Progress:
    """Throttled printer: live bars on a terminal, else a plain status line.

    ``bars=None`` decides by whether ``stream`` is a terminal. ``name`` heads the status
    line (the app sets its stream's name when none was given).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float | None = None,
        enabled: bool = True,
        bars: bool | None = None,
        name: str | None = None,
    ) -> None:
        self._stream = stream or sys.stdout
        self.name = name
        self._tty = is_terminal(self._stream)
        self._bars = self._tty if bars is None else bars
        self._interval = interval if interval is not None else (0.25 if self._tty else 2.0)
        self._enabled = enabled
        self._last_line = ""
        self._last_time = float("-inf")  # the first update always prints
        self._drawn = 0  # lines of the last bar frame (to move up over them)
        self._meter = RateMeter()
        self._began: float | None = None  # monotonic time of the first update

    def update(
        self, steps: Sequence[tuple], current: str | None, force: bool = False, running: int = 0
    ) -> None:
        """Show the steps' counts; ``running``: jobs a node marked started. ``current``
        (the step that ran last) is no longer shown; kept for callers."""
        if not self._enabled:
            return
        now = time.monotonic()
        self._began = now if self._began is None else self._began
        steps = [Step(*s) for s in steps]
        rates = {s.name: self._meter.observe(s.name, s.processed, now) for s in steps[1:]}
        if self._bars:
            frame = key = "\n".join(render_bars(steps, rates))
        else:
            name = self.name or "impetus"
            frame = render(steps, name, running, now - self._began)
            key = render(steps, name, running, 0)  # the clock alone is no change
        if key == self._last_line or (not force and now - self._last_time < self._interval):
            return
        self._last_line, self._last_time = key, now
        if self._bars:
            self._draw(frame.split("\n"))
        else:
            self._stream.write(frame + "\n")
        self._stream.flush()

    def _draw(self, lines: list[str]) -> None:
        """Overwrite the previous frame in place."""
        up = UP_AND_CLEAR.format(n=self._drawn) if self._drawn else ""
        self._stream.write(up + "".join(CLEAR_LINE + line + "\n" for line in lines))
        self._drawn = len(lines)

    def note(self, text: str) -> None:
        """Print a line above the live bars (e.g. a job's output) without garbling them."""
        lines = text.rstrip("\n").split("\n")
        if self._bars and self._drawn:
            self._stream.write(UP_AND_CLEAR.format(n=self._drawn))
            self._drawn = 0
            self._last_line = ""  # the next update redraws the bars below the note
        prefix = CLEAR_LINE if self._bars else ""
        self._stream.write("".join(prefix + line + "\n" for line in lines))
        self._stream.flush()

    def close(self) -> None:
        """Nothing to end: bars and lines both end with a newline."""
        self._stream.flush()
