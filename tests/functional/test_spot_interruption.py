"""Spot interruptions end to end on one node: the real agent (a process, against a moto
server) watches a fake IMDSv2 server (tests/imdsfake.py) that answers 404 until the test
makes EC2 speak. What must hold (docs/guarantees.md, "Spot interruptions"):

- on an interruption notice, queued jobs (claimed, not started) go back at once with
  their attempt unchanged; a running job that ends within the notice is reported; one
  still running 15 s before the stated time is cut off and goes back uncharged;
- on a rebalance recommendation the node stops claiming, hands queued jobs back,
  finishes the running ones and stays up drained.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from impetus.core import codec
from impetus.core.config import ENV_IMDS_POLL, ENV_IMDS_URL
from impetus.storage.queue import Queue
from node_agent.interruption import INSTANCE_ACTION_PATH
from tests.functional import test_node_agent as node
from tests.functional.test_node_agent import (
    AgentProcess,
    enqueue,
    node_item,
    results_when,
    wait_for,
    write_pid_then_sleep,
)
from tests.imdsfake import FakeImds

# The agent-process fixtures of test_node_agent.py: a moto server, tables, the agent.
moto, settings, queue, start_agent = node.moto, node.settings, node.queue, node.start_agent

QUEUED = ["q0", "q1", "q2"]


def square(i):
    return i * i


def sleep_then_answer(args):
    path, seconds = args
    Path(path).write_text("started")
    time.sleep(seconds)
    return "finished"


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeImds]:
    """A fake metadata service the agents started in the test watch every 0.2 s."""
    with FakeImds() as fake:
        monkeypatch.setenv(ENV_IMDS_URL, fake.url)
        monkeypatch.setenv(ENV_IMDS_POLL, "0.2")
        yield fake


def job_state(queue: Queue, stream: str, job_id: str) -> tuple[str, int]:
    job = queue.get_job(stream, job_id)
    return job["status"], job["attempt"]


def enqueue_as(queue: Queue, stream: str, fn, items: dict[str, object]) -> None:
    code = codec.dump_function(fn)
    digest = codec.digest(code)
    specs = [
        {"id": jid, "name": fn.__name__, "code": digest, "args": codec.dumps(a), "stage": "stage1"}
        for jid, a in items.items()
    ]
    queue.enqueue(stream, specs, {digest: code}, codec.PYTHON_VERSION)


def long_job_with_queue_behind(
    queue: Queue, agent: AgentProcess, stream: str, marker: Path, seconds: float
) -> None:
    """One worker (mpps 1) runs a long job with three short jobs queued behind it, in its
    pipe: the agent learnt from a first job that jobs here are short."""
    enqueue_as(queue, stream, square, {"warm": 3})
    results_when(queue, stream, 1)
    queue.ack(stream, ["warm"])
    enqueue_as(queue, stream, sleep_then_answer, {"long": (str(marker), seconds)})
    wait_for(marker.exists, 60, "long job start")
    enqueue_as(queue, stream, square, dict(zip(QUEUED, range(3), strict=True)))
    wait_for(lambda: "queued 3 jobs behind busy workers" in agent.log.read_text(), 30, "queue")


def test_a_notice_hands_queued_jobs_back_at_once_and_lets_the_running_one_finish(
    queue, settings, start_agent, imds, tmp_path
):
    queue.create_stream("sp1", {"mpps": 1, "max_attempts": 1})
    agent = start_agent()
    marker = tmp_path / "long.started"
    long_job_with_queue_behind(queue, agent, "sp1", marker, seconds=4.0)

    imds.notice(60)  # running jobs may go on until 45 s from now
    noticed = time.monotonic()
    wait_for(
        lambda: all(job_state(queue, "sp1", q) == ("waiting", 0) for q in QUEUED),
        10,
        "queued jobs back in the queue",
    )
    assert time.monotonic() - noticed < 3.0  # at once, not after the long job
    assert job_state(queue, "sp1", "long")[0] == "running"

    assert agent.proc.wait(30) == 0  # it finishes the long job, then stops by itself
    long = queue.get_job("sp1", "long")
    assert long["status"] == "ready" and long["attempt"] == 0
    assert codec.loads(long["result"]) == "finished"
    for q in QUEUED:  # never run here, never charged: any node runs them next
        assert job_state(queue, "sp1", q) == ("waiting", 0)
    assert queue.get_stream("sp1")["counts"]["waiting"] == 3
    assert node_item(settings, agent.node_id) is None
    assert imds.statuses(INSTANCE_ACTION_PATH)[-1] == 200


def test_a_job_still_running_at_the_cutoff_goes_back_without_an_attempt_charged(
    queue, start_agent, imds, tmp_path
):
    # max_attempts 1: a charged run would fail the job for good instead of queueing it
    queue.create_stream("sp2", {"max_attempts": 1})
    pidfile = tmp_path / "worker.pid"
    enqueue(queue, "sp2", write_pid_then_sleep, [str(pidfile)])
    agent = start_agent("--grace", "120")
    wait_for(pidfile.exists, 60, "job start")
    worker = int(pidfile.read_text())

    imds.notice(17)  # the cutoff (15 s before) is 1-2 s away; the grace would allow 120
    started = time.monotonic()
    assert agent.proc.wait(30) == 0
    assert 0.5 < time.monotonic() - started < 10
    assert job_state(queue, "sp2", "job0") == ("waiting", 0)
    assert queue.get_stream("sp2")["counts"] == {
        **queue.get_stream("sp2")["counts"],
        "waiting": 1,
        "running": 0,
        "errors": 0,
    }
    assert not Path(f"/proc/{worker}").exists() or "Z" in _state(worker)
    assert "the instance is being interrupted" in agent.log.read_text()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_rebalance_recommendation_stops_claims_and_drains(
    queue, settings, start_agent, imds, tmp_path
):
    queue.create_stream("sp3", {"mpps": 1})
    agent = start_agent()
    marker = tmp_path / "long.started"
    long_job_with_queue_behind(queue, agent, "sp3", marker, seconds=3.0)

    imds.rebalance()
    wait_for(
        lambda: all(job_state(queue, "sp3", q) == ("waiting", 0) for q in QUEUED),
        10,
        "queued jobs back in the queue",
    )
    long = wait_for(
        lambda: (j := queue.get_job("sp3", "long"))["status"] == "ready" and j, 30, "long job"
    )
    assert long["attempt"] == 0 and codec.loads(long["result"]) == "finished"
    enqueue_as(queue, "sp3", square, {"late": 4})
    time.sleep(2.0)  # several claim rounds of a node that still claimed
    for job_id in [*QUEUED, "late"]:
        assert job_state(queue, "sp3", job_id) == ("waiting", 0)
    item = wait_for(
        lambda: (i := node_item(settings, agent.node_id)) and i["state"]["S"] == "drained" and i,
        10,
        "drained node item",
    )
    assert item is not None and agent.proc.poll() is None  # up until Auto Scaling replaces it
    assert agent.terminate() == 0
