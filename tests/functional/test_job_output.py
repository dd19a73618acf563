"""Captured output through the Queue: stored with the claim's results, returned with the
job record, deleted on acknowledgement, never written by a claim that was lost."""

from __future__ import annotations

import pytest

from impetus.core import codec
from impetus.core.exceptions import ClaimLost
from impetus.core.jobs import READY, Outcome
from impetus.storage import dynamo
from impetus.storage.queue import Queue


def _enqueue(queue: Queue, n: int) -> None:
    code = codec.dump_function(abs)
    digest = codec.digest(code)
    specs = [
        {"id": f"j{i}", "name": "abs", "code": digest, "args": codec.dumps(i), "stage": "s"}
        for i in range(n)
    ]
    queue.create_stream("st", {})
    queue.enqueue("st", specs, {digest: code}, codec.PYTHON_VERSION)


def _output_items(queue: Queue) -> list[dict]:
    items = dynamo.query(
        queue.client,
        TableName=queue.tables["jobs"],
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "stream"},
        ExpressionAttributeValues=dynamo.values(s="st"),
    )
    return [i for i in items if i["job"].startswith("#output#")]


BIG = {"stdout": "x" * 64 * 1024, "stderr": "y" * 64 * 1024, "log": "z" * 64 * 1024}


def test_output_round_trip_and_cleanup(queue: Queue):
    _enqueue(queue, 2)
    claim = queue.claim("st", "n1", max_jobs=2, lease=60)
    queue.complete(
        claim,
        {
            "j0": Outcome(READY, result=codec.dumps(0), output=BIG),  # 192 KiB: its own item
            "j1": Outcome(READY, result=codec.dumps(1)),
        },
    )
    results = {j["id"]: j for j in queue.results("st", "s")}
    assert results["j0"]["output"] == BIG
    assert "output" not in results["j1"]
    assert queue.get_job("st", "j0")["output"] == BIG
    assert len(_output_items(queue)) == 1
    queue.ack("st", ["j0", "j1"])
    assert _output_items(queue) == []


def test_a_lost_claim_leaves_no_output_behind(queue: Queue):
    _enqueue(queue, 1)
    claim = queue.claim("st", "n1", max_jobs=1, lease=60)
    queue.release(claim)  # as a reaper would: the claim is no longer ours
    with pytest.raises(ClaimLost):
        queue.complete(claim, {"j0": Outcome(READY, result=codec.dumps(0), output=BIG)})
    assert _output_items(queue) == []
