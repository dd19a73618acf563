"""The inspection routes behind the CLI: ``GET /streams/{id}/jobs`` and ``GET /nodes``."""

from __future__ import annotations

import time
import typing

import pytest
from conftest_api import Api
from test_api import create, job_batch, square

from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.core.jobs import ERROR, READY, Outcome, system_error
from impetus.storage import joblist
from impetus.storage.nodes import NodeBeat, Nodes, NodeStats
from impetus.storage.queue import Queue
from lambdas.api import models

pytest_plugins = ["conftest_api"]


def _run_some(queue: Queue) -> None:
    """Of job-0..job-5: 0 ready, 1 error, 2 and 3 running, 4 and 5 waiting."""
    claim = queue.claim("s1", "node-a", max_jobs=2, lease=60)
    outcomes = {
        "job-0": Outcome(READY, result=codec.dumps(square(0)), started=1.0, finished=2.0),
        "job-1": Outcome(ERROR, error=system_error("Boom", "failed", "square")),
    }
    queue.complete(claim, outcomes)
    assert queue.claim("s1", "node-b", max_jobs=2, lease=60) is not None


def test_list_jobs_by_status(api: Api):
    create(api)
    assert api.post("/streams/s1/jobs", job_batch(6)).status == 200
    queue = Queue(AwsSettings.from_env())
    _run_some(queue)

    reply = api.get("/streams/s1/jobs")
    assert reply.status == 200, reply.body
    assert reply.body["count"] == 6
    status = {job["id"]: job["status"] for job in reply.body["jobs"]}
    assert status == {
        "job-0": "ready", "job-1": "error", "job-2": "running", "job-3": "running",
        "job-4": "waiting", "job-5": "waiting",
    }  # fmt: skip
    rows = {job["id"]: job for job in reply.body["jobs"]}
    assert rows["job-2"]["node"] == "node-b" and rows["job-0"]["node"] == "node-a"
    assert rows["job-0"]["name"] == "square" and rows["job-0"]["stage"] == "stage1"
    assert "args" not in rows["job-0"] and "result" not in rows["job-0"]

    running = api.get("/streams/s1/jobs", query="status=running").body
    assert [j["id"] for j in running["jobs"]] == ["job-2", "job-3"] and running["count"] == 2
    limited = api.get("/streams/s1/jobs", query="status=waiting&limit=1").body
    assert len(limited["jobs"]) == 1 and limited["count"] == 2

    api.post("/streams/s1/results/ack", {"ids": ["job-0"]})
    acked = api.get("/streams/s1/jobs", query="status=acked").body
    assert [j["id"] for j in acked["jobs"]] == ["job-0"]


def test_delayed_jobs_are_listed_as_delayed(api: Api):
    create(api)
    api.post("/streams/s1/jobs", job_batch(2, delay=3600))
    reply = api.get("/streams/s1/jobs", query="status=delayed")
    assert reply.body["count"] == 2


@pytest.mark.parametrize("query", ["status=finished", "limit=0", "limit=1001", "limit=x"])
def test_list_jobs_refuses_bad_queries(api: Api, query):
    create(api)
    reply = api.get("/streams/s1/jobs", query=query)
    assert (reply.status, reply.error) == (400, "validation_error"), reply.body


def test_list_jobs_of_an_unknown_stream_is_404(api: Api):
    reply = api.get("/streams/nope/jobs")
    assert reply.status == 404 and "nope" in reply.body["message"]


def test_the_api_statuses_are_the_listing_statuses():
    assert typing.get_args(models.ListStatus) == joblist.LIST_STATUSES


def test_nodes_lists_live_heartbeats_only(api: Api, api_aws):
    assert api.get("/nodes").body == {"nodes": [], "more": False}
    table = Nodes.for_prefix(api_aws["dynamodb"], "test")
    now = time.time()
    common = dict(host="h", pid=1, started=now, properties={"gpu": "1"}, mpps=2, state="running")
    stats = {"streams": ["s1"], "workers_total": 2, "workers_busy": 1, "jobs_done": 7}
    table.heartbeat(
        NodeBeat(node_id="n-live", at=now, interval=5, stats=NodeStats(**stats), **common)
    )
    table.heartbeat(
        NodeBeat(node_id="n-dead", at=now - 60, interval=5, stats=NodeStats(), **common)
    )
    reply = api.get("/nodes")
    assert reply.status == 200, reply.body
    (node,) = reply.body["nodes"]
    assert node["node"] == "n-live" and node["workers_busy"] == 1 and node["jobs_done"] == 7
    assert node["streams"] == ["s1"] and node["properties"] == {"gpu": "1"}
    assert "expires" not in node
