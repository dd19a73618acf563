"""Retries and lost runs on the Queue (moto in-process): who runs again, when, and what
the stream's counters and the result record say afterwards."""

from __future__ import annotations

import time

from test_queue import enqueue, spec

from impetus.core import codec, jobs
from impetus.core.exceptions import ClaimLost
from impetus.core.jobs import Outcome

RAISED = Outcome(jobs.ERROR, error={"error": "boom", "type": "ValueError"}, failure=jobs.EXCEPTION)


def ok(value=0):
    return Outcome(jobs.READY, result=codec.dumps(value))


def claim_one(queue, stream, node="n1", lease=30.0):
    claim = queue.claim(stream, node, 1, lease=lease)
    assert claim is not None and len(claim.jobs) == 1
    return claim


def test_an_exception_is_retried_then_becomes_the_error_record(queue):
    queue.create_stream("s", {"retries": 2, "retry_backoff": 0})
    enqueue(queue, "s", [spec("a")])
    for attempt in range(3):
        claim = claim_one(queue, "s")
        assert (claim.attempt, claim.failures) == (attempt, attempt)
        queue.complete(claim, {"a": RAISED})
        if attempt < 2:
            assert queue.results("s", "stage1") == []
            assert queue.get_stream("s")["counts"]["waiting"] == 1
    [job] = queue.results("s", "stage1")
    assert job["status"] == "error" and job["attempt"] == 2
    assert job["result"]["error"] == "boom"
    counts = queue.get_stream("s")["counts"]
    assert (counts["finished"], counts["errors"], counts["waiting"], counts["running"]) == (
        1,
        1,
        0,
        0,
    )


def test_a_retry_waits_for_its_backoff(queue):
    queue.create_stream("s", {"retries": 1, "retry_backoff": 0.4})
    enqueue(queue, "s", [spec("a")])
    queue.complete(claim_one(queue, "s"), {"a": RAISED})
    assert queue.get_stream("s")["counts"]["delayed"] == 1
    assert queue.claim("s", "n1", 1, lease=30) is None  # backing off (0.2-0.4 s)
    time.sleep(0.6)  # past the backoff and the promotion throttle
    claim = claim_one(queue, "s")
    queue.complete(claim, {"a": ok(5)})
    [job] = queue.results("s", "stage1")
    assert job["status"] == "ready" and job["attempt"] == 1 and codec.loads(job["result"]) == 5


def test_a_job_property_overrides_the_streams_retries(queue):
    queue.create_stream("s", {"retries": 0, "retry_backoff": 0})
    enqueue(queue, "s", [dict(spec("a"), properties={"retries": 1}), spec("b")])
    claim = queue.claim("s", "n1", 2, lease=30)
    queue.complete(claim, {"a": RAISED, "b": RAISED})
    assert [j["id"] for j in queue.results("s", "stage1")] == ["b"]  # b had no retries
    again = claim_one(queue, "s")
    assert again.jobs[0].id == "a" and again.attempt == 1


def test_one_claim_can_finish_some_jobs_and_retry_others(queue):
    queue.create_stream("s", {"retries": 1, "retry_backoff": 0})
    enqueue(queue, "s", [spec("a"), spec("b"), spec("c")])
    claim = queue.claim("s", "n1", 3, lease=30)
    queue.complete(claim, {"a": ok(1), "b": RAISED, "c": ok(3)})
    assert sorted(j["id"] for j in queue.results("s", "stage1")) == ["a", "c"]
    queue.complete(claim_one(queue, "s"), {"b": ok(2)})
    results = {j["id"]: j for j in queue.results("s", "stage1")}
    assert sorted(results) == ["a", "b", "c"] and results["b"]["attempt"] == 1
    assert queue.ack("s", list(results)) == 3
    assert queue.get_stream("s")["counts"]["acked"] == 3


def test_a_crashed_run_reruns_and_the_last_lost_run_is_an_error(queue):
    queue.create_stream("s", {"max_attempts": 2})
    enqueue(queue, "s", [spec("a")])
    crash = Outcome(jobs.ERROR, error=jobs.system_error("lost", "worker died"), failure=jobs.CRASH)
    queue.complete(claim_one(queue, "s"), {"a": crash})
    assert queue.results("s", "stage1") == []
    queue.complete(claim_one(queue, "s"), {"a": crash})
    [job] = queue.results("s", "stage1")
    assert job["result"]["error"] == "lost: worker died" and job["attempt"] == 1


def test_a_zombie_cannot_overwrite_the_newer_attempt(queue):
    queue.create_stream("s", {"max_attempts": 3})
    enqueue(queue, "s", [spec("a")])
    zombie = claim_one(queue, "s", node="old", lease=0.01)
    time.sleep(0.05)
    assert queue.reap("s") == 1
    fresh = claim_one(queue, "s", node="new")
    assert fresh.attempt == 1
    queue.complete(fresh, {"a": ok("new")})
    try:
        queue.complete(zombie, {"a": ok("zombie")})
        raise AssertionError("the zombie's completion was accepted")
    except ClaimLost:
        pass
    [job] = queue.results("s", "stage1")
    assert codec.loads(job["result"]) == "new" and job["node"] == "new"
