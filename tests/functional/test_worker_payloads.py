"""A worker's side of S3 payloads, on a moto server: the worker holds no credentials, so
it asks the agent for URLs presigned for its own job; args are checked before loading,
large results go to the bucket instead of the queue."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.core.signing import sha256_hex
from impetus.storage import payloads
from node_agent.requests import WorkerRequests
from tests.nodeharness import make_job, run_jobs, support

BUCKET = "worker-payloads"


def _mark_and_echo(args):
    path, value = args
    Path(path).write_text("ran")
    return value


@pytest.fixture
def bucket(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield payloads.Payloads(AwsSettings(bucket=BUCKET, endpoint_url=f"http://{host}:{port}"))
    server.stop()


def run_with(bucket: payloads.Payloads, job: dict):
    requests = WorkerRequests(store=lambda: None, bucket=lambda: bucket)
    return run_jobs([job], worker_support=support(requests))[job["id"]]


def job_with_s3_args(bucket: payloads.Payloads, args, digest=None) -> dict:
    data = codec.dumps(args)
    ref = payloads.new_args_key("s")
    bucket.put(ref, data)
    job = make_job(_mark_and_echo, None)
    job.update(args="", transport="s3", args_ref=ref, args_digest=digest or sha256_hex(data))
    return job


def test_s3_args_are_fetched_and_a_large_result_goes_back_to_s3(bucket, tmp_path):
    value = os.urandom(payloads.INLINE_RESULT_LIMIT).hex()  # incompressible
    outcome = run_with(bucket, job_with_s3_args(bucket, (str(tmp_path / "m"), value)))
    assert outcome.status == "ready" and outcome.result is None, outcome.error
    assert outcome.result_ref.startswith("payloads/s/results/j1-0-")
    assert codec.loads(bucket.get(outcome.result_ref)) == value


def test_s3_args_that_do_not_match_their_signed_digest_never_load(bucket, tmp_path):
    marker = tmp_path / "m"
    outcome = run_with(bucket, job_with_s3_args(bucket, (str(marker), 1), digest="0" * 64))
    assert outcome.status == "error" and outcome.error["type"] == "signature"
    assert not marker.exists()


def test_a_missing_args_object_is_a_retryable_payload_error(bucket, tmp_path):
    job = job_with_s3_args(bucket, (str(tmp_path / "m"), 1))
    job["args_ref"] = "payloads/s/args/gone"
    outcome = run_with(bucket, job)
    assert outcome.error["type"] == "payload" and outcome.failure == "crash"


def test_a_worker_gets_urls_only_for_the_job_it_runs(bucket, tmp_path):
    """A job asks the agent for another job's args URL and for a URL while claiming to be
    another job: both refused; only its own result key is presigned."""

    def pry(_):
        from impetus.core.exceptions import InvalidRequest
        from node_agent import worker

        channel = worker.ACTIVE_CHANNEL
        answers = []
        for ask in ({"kind": "args_url", "job": "other"}, {"kind": "result_url", "job": "x"}):
            try:
                channel.request(ask["kind"], job=ask["job"])
                answers.append("given")
            except InvalidRequest:
                answers.append("refused")
        return answers

    outcome = run_with(bucket, make_job(pry, None))
    assert outcome.status == "ready", outcome.error
    assert codec.loads(outcome.result) == ["refused", "refused"]
