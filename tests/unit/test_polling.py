"""Adaptive polling: the client's results Pacer and the node agent's Backoff."""

from __future__ import annotations

from impetus.polling import Pacer
from node_agent.pacing import Backoff


def test_pacer_backs_off_while_nothing_comes_and_keeps_pace_while_results_flow():
    pacer = Pacer(low=0.01, high=0.1, growth=2.0)
    assert [pacer.after(0, 500) for _ in range(6)] == [0.01, 0.02, 0.04, 0.08, 0.1, 0.1]
    assert pacer.after(3, 500) == 0.1  # results at this pace: keep it
    assert pacer.after(500, 500) == 0.0  # a full page: ask again at once
    assert pacer.after(7, 500) == 0.01  # and partial pages never wait less than low
    pacer.reset()
    assert pacer.after(0, 500) == 0.01


def test_backoff_starts_low_after_activity_and_caps_at_high():
    backoff = Backoff(high=1.0, low=0.01, growth=10.0)
    assert [backoff.next_wait() for _ in range(4)] == [0.01, 0.1, 1.0, 1.0]
    backoff.active()
    assert backoff.next_wait() == 0.01
