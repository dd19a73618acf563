"""Node-side reaping: only streams with running jobs, at most once per interval each."""

from __future__ import annotations

from node_agent.reaper import Reaper


class RecordingQueue:
    """Stands in for the Queue in this unit test: records which streams were reaped."""

    def __init__(self, released: int = 0) -> None:
        self.reaped: list[str] = []
        self.released = released

    def reap(self, stream_id: str) -> int:
        self.reaped.append(stream_id)
        return self.released


def listing(**running: int) -> list[dict]:
    return [{"id": sid, "counts": {"running": n}} for sid, n in running.items()]


def test_reaps_only_streams_that_are_not_idle():
    queue = RecordingQueue(released=2)
    reaper = Reaper(queue, interval=10)
    assert reaper.maybe_reap(listing(busy=3, idle=0), now=100.0) == 2
    assert queue.reaped == ["busy"]


def test_a_stuck_claim_counted_as_waiting_is_reaped_too():
    # an agent killed between its claim and the counter update leaves "waiting" counts
    queue = RecordingQueue(released=1)
    stream = {"id": "drifted", "counts": {"running": 0, "waiting": 2, "delayed": 0}}
    assert Reaper(queue, interval=10).maybe_reap([stream], now=100.0) == 1
    assert queue.reaped == ["drifted"]


def test_each_stream_at_most_once_per_interval():
    queue = RecordingQueue()
    reaper = Reaper(queue, interval=10)
    reaper.maybe_reap(listing(s=1), now=100.0)
    reaper.maybe_reap(listing(s=1), now=105.0)
    reaper.maybe_reap(listing(s=1), now=110.5)
    assert queue.reaped == ["s", "s"]


def test_a_failing_reap_does_not_stop_the_others():
    class Flaky(RecordingQueue):
        def reap(self, stream_id: str) -> int:
            if stream_id == "bad":
                raise RuntimeError("throttled")
            return super().reap(stream_id)

    queue = Flaky(released=1)
    assert Reaper(queue).maybe_reap(listing(bad=1, good=1), now=0.0) == 1
    assert queue.reaped == ["good"]
