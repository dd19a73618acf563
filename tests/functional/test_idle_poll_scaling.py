"""An idle node's DynamoDB requests and read units per second do not grow with the number
of streams (issue 19, point 4), and the active-streams record still gets work found.

A real node agent runs in a thread against moto in-process; every DynamoDB request it
makes is counted by bench/costmeter.py's CostMeter (botocore event hooks), with read
units as AWS bills them. Nothing of ours is mocked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest

from bench.costmeter import CostMeter, Usage
from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.storage.queue import Queue
from node_agent.agent import Agent
from node_agent.config import NodeSettings

POLL = 0.2  # the agent's listing interval here: many listings in a short window
WINDOW = 3.0  # seconds measured


def _square(x):
    return x * x


CODE = codec.dump_function(_square)
DIGEST = codec.digest(CODE)


def fork(queue: Queue, stream: str, n: int = 1) -> list[str]:
    specs = [
        {"name": "_square", "code": DIGEST, "args": codec.dumps(i), "stage": "s1"} for i in range(n)
    ]
    return queue.enqueue(stream, specs, {DIGEST: CODE}, codec.PYTHON_VERSION)["accepted"]


@contextmanager
def running_agent(settings: AwsSettings, client) -> Iterator[Agent]:
    node = NodeSettings(
        node_id="idle-node", mpps=1, aws=settings, poll_interval=POLL, heartbeat_interval=1.0
    )
    agent = Agent(node, client=client)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.request_stop()
        agent.request_stop()  # skip the grace: nothing runs
        thread.join(timeout=30)
        assert not thread.is_alive()


def idle_usage(queue: Queue, streams: int) -> Usage:
    """What an idle agent asks of DynamoDB in WINDOW seconds with ``streams`` idle streams
    (created with properties, as clients do, but holding no work)."""
    for i in range(streams):
        queue.create_stream(f"idle{i:03d}", {"mpps": 2, "owner_note": "x" * 200})
    settings = queue.settings
    meter = CostMeter(boto3.client("dynamodb"), settings.table_prefix)
    client = meter.instrument(boto3.client("dynamodb"))
    with running_agent(settings, client):
        time.sleep(1.0)  # started: the first listing and heartbeat are behind it
        meter.reset()
        time.sleep(WINDOW)
        usage = meter.reset()
    return usage


@pytest.fixture
def fresh_queue(aws):
    """A Queue on fresh tables, each call (two deployments in one test)."""
    from impetus.local.provision import provision

    made = []

    def make(prefix: str) -> Queue:
        settings = AwsSettings(table_prefix=prefix)
        provision(settings)
        made.append(prefix)
        return Queue(settings)

    return make


def test_idle_requests_and_reads_do_not_grow_with_streams(fresh_queue):
    one = idle_usage(fresh_queue("one"), 1)
    hundred = idle_usage(fresh_queue("hundred"), 100)
    per_second = {
        "requests": (one.dynamodb_requests / WINDOW, hundred.dynamodb_requests / WINDOW),
        "rcu": (one.rcu / WINDOW, hundred.rcu / WINDOW),
    }
    print("idle agent per second (1 stream, 100 streams):", per_second)
    print("by operation, 100 streams:", dict(hundred.dynamodb))
    assert one.dynamodb_requests >= WINDOW / POLL / 2  # it did poll
    # A few requests of slack for timing (a listing or heartbeat more in one window), no
    # factor: with a Scan, 100 streams' items cost several times the read units of one.
    assert hundred.dynamodb_requests <= one.dynamodb_requests + 3
    assert hundred.rcu <= one.rcu + 3
    assert "Scan" not in hundred.dynamodb  # nothing lists the streams table


def test_a_job_forked_to_an_idle_stream_is_claimed_promptly(queue):
    for i in range(20):
        queue.create_stream(f"quiet{i}")
    queue.create_stream("s")
    with running_agent(queue.settings, boto3.client("dynamodb")):
        time.sleep(1.0)  # idle: nothing marked, nothing tracked
        started = time.monotonic()
        fork(queue, "s")
        while queue.get_stream("s")["counts"]["finished"] < 1:
            assert time.monotonic() - started < 15, queue.get_stream("s")
            time.sleep(0.05)
    # One listing interval to see the mark, then a worker start: well under the 15 s cap.
    print(f"claimed and finished in {time.monotonic() - started:.2f} s")
    assert queue.get_stream("s")["counts"]["finished"] == 1
