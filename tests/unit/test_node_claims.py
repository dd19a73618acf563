"""The claims a node holds (node_agent/claims.py): reporting outcomes as their jobs end
(batched within a flush window), start marks only for jobs that outlive their window,
ending a claim once every job has an outcome, retrying a failed report, dropping a lost
claim's outcomes, handing claims back."""

from __future__ import annotations

import time

import pytest

from impetus.core import codec
from impetus.core.claims import Claim, ClaimedJob
from impetus.core.exceptions import ClaimLost
from impetus.core.jobs import READY, Outcome
from node_agent import claims as claims_module
from node_agent.claims import FLUSH_WINDOW, RETRY_WAIT, START_WINDOW, Claims


class FakeQueue:
    """Records the calls the claims make (the storage side is tested on moto)."""

    def __init__(self) -> None:
        self.completed: list[tuple[str, dict]] = []
        self.reports: list[tuple[str, list[str], list[str], list[str]]] = []
        self.released: list[str] = []
        self.unrun: list[tuple[str, str, list[str]]] = []  # (call, claim, jobs sent back)
        self.fail_completions = 0
        self.lost_on_renew = False

    def complete(self, claim, outcomes, unrun=(), reported=()):
        if self.fail_completions:
            self.fail_completions -= 1
            raise RuntimeError("throttled")
        self.completed.append((claim.claim_id, dict(outcomes)))
        if unrun:
            self.unrun.append(("complete", claim.claim_id, sorted(unrun)))

    def report(self, claim, outcomes, started=(), reported=(), unrun=()):
        self.reports.append((claim.claim_id, sorted(outcomes), list(started), sorted(reported)))
        if unrun:
            self.unrun.append(("report", claim.claim_id, sorted(unrun)))

    def release(self, claim, reported=()):
        self.released.append(claim.claim_id)

    def renew(self, claim, lease):
        if self.lost_on_renew:
            raise ClaimLost(claim.claim_id)


def job(job_id: str) -> ClaimedJob:
    return ClaimedJob(
        id=job_id, index=0, name="f", code="c", code_digest=codec.digest("c"), args="a",
        python=codec.PYTHON_VERSION, cloudpickle=codec.CLOUDPICKLE_VERSION, stage="s1",
        attempt=0, signature="",
    )  # fmt: skip


def claim(claim_id: str, *job_ids: str, expires: float | None = None) -> Claim:
    return Claim(
        stream="s", pk="s#0", sk="0", claim_id=claim_id, node="n", attempt=0,
        expires=time.time() + 60 if expires is None else expires,
        jobs=[job(j) for j in job_ids], failures=0, priority=0,
    )  # fmt: skip


def done() -> Outcome:
    return Outcome(READY, result="r", started=1.0, finished=2.0)


def test_a_claim_ends_once_every_job_has_an_outcome():
    queue = FakeQueue()
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a", "b"), lease=60.0)
    assert len(claims) == 1 and claims.outstanding and claims.holds_stream("s")
    claims.settle(flight, "a", done())
    claims.settle(flight, "a", done())  # a second report of one job changes nothing
    claims.settle(flight, "b", done())
    assert claims.next_flush() == 0.0
    claims.flush()
    assert [(cid, sorted(outcomes)) for cid, outcomes in queue.completed] == [("c1", ["a", "b"])]
    assert queue.reports == []  # ended together: one write
    assert len(claims) == 0 and not claims.outstanding and not claims.holds_stream("s")


def test_an_outcome_is_reported_while_its_claim_still_runs(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(claims_module.time, "monotonic", lambda: clock[0])
    queue = FakeQueue()
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "slow", "fast"), lease=60.0)
    claims.started(flight, "slow")
    claims.started(flight, "fast")
    claims.settle(flight, "fast", done())
    claims.flush()
    assert queue.reports == []  # within the flush window: others may end with it
    assert claims.next_flush() == pytest.approx(FLUSH_WINDOW)
    clock[0] += FLUSH_WINDOW
    claims.flush()
    assert queue.reports == [("c1", ["fast"], ["slow"], [])]  # the start mark rides along
    assert claims.outstanding and queue.completed == []
    assert claims.next_flush() == float("inf")  # nothing more until slow ends
    claims.settle(flight, "slow", done())
    claims.flush()
    assert [(cid, sorted(o)) for cid, o in queue.completed] == [("c1", ["slow"])]
    assert not claims.outstanding


