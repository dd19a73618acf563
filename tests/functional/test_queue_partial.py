"""Partial reports on the Queue (moto in-process): outcomes of a claim still held are
written as their jobs end, exactly once each; the claim keeps the rest; start marks show
in the results answer; reaping, retries, acknowledgement and the counters stay right."""

from __future__ import annotations

import time

import pytest
from test_queue import enqueue, spec

from impetus.core import codec, jobs
from impetus.core.exceptions import ClaimLost
from impetus.core.jobs import Outcome
from impetus.scaler.audit import Auditor, audit

CRASHED = Outcome(jobs.ERROR, error={"error": "lost", "type": "lost"}, failure=jobs.CRASH)


def ok(value):
    return Outcome(jobs.READY, result=codec.dumps(value), started=1.0, finished=2.0)


def counts(queue, stream):
    c = queue.get_stream(stream)["counts"]
    return {k: c[k] for k in ("waiting", "running", "finished", "errors")}


def chunk_of(queue, claim):
    return queue.jobs.items.get_chunk(claim.pk, claim.sk)


def test_a_reported_outcome_is_collectable_while_its_claim_is_held(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("slow"), spec("fast")])
    claim = queue.claim("s", "n1", 2, lease=30)
    queue.report(claim, {"fast": ok(42)}, started=["slow"])
    [fast] = queue.results("s", "stage1")
    assert fast["id"] == "fast" and codec.loads(fast["result"]) == 42
    assert counts(queue, "s") == {"waiting": 0, "running": 1, "finished": 1, "errors": 0}
    assert claim.claim_id in chunk_of(queue, claim)["claims"]  # still held
    queue.renew(claim, lease=30)  # the lease goes on
    queue.complete(claim, {"slow": ok(6)}, reported=["fast"])
    results = {j["id"]: codec.loads(j["result"]) for j in queue.results("s", "stage1")}
    assert results == {"slow": 6, "fast": 42}
    assert counts(queue, "s") == {"waiting": 0, "running": 0, "finished": 2, "errors": 0}
    assert chunk_of(queue, claim)["claims"] == {}


