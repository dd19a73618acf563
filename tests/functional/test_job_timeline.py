"""Per-job timestamps (impetus.storage.jobqueue.stamps) on moto in-process: recorded by
the writes that happen anyway, shown by get_job and list_jobs, kept through the ack."""

from __future__ import annotations

import time

from impetus.core import codec, jobs
from impetus.core.jobs import Outcome
from tests.functional.test_queue import enqueue, spec


def _run(queue, stream, worker_of):
    """Claim every job as node n1; job i starts 0.1 s after its claim and ends 0.2 s
    later; job "b" raises. Returns {job id: (claim time bounds, start, end)}."""
    times = {}
    while True:
        before = time.time()
        claim = queue.claim(stream, "n1", 10, lease=30)
        after = time.time()
        if claim is None:
            return times
        outcomes = {}
        for n, job in enumerate(claim.jobs):
            st, fi = after + 0.1 * n, after + 0.1 * n + 0.2
            status = jobs.ERROR if job.id == "b" else jobs.READY
            out = Outcome(status, started=st, finished=fi, worker=worker_of[job.id])
            if status == jobs.READY:
                out.result = codec.dumps(n)
            else:
                out.error, out.failure = jobs.system_error("boom", "no", job.name), ""
            outcomes[job.id] = out
            times[job.id] = (before, after, st, fi)
        queue.complete(claim, outcomes)


def test_timeline_is_recorded_listed_and_survives_the_ack(queue):
    queue.create_stream("s1", {"retries": 0})
    forked = time.time()
    enqueue(queue, "s1", [spec("a"), spec("b"), spec("c")])
    times = _run(queue, "s1", {"a": 0, "b": 1, "c": 0})

    line = queue.get_job("s1", "b")["timeline"]
    before, after, st, fi = times["b"]
    assert before - 0.001 <= line["claimed_at"] <= after + 0.001  # kept to the ms
    assert (line["started_at"], line["finished_at"]) == (st, fi)
    assert (line["node"], line["worker"], line["outcome"]) == ("n1", 1, jobs.ERROR)
    assert forked - 1 <= line["forked_at"] <= line["claimed_at"]
    assert "acked_at" not in line

    rows = {r["id"]: r["timeline"] for r in queue.list_jobs("s1", limit=None)[0]}
    assert rows["b"] == line and rows["a"]["worker"] == 0

    acked_before = time.time()
    assert queue.ack("s1", ["a", "b", "c"]) == 3
    kept = queue.get_job("s1", "b")
    assert kept["status"] == jobs.ACKED
    assert kept["timeline"].pop("acked_at") >= acked_before
    assert kept["timeline"] == line
    rows = {r["id"]: r for r in queue.list_jobs("s1", limit=None)[0]}
    assert {r["status"] for r in rows.values()} == {jobs.ACKED}
    assert rows["c"]["timeline"]["finished_at"] == times["c"][3]
    assert rows["c"]["timeline"]["worker"] == 0


def test_a_held_claim_shows_its_claim_time_and_node(queue):
    queue.create_stream("s1", {})
    enqueue(queue, "s1", [spec("a")])
    claim = queue.claim("s1", "n7", 1, lease=30)
    assert claim is not None and claim.claimed > 0
    line = queue.get_job("s1", "a")["timeline"]
    assert line["claimed_at"] == claim.claimed and line["node"] == "n7"
    assert "started_at" not in line and "outcome" not in line
    (row,) = queue.list_jobs("s1", limit=None)[0]
    assert row["timeline"] == line
