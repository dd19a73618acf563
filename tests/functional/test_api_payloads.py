"""Large payloads at the API: presigned uploads, S3 jobs, result URLs, deletion, refusals."""

from __future__ import annotations

import urllib.request

from conftest_api import BUCKET, Api
from test_api import create, job_batch

from impetus.core import codec, jobs
from impetus.core.config import AwsSettings
from impetus.core.jobs import Outcome
from impetus.core.signing import sha256_hex
from impetus.storage.queue import Queue

pytest_plugins = ["conftest_api"]


def upload(api: Api, api_aws, stream: str, data: str) -> str:
    reply = api.post(f"/streams/{stream}/payloads", {"count": 1})
    assert reply.status == 200, reply.body
    [slot] = reply.body["uploads"]
    assert slot["ref"].startswith(f"payloads/{stream}/args/")
    assert reply.body["content_type"] == "application/octet-stream"
    # moto in-process does not serve URLs: store the bytes as the presigned PUT would
    api_aws["s3"].put_object(Bucket=BUCKET, Key=slot["ref"], Body=data.encode())
    return slot["ref"]


def s3_batch(ref: str, data: str, **changes) -> dict:
    body = job_batch(1)
    job = body["jobs"][0]
    del job["args"]
    job.update(transport="s3", args_ref=ref, args_digest=sha256_hex(data))
    job.update(changes)
    return body


def test_an_s3_job_round_trip(api: Api, api_aws):
    create(api)
    data = codec.dumps(list(range(100_000)))
    ref = upload(api, api_aws, "s1", data)
    assert api.post("/streams/s1/jobs", s3_batch(ref, data)).status == 200

    queue = Queue(AwsSettings.from_env())  # a node's side
    claim = queue.claim("s1", "n1", 1, lease=30)
    [job] = claim.jobs
    assert (job.transport, job.args_ref, job.args, job.args_digest) == (
        "s3",
        ref,
        "",
        sha256_hex(data),
    )
    result_key = f"payloads/s1/results/{job.id}-0-abc"
    api_aws["s3"].put_object(Bucket=BUCKET, Key=result_key, Body=b"big result")
    queue.complete(claim, {job.id: Outcome(jobs.READY, result_ref=result_key)})

    [finished] = api.get("/streams/s1/results", query="stage=stage1").body["jobs"]
    assert finished["result"] is None and finished["result_ref"] == result_key
    assert finished["result_url"].startswith("https://") and "Signature" in finished["result_url"]
    assert api.get(f"/streams/s1/jobs/{job.id}").body["result_url"]

    assert api.delete("/streams/s1").status == 200
    assert api_aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="payloads/s1/")["KeyCount"] == 0


def test_refused_s3_jobs_change_nothing(api: Api, api_aws):
    create(api)
    create(api, "other")
    data = codec.dumps("x")
    theirs = upload(api, api_aws, "other", data)
    cases = [
        s3_batch(theirs, data),  # another stream's upload
        s3_batch("payloads/s1/args/nothinghere", data),  # never uploaded
        s3_batch("payloads/s1/args/../../x", data),  # not an upload key at all
        s3_batch(upload(api, api_aws, "s1", data), data, args=codec.dumps(1)),  # both
        s3_batch(upload(api, api_aws, "s1", data), data, args_digest="zz"),  # bad digest
        job_batch(1, transport="inline", args_ref="payloads/s1/args/a"),  # inline + ref
    ]
    for body in cases:
        reply = api.post("/streams/s1/jobs", body)
        assert reply.status == 400, reply.body
        assert reply.body["error"] and reply.body["message"]
    assert api.get("/streams/s1").body["counts"]["forked"] == 0


def test_upload_urls_are_refused_for_unknown_streams_and_bad_counts(api: Api):
    assert api.post("/streams/nope/payloads", {"count": 1}).status == 404
    create(api)
    assert api.post("/streams/s1/payloads", {"count": 0}).status == 400
    assert api.post("/streams/s1/payloads", {"count": 101}).status == 400
    assert api.post("/streams/s1/payloads", {"count": "1"}).status == 400


def test_presigned_urls_carry_no_authkey(api: Api):
    create(api)
    [slot] = api.post("/streams/s1/payloads", {}).body["uploads"]
    assert "authkey" not in slot["url"].lower()
    assert urllib.request.urlparse(slot["url"]).path.endswith(slot["ref"])
