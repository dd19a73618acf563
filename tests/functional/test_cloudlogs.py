"""Jobs' output sent to CloudWatch Logs (moto), within PutLogEvents' limits."""

from __future__ import annotations

import time

import boto3
import pytest

from node_agent import cloudlogs
from node_agent.cloudlogs import CloudLogSettings, LogShipper

NOW = time.time()  # CloudWatch refuses events older than 14 days


@pytest.fixture
def logs(aws):
    client = boto3.client("logs", region_name="us-east-1")
    client.create_log_group(logGroupName="impetus-jobs")
    return client


def _messages(logs) -> list[str]:
    (stream,) = logs.describe_log_streams(logGroupName="impetus-jobs")["logStreams"]
    assert stream["logStreamName"].startswith("s1/")
    answer = logs.get_log_events(logGroupName="impetus-jobs", logStreamName=stream["logStreamName"])
    return [e["message"] for e in answer["events"]]


def test_a_batch_of_outputs_becomes_one_event_per_job_and_kind(logs):
    shipper = LogShipper("impetus-jobs", client=logs)
    shipper.add("s1", "j1", {"stdout": "hello\n", "log": "WARNING x: y\n"}, NOW)
    shipper.add("s1", "j2", None, NOW + 1)  # a quiet job: nothing
    shipper.add("s1", "j3", {"stderr": "oops\n", "truncated": ["stderr"]}, NOW + 2)
    shipper.flush()
    assert _messages(logs) == ["j1 stdout: hello", "j1 log: WARNING x: y", "j3 stderr: oops"]
    shipper.add("s1", "j4", {"stdout": "again"}, NOW + 3)
    shipper.flush()  # the log stream exists already: reused
    assert _messages(logs)[-1] == "j4 stdout: again"


def test_a_missing_group_drops_events_without_failing(aws, caplog):
    client = boto3.client("logs", region_name="us-east-1")
    shipper = LogShipper("no-such-group", client=client)
    shipper.add("s1", "j1", {"stdout": "x"}, 1.0)
    shipper.flush()
    assert "dropped 1 events" in caplog.text


def test_off_unless_a_group_is_configured(monkeypatch):
    monkeypatch.delenv("IMPETUS_LOG_GROUP", raising=False)
    assert not isinstance(cloudlogs.shipper(), LogShipper)
    monkeypatch.setenv("IMPETUS_LOG_GROUP", "g")
    assert CloudLogSettings.from_env().log_group == "g"
    assert isinstance(cloudlogs.shipper(), LogShipper)


def test_batches_respect_aws_limits():
    many = [{"timestamp": i, "message": "x"} for i in range(25_000)]
    sizes = [len(b) for b in cloudlogs.batches(many)]
    assert sizes == [10_000, 10_000, 5_000]
    big = [{"timestamp": 3 - i, "message": "y" * 200_000} for i in range(4)]
    split = list(cloudlogs.batches(big))
    for batch in split:
        assert sum(len(e["message"]) + 26 for e in batch) <= cloudlogs.MAX_BATCH_BYTES
    assert [e["timestamp"] for b in split for e in b] == [0, 1, 2, 3]  # time order
    (event,) = cloudlogs.events("j", {"stdout": "é" * 200_000}, 5)
    assert len(event["message"].encode()) <= cloudlogs.MAX_EVENT_BYTES


def test_a_worker_process_ships_its_jobs_output(monkeypatch):
    """The real hook: the agent's pool ships what its workers' jobs printed (the workers
    hold no credentials), with IMPETUS_LOG_GROUP set, on a moto server."""
    from moto.server import ThreadedMotoServer

    from tests.nodeharness import make_job, run_jobs

    def shout(n):
        print("shouting", n)
        return n

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        monkeypatch.setenv("IMPETUS_LOG_GROUP", "impetus-jobs")
        logs = boto3.client("logs", region_name="us-east-1", endpoint_url=f"http://{host}:{port}")
        logs.create_log_group(logGroupName="impetus-jobs")
        run_jobs([make_job(shout, i, job_id=f"j{i}", stream="s1") for i in range(2)])
        assert _messages(logs) == ["j0 stdout: shouting 0", "j1 stdout: shouting 1"]
    finally:
        server.stop()
