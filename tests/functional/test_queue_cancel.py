"""Cancelling jobs in the queue (moto in-process): a cancelled waiting job is never
claimed; a claimed one is not touched; counters, collection and the chunk stay right."""

from __future__ import annotations

from impetus.core import codec, jobs
from impetus.core.jobs import Outcome
from tests.functional.test_queue import drain, enqueue, spec


def test_cancelled_waiting_jobs_are_never_claimed(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec(f"j{i}", args=i) for i in range(6)])
    claim = queue.claim("s", "n1", 1, lease=30)  # j0 runs
    answer = queue.cancel_jobs("s", ["j0", "j3", "j1", "nope"])
    assert answer == {"cancelled": ["j3", "j1"], "running_or_done": ["j0"], "unknown": ["nope"]}
    assert queue.get_stream("s")["counts"]["waiting"] == 3
    assert queue.recount("s") == {"waiting": 3, "running": 1, "delayed": 0}
    assert queue.get_job("s", "j3")["status"] == "cancelled"
    queue.complete(claim, {"j0": Outcome(jobs.READY, result=codec.dumps(0))})
    assert sorted(drain(queue, "s")) == ["j2", "j4", "j5"]
    # the swapped jobs' records point at their slots: their results are found and acked
    done = queue.results("s", "stage1")
    assert sorted(j["id"] for j in done) == ["j0", "j2", "j4", "j5"]
    assert queue.ack("s", [j["id"] for j in done]) == 4
    assert queue.results("s", "stage1") == []
    assert queue.cancel_jobs("s", ["j3"])["cancelled"] == ["j3"]  # idempotent


def test_cancelling_every_job_of_a_chunk_deletes_it(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec(f"j{i}", args=i) for i in range(3)])
    assert queue.cancel_jobs("s", ["j2", "j0", "j1"])["cancelled"] == ["j2", "j0", "j1"]
    assert queue.claim("s", "n1", 5, lease=30) is None
    assert list(queue.jobs.items.chunks_in("s#0", "#pk", consistent=True)) == []


def test_cancel_stream_takes_waiting_and_delayed_jobs_only(queue):
    queue.create_stream("s")
    enqueue(queue, "s", [spec("a"), spec("b"), spec("later", delay=60)])
    claim = queue.claim("s", "n1", 1, lease=30)
    answer = queue.cancel_stream("s")
    assert sorted(answer["cancelled"]) == ["b", "later"]
    assert [j.id for j in claim.jobs] == ["a"]
    desc = queue.get_stream("s")["counts"]
    assert (desc["waiting"], desc["delayed"], desc["running"]) == (0, 0, 1)
    assert queue.claim("s", "n2", 5, lease=30) is None
