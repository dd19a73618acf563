"""Progress: the original's line off a terminal, live bars per stage on one."""

from __future__ import annotations

import io

from impetus import progress
from impetus.progress import Progress, RateMeter, Step


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


STEPS = [Step("startup", 100, 40), Step("stage1", 100, 40, 2)]


def test_not_a_terminal_prints_a_plain_status_line():
    out = io.StringIO()
    p = Progress(out, interval=0, name="helloworld")
    p.update([Step("startup", 50, 30), Step("stage1", 50, 30, 2)], "stage1", running=4)
    p.update([Step("startup", 50, 30), Step("stage1", 50, 30, 2)], None, running=4)  # same
    p.close()
    assert out.getvalue() == "helloworld: 30/50 done, 2 errors, 16 waiting, 4 running, 0 s\n"
    assert "\x1b" not in out.getvalue()


def test_the_status_line_sums_stages_and_names_each_when_there_are_several(monkeypatch):
    clock = iter([100.0, 112.4])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    p = Progress(out, interval=0)  # no name: the app sets its stream's
    p.update([Step("startup", 60, 0), Step("a", 50, 10, 1), Step("b", 10, 0)], None)
    p.update([Step("startup", 60, 0), Step("a", 50, 20, 1), Step("b", 20, 5)], None, running=3)
    assert out.getvalue().splitlines() == [
        "impetus: 10/60 done, 1 errors, 50 waiting, 0 running, 0 s (a 10/50, b 0/10)",
        "impetus: 25/70 done, 1 errors, 42 waiting, 3 running, 12 s (a 20/50, b 5/20)",
    ]


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