def test_a_short_job_needs_no_start_mark(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(claims_module.time, "monotonic", lambda: clock[0])
    queue = FakeQueue()
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a", "b"), lease=60.0)
    claims.started(flight, "a")
    clock[0] += START_WINDOW / 2
    claims.settle(flight, "a", done())
    claims.started(flight, "b")
    clock[0] += FLUSH_WINDOW
    claims.flush()
    assert queue.reports == [("c1", ["a"], ["b"], [])]  # one write; "a" got no mark
    clock[0] += START_WINDOW / 2
    claims.flush()
    assert len(queue.reports) == 1  # b's start went out already; nothing new


def test_a_long_job_gets_its_start_mark_after_the_window(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(claims_module.time, "monotonic", lambda: clock[0])
    queue = FakeQueue()
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a", "b"), lease=60.0)
    claims.started(flight, "a")
    claims.flush()
    assert queue.reports == [] and claims.next_flush() == pytest.approx(START_WINDOW)
    clock[0] += START_WINDOW
    claims.flush()
    assert queue.reports == [("c1", [], ["a"], [])]
    claims.settle(flight, "a", done())
    clock[0] += FLUSH_WINDOW
    claims.flush()
    assert queue.reports[-1] == ("c1", ["a"], [], [])
    claims.settle(flight, "b", done())
    claims.flush()
    assert [cid for cid, _ in queue.completed] == ["c1"]


def test_a_failed_completion_is_retried_while_the_lease_lasts(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(claims_module.time, "monotonic", lambda: clock[0])
    queue = FakeQueue()
    queue.fail_completions = 1
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a"), lease=60.0)
    claims.settle(flight, "a", done())
    claims.flush()
    assert queue.completed == [] and claims.outstanding
    assert claims.next_flush() == pytest.approx(RETRY_WAIT)  # not at once: no busy loop
    clock[0] += RETRY_WAIT
    claims.flush()
    assert [cid for cid, _ in queue.completed] == ["c1"] and not claims.outstanding


def test_a_failed_completion_past_the_lease_is_dropped():
    queue = FakeQueue()
    queue.fail_completions = 1
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a", expires=time.time() - 1), lease=60.0)
    claims.settle(flight, "a", done())
    claims.flush()
    assert queue.completed == [] and not claims.outstanding


def test_a_lost_lease_drops_the_outcomes_instead_of_completing():
    queue = FakeQueue()
    queue.lost_on_renew = True
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a"), lease=60.0)
    claims.renew()
    assert flight.lost
    claims.settle(flight, "a", done())
    claims.flush()
    assert queue.completed == [] and queue.reports == [] and not claims.outstanding


def test_release_all_hands_every_held_claim_back():
    queue = FakeQueue()
    claims = Claims(queue)
    claims.hold(claim("c1", "a"), lease=60.0)
    claims.hold(claim("c2", "b"), lease=60.0)
    claims.release_all()
    assert sorted(queue.released) == ["c1", "c2"] and len(claims) == 0


def test_jobs_handed_back_go_at_once_while_the_claim_stays_held_for_the_rest():
    """A Spot interruption: the queued jobs of a claim go back unrun at the next flush,
    not when the job still running ends; the claim's end does not send them twice."""
    queue = FakeQueue()
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "running", "q1", "q2"), lease=60.0)
    claims.started(flight, "running")
    claims.hand_back(flight, {"q1", "q2", "unknown"})
    assert flight.pending == {"running"}
    assert claims.next_flush() == 0.0  # due now
    claims.flush()
    assert queue.unrun == [("report", "c1", ["q1", "q2"])]
    assert claims.outstanding and queue.completed == []
    assert flight.reported == {"q1", "q2"}
    claims.settle(flight, "running", done())
    claims.flush()
    assert [(cid, sorted(o)) for cid, o in queue.completed] == [("c1", ["running"])]
    assert queue.unrun == [("report", "c1", ["q1", "q2"])]
    assert not claims.outstanding


def test_release_all_sends_handed_back_and_unstarted_jobs_back_unrun():
    queue = FakeQueue()
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a", "b", "c"), lease=60.0)
    claims.settle(flight, "a", done())
    claims.hand_back(flight, {"b"})  # e.g. cut off by the interruption, not yet flushed
    claims.release_all()
    assert [(cid, sorted(o)) for cid, o in queue.completed] == [("c1", ["a"])]
    assert queue.unrun == [("complete", "c1", ["b", "c"])]
