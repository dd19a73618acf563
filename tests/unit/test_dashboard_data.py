"""The dashboard's pure helpers: names, totals, stages, throughput, ETA, decisions."""

from __future__ import annotations

import pytest

from impetus.dashboard.gather import (
    decision_entry,
    eta,
    stage_rows,
    stream_name,
    totals,
)
from impetus.progress import RateMeter


def test_a_stream_is_named_by_its_name_property_else_its_id():
    assert stream_name({"id": "ab12", "properties": {"name": "nightly"}}) == "nightly"
    assert stream_name({"id": "ab12", "properties": {}}) == "ab12"
    assert stream_name({"id": "ab12"}) == "ab12"


def test_done_excludes_errors_that_finished_and_acked_both_count():
    counts = {"finished": 5, "acked": 3, "errors": 2, "running": 1, "waiting": 4, "delayed": 1,
              "forked": 15}  # fmt: skip
    assert totals(counts) == {"done": 6, "errors": 2, "running": 1, "waiting": 5, "forked": 15}


def test_stage_rows_count_each_status_per_stage_in_first_seen_order():
    jobs = [
        {"stage": "load", "status": "acked"}, {"stage": "load", "status": "ready"},
        {"stage": "fit", "status": "error"}, {"stage": "fit", "status": "running"},
        {"stage": "load", "status": "delayed"}, {"stage": "fit", "status": "waiting"},
    ]  # fmt: skip
    assert stage_rows(jobs) == [
        {"stage": "load", "done": 2, "errors": 0, "running": 0, "waiting": 1},
        {"stage": "fit", "done": 0, "errors": 1, "running": 1, "waiting": 1},
    ]


def test_throughput_is_measured_over_the_window_not_since_the_start():
    rates = RateMeter(window=10)  # the dashboard's, the pipeline's own
    assert rates.observe("s", 0, 0.0) is None
    assert rates.observe("s", 50, 5.0) == pytest.approx(10.0)
    assert rates.observe("s", 50, 10.0) == pytest.approx(5.0)
    # 20 s in: the samples before t=10 fell out, so the idle stretch is all that counts
    assert rates.observe("s", 50, 20.0) == pytest.approx(0.0)
    rates.forget_except(set())
    assert rates.observe("s", 60, 30.0) is None  # a forgotten stream starts over


def test_eta():
    assert eta(0, None) == 0.0
    assert eta(10, None) is None and eta(10, 0.0) is None
    assert eta(10, 4.0) == pytest.approx(2.5)


def test_decision_entry_takes_in_service_from_what_the_policy_saw():
    entry = {
        "at_epoch": "1700000000.5",
        "decision": {"node_class": "default", "action": "scale-in", "previous": 3,
                     "desired": 1, "needed": 1, "reason": "idle 60 s"},
        "inputs": {"group": [{"in_service": 3, "desired": 3}]},
    }  # fmt: skip
    assert decision_entry(entry) == {
        "at": 1700000000.5, "group": "default", "action": "scale-in", "previous": 3,
        "desired": 1, "needed": 1, "in_service": 3, "reason": "idle 60 s",
    }  # fmt: skip
