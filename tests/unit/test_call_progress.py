"""The executor's progress line (impetus.callprogress): a bar on a terminal, the plain
status line off one when switched on, nothing off one by default."""

from __future__ import annotations

import concurrent.futures as cf
import io
import re
import sys

from test_client_run import impetus_home  # noqa: F401  (autouse fixture)
from test_executor_contract import api, executor  # noqa: F401  (the API double)

from impetus import progress
from impetus.callprogress import CallProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _futures(n: int) -> list[cf.Future]:
    return [cf.Future() for _ in range(n)]


def test_a_terminal_gets_one_bar_redrawn_in_place_and_ended_with_the_batch():
    out = Terminal()
    bar = CallProgress("square", stream=out, interval=0)
    assert bar.enabled
    calls = _futures(4)
    bar.track(calls)
    calls[0].set_result(1)
    calls[1].set_exception(ValueError("x"))
    calls[2].set_running_or_notify_cancel()
    bar.show()
    first = out.getvalue()
    assert first.startswith("\r" + progress.CLEAR_LINE + "square [")
    assert "2/4  errors 1" in first and first.endswith("1 running") and "\n" not in first
    calls[2].set_result(2)
    assert calls[3].cancel()  # a cancelled call is done, not an error
    bar.show()
    last = out.getvalue()[len(first) :]
    assert "4/4  errors 1" in last and last.endswith("done  0 running\n")
    bar.show()  # the batch ended: nothing more until new calls come
    assert out.getvalue() == first + last
    bar.track(_futures(1))
    bar.show()
    assert out.getvalue()[len(first + last) :].count("0/1") == 1


def test_off_a_terminal_it_is_off_by_default_and_plain_when_on():
    quiet = io.StringIO()
    off = CallProgress("square", stream=quiet)
    off.track(_futures(1))
    off.show(force=True)
    assert not off.enabled and quiet.getvalue() == ""

    out = io.StringIO()
    on = CallProgress("square", enabled=True, stream=out, interval=3600)
    calls = _futures(3)
    on.track(calls)
    calls[0].set_result(0)
    on.show()
    calls[1].set_result(0)
    on.show()  # within the interval: not printed
    calls[2].set_result(0)
    on.show()  # the batch's end is always printed
    assert out.getvalue().splitlines() == [
        "square: 1/3 done, 0 errors, 2 waiting, 0 running, 0 s",
        "square: 3/3 done, 0 errors, 0 waiting, 0 running, 0 s",
    ]


def test_executor_map_prints_the_status_line_when_asked(api, capsys):  # noqa: F811
    api.run_all = True
    with executor(progress=True, properties={"name": "squares"}) as ex:
        assert list(ex.map(pow, [1, 2, 3], [2, 2, 2])) == [1, 4, 9]
    err = capsys.readouterr().err
    assert re.search(r"^squares: 3/3 done, 0 errors, 0 waiting, 0 running, \d+ s$", err, re.M)


def test_executor_progress_follows_stderr_being_a_terminal(api, capsys, monkeypatch):  # noqa: F811
    api.run_all = True
    with executor() as ex:  # stderr captured: not a terminal, so no progress
        assert list(ex.map(pow, [2], [3])) == [8]
    assert capsys.readouterr().err == ""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    api.run_all = False  # held until all five are submitted: one batch of 5
    with executor(properties={"name": "pows"}) as ex:
        futures = [ex.submit(pow, i, 2) for i in range(5)]
        api.run_all = True
        assert sorted(f.result() for f in cf.as_completed(futures, timeout=10)) == [0, 1, 4, 9, 16]
    shown = terminal.getvalue()
    assert "\r" + progress.CLEAR_LINE + "pows [" in shown and "5/5" in shown
    assert shown.endswith("\n")


def test_a_note_clears_the_bar_s_line_and_the_bar_comes_back_below_it():
    out = Terminal()
    bar = CallProgress("square", stream=out, interval=3600)
    calls = _futures(2)
    bar.track(calls)
    bar.show()
    bar.note("[job-1] hello\n")
    bar.show()  # drawn again at once, though within the interval
    lines = out.getvalue().split("\r" + progress.CLEAR_LINE)
    assert lines[1].startswith("square [") and lines[2] == "[job-1] hello\n"
    assert lines[3].startswith("square [") and "0/2" in lines[3]
    plain = io.StringIO()
    CallProgress("square", enabled=True, stream=plain).note("[job-1] hello")
    assert plain.getvalue() == "[job-1] hello\n"
