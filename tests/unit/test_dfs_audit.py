"""The counter audit's bookkeeping (pure): when a stream is audited, when a difference
counts as drift, and what a chunk contributes to the recount."""

from __future__ import annotations

from impetus.scaler.audit import Auditor
from impetus.storage.jobqueue.recount import chunk_counts

DRIFT = {"waiting": 5, "running": 0, "delayed": 0}
NONE = {"waiting": 0, "running": 0, "delayed": 0}


def test_a_stream_is_audited_every_interval():
    auditor = Auditor(every=300, confirm_after=5)
    assert auditor.due("s", 0)
    assert not auditor.judge("s", 0, NONE)
    assert not auditor.due("s", 299) and auditor.due("s", 300)


def test_a_difference_is_drift_only_when_seen_again_after_the_confirmation_delay():
    auditor = Auditor(every=300, confirm_after=5)
    assert not auditor.judge("s", 0, DRIFT)  # maybe counts in flight: look again
    assert not auditor.due("s", 4) and auditor.due("s", 5)
    assert auditor.judge("s", 5, DRIFT)  # the same difference 5 s later: drift
    assert not auditor.due("s", 6)  # corrected: back to the normal interval


def test_a_changing_difference_is_not_drift():
    auditor = Auditor(every=300, confirm_after=5)
    auditor.judge("s", 0, DRIFT)
    assert not auditor.judge("s", 5, {**DRIFT, "waiting": 3})  # counts were moving
    assert auditor.due("s", 10)  # still suspect: looked at again soon
    assert not auditor.judge("s", 10, NONE)  # it was lag after all
    assert not auditor.due("s", 15)


def test_streams_that_went_away_are_forgotten():
    auditor = Auditor()
    auditor.judge("gone", 0, DRIFT)
    auditor.forget({"other"})
    assert auditor.due("gone", 1) and not auditor.suspects


def test_a_chunk_counts_unclaimed_jobs_as_waiting_or_delayed_and_leased_ones_as_running():
    chunk = {
        "n": 20,
        "cursor": 12,
        "claims": {"a": {"start": 0, "end": 8}, "b": {"start": 8, "end": 12}},
    }
    assert chunk_counts(chunk, delayed=False) == {"waiting": 8, "delayed": 0, "running": 12}
    assert chunk_counts({"n": 5, "cursor": 0, "claims": {}}, delayed=True) == {
        "waiting": 0,
        "delayed": 5,
        "running": 0,
    }
    done = {"n": 20, "cursor": 20, "claims": {}}  # completed, results not yet acknowledged
    assert chunk_counts(done, delayed=False) == {"waiting": 0, "delayed": 0, "running": 0}
