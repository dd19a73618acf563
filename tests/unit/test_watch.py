"""The watch frame: counts, rates between samples, progress bars, nodes."""

from __future__ import annotations

import io

from impetus.cli import watchview as watch


def _stream(sid: str, **counts: int) -> dict:
    base = dict.fromkeys(("waiting", "delayed", "running", "finished", "errors", "acked"), 0)
    base.update(forked=100)
    base.update(counts)
    return {"id": sid, "counts": base, "properties": {}, "created": 0}


def _node(nid: str, beat: float, done: int, busy: int = 2) -> dict:
    return {
        "node": nid, "state": "running", "workers_busy": busy, "workers_total": 2,
        "jobs_done": done, "streams": ["s1"], "heartbeat": beat,
    }  # fmt: skip


def test_rates_come_from_the_difference_between_samples():
    before = watch.Sample(100.0, [_stream("s1", waiting=80, finished=10, acked=10)], [])
    after = watch.Sample(102.0, [_stream("s1", waiting=50, running=4, finished=6, acked=40)], [])
    frame = watch.render(after, before)
    row = next(line for line in frame.splitlines() if line.startswith("s1"))
    # done 46 (finished 6 + acked 40), 26 more in 2 s: 13.0/s; 46 of 100 forked
    assert row.split()[:7] == ["s1", "50", "0", "4", "46", "13.0", "0"]
    assert "[#########...........]  46%" in row
    assert "backlog 50 · running 4 · done/s 13.0 · errors 0 · nodes 0" in frame
    assert "no live nodes" in frame


def test_first_frame_without_a_previous_sample_shows_no_rate():
    frame = watch.render(watch.Sample(1.0, [_stream("s1", waiting=3)], []), None)
    assert "done/s - " in frame


def test_node_rates_use_heartbeat_times():
    before = watch.Sample(10.0, [], [_node("n1", beat=5.0, done=10)])
    after = watch.Sample(11.0, [], [_node("n1", beat=10.0, done=30, busy=1)])
    frame = watch.render(after, before)
    row = next(line for line in frame.splitlines() if line.startswith("n1"))
    assert row.split()[:5] == ["n1", "running", "1/2", "30", "4.0"]
    assert "workers 1/2 busy" in frame


def test_a_watched_stream_that_disappears_ends_the_watch():
    class Api:
        calls = 0

        def get_stream(self, sid):
            Api.calls += 1
            if Api.calls > 1:
                from impetus.core.exceptions import ApiError

                raise ApiError(404, "not_found", f"no stream {sid!r}")
            return _stream(sid, waiting=1)

        def list_nodes(self):
            return []

    out = io.StringIO()
    assert watch.watch(Api(), out, "s1", interval=0.01, frames=5) == 0
    assert "stream s1: gone" in out.getvalue()
    assert out.getvalue().count("impetus watch") == 1  # stopped after the 'gone' frame


def test_a_terminal_gets_redrawn_frames():
    class Api:
        def list_streams(self):
            return [_stream("s1")]

        def list_nodes(self):
            return []

    out = io.StringIO()
    watch.watch(Api(), out, interval=0.01, frames=2, tty=True)
    text = out.getvalue()
    assert text.startswith(watch.HIDE_CURSOR) and text.endswith(watch.SHOW_CURSOR)
    assert text.count(watch.CLEAR) == 2
