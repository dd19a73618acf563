"""Progress: the original's line off a terminal, live bars per stage on one."""

from __future__ import annotations

import io

from impetus import progress
from impetus.progress import Progress, RateMeter, Step


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


STEPS = [Step("startup", 100, 40), Step("stage1", 100, 40, 2)]


def test_not_a_terminal_prints_the_original_line():
    out = io.StringIO()
    p = Progress(out, interval=0)
    p.update(STEPS, "stage1")
    p.update(STEPS, "stage1")  # unchanged: not printed again
    p.close()
    assert out.getvalue() == "thread: startup 40/100 -> stage1 40/100 via stage1\n"


def test_not_a_terminal_is_throttled():
    out = io.StringIO()
    p = Progress(out, interval=3600)
    p.update(STEPS, "stage1")
    p.update([Step("startup", 100, 41), Step("stage1", 100, 41)], "stage1")
    assert out.getvalue().count("\n") == 1
    p.update([Step("startup", 100, 42), Step("stage1", 100, 42)], "stage1", force=True)
    assert out.getvalue().count("\n") == 2


def test_a_terminal_gets_bars_per_stage_redrawn_in_place():
    out = Terminal()
    p = Progress(out, interval=0)
    steps = [Step("startup", 60, 10), Step("stage1", 50, 10, 1), Step("second", 10, 0)]
    p.update(steps, "stage1")
    first = out.getvalue()
    assert "\x1b[" in first and "thread:" not in first
    lines = first.replace(progress.CLEAR_LINE, "").splitlines()
    assert lines[0].split() == ["startup", "forked", "60"]
    assert lines[1].startswith("stage1  [")
    assert "10/50  errors 1  -/s  ETA -" in lines[1]  # one sample: no rate yet
    assert "0/10  errors 0" in lines[2]
    p.update([Step("startup", 60, 20), Step("stage1", 50, 20, 1), Step("second", 10, 0)], None)
    redraw = out.getvalue()[len(first) :]
    assert redraw.startswith("\x1b[3F")  # back up over the three lines drawn before
    assert redraw.count(progress.CLEAR_LINE) == 3


def test_bar_shows_rate_and_eta():
    line = progress.bar_line(Step("stage1", 100, 25, 3), rate=5.0, width=20)
    assert line.startswith("stage1   [#####...............]  25/100")
    assert line.endswith("errors 3  5.0/s  ETA 15s")
    assert progress.bar_line(Step("s", 10, 10), rate=2.0).endswith("done")
    assert progress.bar_line(Step("s", 10000, 0), rate=2.0).endswith("ETA 1h23m")
    assert progress.bar_line(Step("s", 0, 0), rate=None).endswith("-/s  -")


def test_rate_meter_uses_a_sliding_window():
    meter = RateMeter(window=5)
    assert meter.observe("s", 0, 0.0) is None
    assert meter.observe("s", 10, 1.0) == 10.0
    for t in range(2, 20):
        meter.observe("s", 10 + (t - 1) * 2, float(t))  # slows down to 2/s
    assert abs(meter.observe("s", 10 + 19 * 2, 20.0) - 2.0) < 1e-9


def test_notes_go_above_the_bars():
    out = Terminal()
    p = Progress(out, interval=0)
    p.update(STEPS, "stage1")
    p.note("[job-1] hello")
    p.update(STEPS, "stage1")  # same counts: still redrawn, below the note
    text = out.getvalue()
    assert text.index("[job-1] hello") < text.rindex("stage1  [")
    plain = io.StringIO()
    Progress(plain).note("[job-1] hello\n")
    assert plain.getvalue() == "[job-1] hello\n"
