"""Buffered stream counters: deltas summed per stream, written together, kept on failure."""

from __future__ import annotations

import time

from impetus.storage.counters import BufferedCounters


class RecordingStreams:
    def __init__(self, fail: int = 0) -> None:
        self.writes: list[tuple[str, dict]] = []
        self.fail = fail

    def count(self, stream_id: str, **deltas: int) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("throttled")
        self.writes.append((stream_id, dict(deltas)))


def test_deltas_are_summed_per_stream_and_written_once():
    streams = RecordingStreams()
    counters = BufferedCounters(streams, interval=60)
    counters.count("a", waiting=-4, running=4)
    counters.count("a", running=-4, finished=4, errors=1)
    counters.count("b", waiting=-1, running=1)
    assert streams.writes == []  # nothing before a flush
    counters.flush()
    assert sorted(streams.writes) == [
        ("a", {"waiting": -4, "running": 0, "finished": 4, "errors": 1}),
        ("b", {"waiting": -1, "running": 1}),
    ]
    counters.flush()
    assert len(streams.writes) == 2  # nothing left to write


def test_maybe_flush_waits_for_the_interval():
    streams = RecordingStreams()
    counters = BufferedCounters(streams, interval=0.2)
    counters.count("a", running=1)
    counters.maybe_flush()
    assert streams.writes == []
    time.sleep(0.25)
    counters.maybe_flush()
    assert streams.writes == [("a", {"running": 1})]


def test_a_failed_write_is_kept_for_the_next_flush():
    streams = RecordingStreams(fail=1)
    counters = BufferedCounters(streams, interval=60)
    counters.count("a", running=2)
    counters.flush()
    counters.count("a", running=1)
    counters.flush()
    assert streams.writes == [("a", {"running": 3})]


def test_a_delta_that_cannot_be_written_within_its_age_limit_is_dropped():
    """So DFS's audit, which corrects only differences older than that, never counts a
    delta that is still on its way."""
    streams = RecordingStreams(fail=2)
    counters = BufferedCounters(streams, interval=60, max_age=0.2)
    counters.count("a", running=2)
    counters.flush()  # fails: kept
    time.sleep(0.25)
    counters.count("a", running=1)  # joins the old delta, which keeps its age
    counters.flush()  # fails again, past the age limit: dropped
    counters.flush()
    assert streams.writes == []
    counters.count("a", running=5)
    counters.flush()
    assert streams.writes == [("a", {"running": 5})]
