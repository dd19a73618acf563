"""A worker's side of S3 payloads (moto in-process): args checked before loading,
large results written to the bucket instead of the queue."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.core.signing import sha256_hex
from impetus.storage import payloads
from node_agent.worker import FunctionCache, PayloadStore, run_job

BUCKET = "worker-payloads"


def _mark_and_echo(args):
    path, value = args
    Path(path).write_text("ran")
    return value


@pytest.fixture
def store(aws):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return PayloadStore(AwsSettings(bucket=BUCKET))


def job_with_s3_args(store, args, digest=None) -> dict:
    data = codec.dumps(args)
    ref = payloads.new_args_key("s")
    store().put(ref, data)
    code = codec.dump_function(_mark_and_echo)
    return {
        "id": "j1",
        "stream": "s",
        "name": "_mark_and_echo",
        "code": code,
        "code_digest": codec.digest(code),
        "args": "",
        "transport": "s3",
        "args_ref": ref,
        "args_digest": digest or sha256_hex(data),
        "python": codec.PYTHON_VERSION,
        "cloudpickle": codec.CLOUDPICKLE_VERSION,
        "attempt": 0,
    }


def test_s3_args_are_fetched_and_a_large_result_goes_back_to_s3(store, tmp_path):
    value = os.urandom(payloads.INLINE_RESULT_LIMIT).hex()  # incompressible
    outcome = run_job(job_with_s3_args(store, (str(tmp_path / "m"), value)), FunctionCache(), store)
    assert outcome.status == "ready" and outcome.result is None
    assert outcome.result_ref.startswith("payloads/s/results/j1-0-")
    assert codec.loads(store().get(outcome.result_ref)) == value


def test_s3_args_that_do_not_match_their_signed_digest_never_load(store, tmp_path):
    marker = tmp_path / "m"
    job = job_with_s3_args(store, (str(marker), 1), digest="0" * 64)
    outcome = run_job(job, FunctionCache(), store)
    assert outcome.status == "error" and outcome.error["type"] == "signature"
    assert not marker.exists()


def test_a_missing_args_object_is_a_retryable_payload_error(store, tmp_path):
    job = job_with_s3_args(store, (str(tmp_path / "m"), 1))
    job["args_ref"] = "payloads/s/args/gone"
    outcome = run_job(job, FunctionCache(), store)
    assert outcome.error["type"] == "payload" and outcome.failure == "crash"
