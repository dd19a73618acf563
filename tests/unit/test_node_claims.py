"""The claims a node holds (node_agent/claims.py): settling outcomes, completing a claim
once every job has one, retrying a failed completion, dropping a lost claim's outcomes,
handing claims back."""

from __future__ import annotations

import time

from impetus.core import codec
from impetus.core.claims import Claim, ClaimedJob
from impetus.core.exceptions import ClaimLost
from impetus.core.jobs import READY, Outcome
from node_agent.claims import Claims


class FakeQueue:
    def __init__(self) -> None:
        self.completed: list[tuple[str, dict]] = []
        self.released: list[str] = []
        self.fail_completions = 0
        self.lost_on_renew = False

    def complete(self, claim, outcomes):
        if self.fail_completions:
            self.fail_completions -= 1
            raise RuntimeError("throttled")
        self.completed.append((claim.claim_id, dict(outcomes)))

    def release(self, claim):
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


def test_a_claim_is_completed_once_every_job_has_an_outcome():
    queue = FakeQueue()
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a", "b"), lease=60.0)
    assert len(claims) == 1 and claims.outstanding and claims.holds_stream("s")
    claims.settle(flight, "a", done())
    claims.settle(flight, "a", done())  # a second report of one job changes nothing
    assert claims.due == []
    claims.settle(flight, "b", done())
    claims.complete_due()
    assert [(cid, sorted(outcomes)) for cid, outcomes in queue.completed] == [("c1", ["a", "b"])]
    assert len(claims) == 0 and not claims.outstanding and not claims.holds_stream("s")


def test_a_failed_completion_is_retried_while_the_lease_lasts():
    queue = FakeQueue()
    queue.fail_completions = 1
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a"), lease=60.0)
    claims.settle(flight, "a", done())
    claims.complete_due()
    assert claims.due == [flight] and queue.completed == []  # tried again next turn
    claims.complete_due()
    assert [cid for cid, _ in queue.completed] == ["c1"] and not claims.outstanding


def test_a_failed_completion_past_the_lease_is_dropped():
    queue = FakeQueue()
    queue.fail_completions = 1
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a", expires=time.time() - 1), lease=60.0)
    claims.settle(flight, "a", done())
    claims.complete_due()
    assert queue.completed == [] and not claims.outstanding


def test_a_lost_lease_drops_the_outcomes_instead_of_completing():
    queue = FakeQueue()
    queue.lost_on_renew = True
    claims = Claims(queue)
    flight = claims.hold(claim("c1", "a"), lease=60.0)
    claims.renew()
    assert flight.lost
    claims.settle(flight, "a", done())
    claims.complete_due()
    assert queue.completed == [] and not claims.outstanding


def test_release_all_hands_every_held_claim_back():
    queue = FakeQueue()
    claims = Claims(queue)
    claims.hold(claim("c1", "a"), lease=60.0)
    claims.hold(claim("c2", "b"), lease=60.0)
    claims.release_all()
    assert sorted(queue.released) == ["c1", "c2"] and len(claims) == 0
