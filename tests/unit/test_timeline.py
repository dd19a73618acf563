"""The timeline's data layer (impetus.timeline.build): rows, times from the first fork."""

from __future__ import annotations

from impetus.timeline import UNKNOWN_WORKER, Row, build, phases_text, stream_title


def _job(job_id, **line):
    return {"id": job_id, "timeline": line}


def test_times_count_from_the_first_fork_and_rows_sort_by_node_then_slot():
    jobs = [
        _job("a", forked_at=100.0, claimed_at=101.0, started_at=101.5, finished_at=103.0,
             acked_at=104.0, node="n2", worker=1, outcome="ready"),
        _job("b", forked_at=99.0, claimed_at=101.0, started_at=102.0, finished_at=102.5,
             node="n1", worker=0, outcome="error"),
        _job("c", forked_at=100.0),  # waiting: on no row
    ]  # fmt: skip
    line = build("t", jobs)
    assert line.origin == 99.0 and line.unplaced == 1 and line.errors == 1
    assert line.rows == [Row("n1", 0), Row("n2", 1)]
    a = next(b for b in line.bars if b.job == "a")
    assert (a.forked, a.claimed, a.started, a.finished, a.acked) == (1.0, 2.0, 2.5, 4.0, 5.0)
    assert not a.error and next(b for b in line.bars if b.job == "b").acked is None


def test_a_run_without_a_slot_gets_a_row_of_its_own_and_no_fork_falls_back():
    line = build("t", [_job("a", started_at=50.0, finished_at=51.0, node="n1")])
    assert line.origin == 50.0 and line.rows == [Row("n1", UNKNOWN_WORKER)]
    assert line.rows[0].label == "n1 w?" and Row("n1", 3).label == "n1 w3"
    assert build("t", []).rows == [] and build("t", [{"id": "x"}]).unplaced == 1


def test_the_title_is_the_name_property_else_the_id():
    assert stream_title({"id": "abc", "properties": {"name": "etl"}}) == "etl"
    assert stream_title({"id": "abc", "properties": {}}) == "abc"


def test_impetus_job_s_timeline_line_names_the_known_phases_and_the_worker():
    line = {"forked_at": 1.0, "claimed_at": 1.9, "started_at": 2.9, "finished_at": 2.903,
            "acked_at": 4.4, "node": "local-0", "worker": 1}  # fmt: skip
    text = "waited 0.9 s, queued on node 1 s, ran 0.003 s, returned 1.5 s (local-0 w1)"
    assert phases_text(line) == text
    assert phases_text({"forked_at": 1.0, "claimed_at": 3.0, "node": "n"}) == "waited 2 s (n w?)"
    assert phases_text({"forked_at": 1.0}) == ""