def test_each_outcome_settles_exactly_once(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a"), spec("b"), spec("c")])
    claim = queue.claim("s", "n1", 3, lease=30)
    queue.report(claim, {"a": ok(1)})
    queue.report(claim, {"b": ok(2)}, reported=["a"])
    # the final write names only what is new: a and b are not written (or counted) again
    queue.complete(claim, {"c": ok(3), "a": ok(99)}, reported=["a", "b"])
    results = {j["id"]: codec.loads(j["result"]) for j in queue.results("s", "stage1")}
    assert results == {"a": 1, "b": 2, "c": 3}
    assert counts(queue, "s") == {"waiting": 0, "running": 0, "finished": 3, "errors": 0}
    assert queue.ack("s", ["a", "b", "c"]) == 3
    assert chunk_of(queue, claim) is None  # spent and deleted


def test_a_zombie_cannot_report(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a"), spec("b")])
    claim = queue.claim("s", "n1", 2, lease=0.2)
    time.sleep(0.3)
    assert queue.reap("s") == 2
    with pytest.raises(ClaimLost):
        queue.report(claim, {"a": ok(1)})
    assert queue.results("s", "stage1") == []


def test_a_crash_after_a_partial_report_runs_only_the_crashed_job_again(queue):
    queue.create_stream("s", {"retries": 0, "retry_backoff": 0, "max_attempts": 3})
    enqueue(queue, "s", [spec("a"), spec("b"), spec("c")])
    claim = queue.claim("s", "n1", 3, lease=30)
    queue.report(claim, {"a": ok(1)}, started=["b"])
    queue.report(claim, {"b": CRASHED}, reported=["a"])  # moved now, not at the claim's end
    assert counts(queue, "s") == {"waiting": 1, "running": 1, "finished": 1, "errors": 0}
    again = queue.claim("s", "n2", 5, lease=30)
    assert [j.id for j in again.jobs] == ["b"] and again.attempt == 1
    queue.complete(claim, {"c": ok(3)}, reported=["a", "b"])
    queue.complete(again, {"b": ok(2)})
    results = {j["id"]: j for j in queue.results("s", "stage1")}
    assert {k: codec.loads(v["result"]) for k, v in results.items()} == {"a": 1, "b": 2, "c": 3}
    assert results["b"]["attempt"] == 1 and results["a"]["attempt"] == 0
    assert counts(queue, "s") == {"waiting": 0, "running": 0, "finished": 3, "errors": 0}
    assert queue.ack("s", ["a", "b", "c"]) == 3
    assert chunk_of(queue, claim) is None and chunk_of(queue, again) is None


def test_a_reap_after_a_partial_report_runs_only_the_unreported_jobs_again(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a"), spec("b"), spec("c")])
    claim = queue.claim("s", "n1", 3, lease=0.3)
    queue.report(claim, {"a": ok(1)})
    time.sleep(0.4)
    assert queue.reap("s") == 2  # b and c; a's outcome is written
    again = queue.claim("s", "n2", 5, lease=30)
    assert sorted(j.id for j in again.jobs) == ["b", "c"] and again.attempt == 1
    [a] = queue.results("s", "stage1")
    assert a["id"] == "a" and codec.loads(a["result"]) == 1 and a["attempt"] == 0
    assert counts(queue, "s") == {"waiting": 0, "running": 2, "finished": 1, "errors": 0}
    queue.complete(again, {"b": ok(2), "c": ok(3)})
    assert counts(queue, "s") == {"waiting": 0, "running": 0, "finished": 3, "errors": 0}


def test_a_reap_of_a_fully_reported_claim_reruns_nothing(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a")])
    claim = queue.claim("s", "n1", 1, lease=0.3)
    queue.report(claim, {"a": ok(1)})
    time.sleep(0.4)
    assert queue.reap("s") == 0
    assert chunk_of(queue, claim)["claims"] == {}  # the claim is gone all the same
    assert queue.claim("s", "n2", 5, lease=30) is None
    assert counts(queue, "s") == {"waiting": 0, "running": 0, "finished": 1, "errors": 0}


def test_release_after_a_partial_report_gives_back_only_the_unreported_jobs(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a"), spec("b")])
    claim = queue.claim("s", "n1", 2, lease=30)
    queue.report(claim, {"a": ok(1)})
    queue.release(claim, reported=["a"])
    again = queue.claim("s", "n2", 5, lease=30)
    assert [j.id for j in again.jobs] == ["b"] and again.attempt == 0
    assert counts(queue, "s") == {"waiting": 0, "running": 1, "finished": 1, "errors": 0}


def test_started_jobs_show_until_they_end(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a"), spec("b"), spec("c"), spec("x", stage="other")])
    claim = queue.claim("s", "n1", 4, lease=30)
    page = queue.results_page("s", "stage1")
    assert (page.jobs, page.started) == ([], [])
    queue.report(claim, {}, started=["a", "b", "x"])
    page = queue.results_page("s", "stage1")
    found, started = page.jobs, page.started
    assert found == [] and sorted(started) == ["a", "b"]  # x is of another stage
    queue.report(claim, {"a": ok(1)}, started=["c"], reported=[])
    page = queue.results_page("s", "stage1")
    found, started = page.jobs, page.started
    assert [j["id"] for j in found] == ["a"] and sorted(started) == ["b", "c"]
    queue.complete(claim, {"b": ok(2), "c": ok(3), "x": ok(0)}, reported=["a"])
    page = queue.results_page("s", "stage1")
    found, started = page.jobs, page.started
    assert sorted(j["id"] for j in found) == ["a", "b", "c"] and started == []


def test_an_empty_report_writes_nothing(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a")])
    claim = queue.claim("s", "n1", 1, lease=30)
    before = chunk_of(queue, claim)
    queue.report(claim, {}, started=[])
    assert chunk_of(queue, claim) == before


def test_the_counter_audit_agrees_after_partial_reports(queue):
    queue.create_stream("s", {"retries": 1, "retry_backoff": 0})
    enqueue(queue, "s", [spec("a"), spec("b"), spec("c"), spec("d")])
    claim = queue.claim("s", "n1", 4, lease=30)
    queue.report(claim, {"a": ok(1), "b": CRASHED}, started=["c"])
    recount = queue.recount("s")
    assert recount == queue.streams.raw_counts("s", ("waiting", "running", "delayed"))
    assert recount == {"waiting": 1, "running": 2, "delayed": 0}
    auditor = Auditor(confirm_after=5)
    assert audit(queue, queue.list_streams(), 0.0, auditor) == 0
    assert audit(queue, queue.list_streams(), 6.0, auditor) == 0  # nothing drifted


def test_unrun_jobs_go_back_at_once_with_their_attempt_while_the_claim_is_held(queue):
    """A Spot interruption: the queued jobs of a claim go back before the running one
    ends, at the same attempt; a reap or the claim's end never sends them twice."""
    queue.create_stream("s")
    enqueue(queue, "s", [spec("running"), spec("q1"), spec("q2")])
    claim = queue.claim("s", "n1", 3, lease=0.5)
    queue.report(claim, {}, started=["running"], unrun=["q1", "q2"])
    assert counts(queue, "s") == {"waiting": 2, "running": 1, "finished": 0, "errors": 0}
    elsewhere = queue.claim("s", "n2", 5, lease=30)
    assert sorted(j.id for j in elsewhere.jobs) == ["q1", "q2"] and elsewhere.attempt == 0
    time.sleep(0.6)
    assert queue.reap("s") == 1  # only the running job; q1 and q2 are marked done
    queue.complete(elsewhere, {"q1": ok(1), "q2": ok(2)})
    assert counts(queue, "s") == {"waiting": 1, "running": 0, "finished": 2, "errors": 0}


def test_a_job_cut_off_by_the_node_going_away_is_not_charged_an_attempt(queue):
    queue.create_stream("s", {"max_attempts": 1})
    enqueue(queue, "s", [spec("done"), spec("cut")])
    claim = queue.claim("s", "n1", 2, lease=30)
    queue.report(claim, {"done": ok(1)}, started=["cut"])
    queue.complete(claim, {}, unrun=["cut"], reported=["done"])
    again = queue.claim("s", "n2", 5, lease=30)
    assert [j.id for j in again.jobs] == ["cut"] and again.attempt == 0
    queue.complete(again, {"cut": ok(2)})
    results = {j["id"]: codec.loads(j["result"]) for j in queue.results("s", "stage1")}
    assert results == {"done": 1, "cut": 2}
