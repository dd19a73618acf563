"""The watch frame: counts, rates between samples, progress bars, nodes."""

from __future__ import annotations

import io

from impetus.cli import watchview as watch


def _stream(sid: str, name: str | None = None, **counts: int) -> dict:
    base = dict.fromkeys(("waiting", "delayed", "running", "finished", "errors", "acked"), 0)
    base.update(forked=100)
    base.update(counts)
    properties = {"name": name} if name else {}
    return {"id": sid, "counts": base, "properties": properties, "created": 0}


def _node(nid: str, beat: float, done: int, busy: int = 2) -> dict:
    return {
        "node": nid, "state": "running", "workers_busy": busy, "workers_total": 2,
        "jobs_done": done, "streams": ["s1"], "heartbeat": beat,
    }  # fmt: skip


def test_rates_come_from_the_difference_between_samples():
    before = watch.Sample(100.0, [_stream("s1", waiting=80, finished=10, acked=10)], [])
    after = watch.Sample(102.0, [_stream("s1", waiting=50, running=4, finished=6, acked=40)], [])
    frame = watch.render(after, before)
    row = next(line for line in frame.splitlines() if line.startswith("-"))
    # done 46 (finished 6 + acked 40), 26 more in 2 s: 13.0/s; 46 of 100 forked
    assert row.split()[:7] == ["-", "s1", "50", "4", "46", "0", "13.0"]
    assert "[###.....]  46%" in row
    # no nodes: the 4 claimed jobs run nowhere yet
    assert "backlog 50 · claimed 4 · running 0 · done/s 13.0 · errors 0" in frame
    assert "nodes 0 · workers 0/0 busy" in frame
    assert "no live nodes" in frame


def test_first_frame_without_a_previous_sample_shows_no_rate():
    frame = watch.render(watch.Sample(1.0, [_stream("s1", waiting=3)], []), None)
    assert "done/s - " in frame


def test_the_frame_fits_80_columns_with_long_names_ids_and_big_counts():
    long_id = "f" * 32
    streams = [
        _stream(long_id, name="a very long program name that goes on", waiting=123_456_789,
                running=98_765, finished=4_000_000, errors=1_234_567, forked=900_000_000),
        _stream("e" * 100, waiting=1),
    ]  # fmt: skip
    nodes = [
        {**_node("i-0123456789abcdef0-with-a-long-suffix", 5.0, 10**9), "workers_total": 64,
         "workers_busy": 64, "state": "draining"},
    ]  # fmt: skip
    title = "https://abcdefghij.execute-api.eu-west-1.amazonaws.com/prod/with/a/long/path"
    frame = watch.render(watch.Sample(10.0, streams, nodes), None, title)
    lines = frame.splitlines()
    assert max(len(line) for line in lines) <= 80, frame
    assert any(line.startswith("a very long p…") for line in lines)  # name cut with …
    assert "ffffff…" in frame and long_id not in frame  # the id shortened
    assert "123M" in frame  # 123,456,789 waiting, written short


def test_running_counts_busy_workers_not_claimed_jobs():
    # 58 claimed (batches handed to nodes), 2 workers actually running jobs
    stream = _stream("s1", name="app", running=58)
    nodes = [_node("n1", 1.0, 0, busy=1), _node("n2", 1.0, 0, busy=1)]
    frame = watch.render(watch.Sample(2.0, [stream], nodes), None)
    assert "claimed 58 · running 2 ·" in frame
    row = next(line for line in frame.splitlines() if line.startswith("app"))
    assert row.split()[:4] == ["app", "s1", "0", "58"]  # CLAIMED column, not RUNNING
    assert "RUNNING" not in frame.splitlines()[2]


def test_errored_jobs_never_make_progress_100_percent():
    # every job ended, 10 of them in error: 90 % done well, the errors shown apart
    stream = _stream("s1", name="app", finished=30, acked=70, errors=10)
    frame = watch.render(watch.Sample(2.0, [stream], []), None)
    row = next(line for line in frame.splitlines() if line.startswith("app"))
    assert row.split()[4:6] == ["90", "10"]  # DONE (well), ERRORS
    assert row.endswith("[#######x]  90%")
    assert "100%" not in frame


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
