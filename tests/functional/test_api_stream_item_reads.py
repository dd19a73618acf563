"""API requests read their stream's item at most once each, and eventually consistent
(issue 19 wave 2: the busy stream's item was read 14,700 times a second at 100,000
jobs/s). Measured with bench/costmeter.py's CostMeter on the real handler over moto."""

from __future__ import annotations

import time

import boto3
import pytest

from bench.costmeter import CostMeter, Usage
from impetus.core.config import AwsSettings
from impetus.storage.queue import Queue
from tests.functional.conftest_api import BOTO_CONFIG, REGION, TABLE_PREFIX, Api
from tests.functional.test_api import create, job_batch

pytest_plugins = ["tests.functional.conftest_api"]


@pytest.fixture
def metered(api: Api, api_aws):
    """The API on a Queue whose DynamoDB client the meter counts."""
    from lambdas.api import app as api_app

    meter = CostMeter(api_aws["dynamodb"], TABLE_PREFIX)
    client = meter.instrument(boto3.client("dynamodb", region_name=REGION, config=BOTO_CONFIG))
    api_app._queue = Queue(AwsSettings.from_env(), client=client)
    return api, meter


def stream_item_reads(usage: Usage, stream: str) -> tuple[int, float]:
    """(requests, read units) on the stream's own item (not its counters or marks)."""
    count = usage.per_key[("node", "streams", "stream item")].get(stream)
    return (count.requests, count.rcu) if count else (0, 0.0)


def test_each_request_reads_the_stream_item_at_most_once_eventually_consistent(
    metered, monkeypatch: pytest.MonkeyPatch
):
    from lambdas.api import app as api_app

    monkeypatch.setattr(api_app, "ITEM_COPY_TTL", 0.0)  # no reuse across requests here
    api, meter = metered
    create(api, "s1")
    calls = {
        "enqueue": lambda: api.post("/streams/s1/jobs", job_batch(20)),
        "results": lambda: api.get("/streams/s1/results", query="stage=stage1"),
        "get": lambda: api.get("/streams/s1"),
        "jobs": lambda: api.get("/streams/s1/jobs"),
        "store": lambda: api.put("/streams/s1/store/k", {"value": 1}),
    }
    seen = {}
    for name, call in calls.items():
        meter.reset()
        for _ in range(3):
            assert call().status < 300, name
        seen[name] = stream_item_reads(meter.reset(), "s1")
    print("stream-item (requests, RCU) per 3 requests:", seen)
    for name, (requests, rcu) in seen.items():
        assert requests == 3, (name, requests)  # one a request (was two)
        assert rcu <= 1.5, (name, rcu)  # 0.5 a read of an item under 4 KB: eventually consistent


def test_a_warm_container_reads_a_busy_stream_item_about_once_a_second(metered):
    api, meter = metered
    create(api, "s1")
    meter.reset()
    started = time.monotonic()
    polls = 0
    while time.monotonic() - started < 1.5:
        assert api.get("/streams/s1/results", query="stage=stage1").status == 200
        polls += 1
    requests, _ = stream_item_reads(meter.reset(), "s1")
    print(f"{polls} result polls in 1.5 s: {requests} stream-item reads")
    assert polls >= 10
    assert requests <= 3  # one per ITEM_COPY_TTL (1 s), not one (or two) per request


def test_the_copy_keeps_the_owner_check_and_sees_its_own_container_writes(metered):
    api, _ = metered
    create(api, "s1")
    assert api.get("/streams/s1").status == 200  # the copy is made
    assert api.get("/streams/s1", stream_key="00" * 32).status == 403
    assert api.get("/streams/s1", stream_key=None).status == 401
    patched = api.patch("/streams/s1", {"properties": {"mpps": 3}})
    assert patched.status == 200 and patched.body["properties"]["mpps"] == 3
    assert api.get("/streams/s1").body["properties"]["mpps"] == 3
    assert api.delete("/streams/s1").status == 200
    assert api.get("/streams/s1").status == 404
