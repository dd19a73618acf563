"""The API Lambda end to end in-process: API Gateway v2 events -> handler -> Queue -> moto.

Auth, every route's happy path, the OpenAPI description. Bad input: test_api_errors.py.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from conftest_api import AUTHKEY, AUTHKEY_SECRET, Api, http_event

from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.core.exceptions import CollectorBusy
from impetus.core.jobs import ERROR, READY, Outcome, system_error
from impetus.storage.queue import Queue
from lambdas.api import app as api_app

pytest_plugins = ["conftest_api"]

COUNT_KEYS = {"waiting", "delayed", "running", "finished", "errors", "acked", "forked"}


def square(x):
    return x * x


def job_batch(n: int, stage: str = "stage1", **extra) -> dict:
    """An enqueue body with ``n`` jobs of one function, encoded as the client does."""
    code = codec.dump_function(square)
    key = codec.digest(code)
    jobs = [
        {"id": f"job-{i}", "name": "square", "code": key, "args": codec.dumps(i), "stage": stage}
        | extra
        for i in range(n)
    ]
    return {
        "python": codec.PYTHON_VERSION,
        "cloudpickle": codec.CLOUDPICKLE_VERSION,
        "functions": {key: code},
        "jobs": jobs,
    }


def create(api: Api, stream_id: str = "s1", **properties) -> dict:
    reply = api.post("/streams", {"id": stream_id, "properties": properties})
    assert reply.status == 201, reply.body
    return reply.body


def assert_stream_shape(body: dict) -> None:
    assert set(body) >= {"id", "properties", "counts", "created"}
    assert set(body["counts"]) == COUNT_KEYS
    assert isinstance(body["created"], (int, float))


# --- auth ---------------------------------------------------------------------------------
ROUTES = [
    ("GET", "/streams", None),
    ("POST", "/streams", {"id": "s2"}),
    ("GET", "/streams/s1", None),
    ("PATCH", "/streams/s1", {"properties": {"x": 1}}),
    ("DELETE", "/streams/s1", None),
    ("POST", "/streams/s1/jobs", job_batch(1)),
    ("GET", "/streams/s1/jobs", None),
    ("GET", "/streams/s1/jobs/job-0", None),
    ("GET", "/nodes", None),
    ("GET", "/streams/s1/results?stage=stage1", None),
    ("POST", "/streams/s1/results/ack", {"ids": ["job-0"]}),
    ("GET", "/streams/s1/store", None),
    ("PUT", "/streams/s1/store/k", {"value": 1}),
    ("DELETE", "/streams/s1/store/k", None),
    ("GET", "/openapi.json", None),
    ("GET", "/no/such/route", None),
]


def _call(api: Api, method: str, target: str, body, **kw):
    path, _, query = target.partition("?")
    return api.call(method, path, body, query=query, **kw)


def test_missing_authorization_is_401(api: Api):
    for method, target, body in ROUTES:
        reply = _call(api, method, target, body, authkey=None)
        assert (reply.status, reply.error) == (401, "unauthorized"), (method, target)
        assert reply.headers.get("WWW-Authenticate") == "Bearer"


MALFORMED = ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", f"Bearer {AUTHKEY} extra", AUTHKEY, ""]


def test_malformed_authorization_is_401(api: Api):
    for method, target, body in ROUTES:
        for header in MALFORMED:
            reply = _call(
                api, method, target, body, authkey=None, headers={"Authorization": header}
            )
            assert (reply.status, reply.error) == (401, "unauthorized"), (method, target, header)


def test_wrong_authkey_is_403(api: Api):
    for method, target, body in ROUTES:
        for key in ["wrong", AUTHKEY + "x", AUTHKEY[:-1], "ключ-не-тот"]:
            reply = _call(api, method, target, body, authkey=key)
            assert (reply.status, reply.error) == (403, "forbidden"), (method, target, key)


def test_right_authkey_is_accepted_with_any_scheme_case(api: Api):
    create(api)
    for header in (f"Bearer {AUTHKEY}", f"bearer {AUTHKEY}", f"BEARER  {AUTHKEY}  "):
        reply = api.get("/streams/s1", authkey=None, headers={"Authorization": header})
        assert reply.status == 200, header


def test_refused_auth_changes_nothing(api: Api):
    create(api)
    before = api.get("/streams").body
    assert api.post("/streams", {"id": "s2"}, authkey="wrong").status == 403
    assert api.delete("/streams/s1", authkey=None).status == 401
    assert api.post("/streams/s1/jobs", job_batch(2), authkey="nope").status == 403
    assert api.put("/streams/s1/store/k", {"value": 1}, authkey="nope").status == 403
    assert api.get("/streams").body == before
    assert api.get("/streams/s1/store").body == {"keys": [], "more": False}


def test_auth_is_checked_before_the_body(api: Api):
    reply = api.post("/streams", raw_body="{not json", authkey=None)
    assert reply.status == 401
    reply = api.post("/streams", raw_body="x" * (7 * 1024 * 1024), authkey="wrong")
    assert reply.status == 403


def test_authkey_is_fetched_once_per_ttl(api: Api, api_aws):
    assert api.get("/streams").status == 200
    # Rotate the secret: a warm container keeps the cached key until the TTL ends...
    api_aws["secretsmanager"].put_secret_value(SecretId=AUTHKEY_SECRET, SecretString="rotated")
    assert api.get("/streams").status == 200
    assert api.get("/streams", authkey="rotated").status == 403
    # ...a new container reads the new one.
    api_app.reset_state()
    assert api.get("/streams").status == 403
    assert api.get("/streams", authkey="rotated").status == 200


def test_missing_secret_is_a_500_without_details(api: Api, api_aws):
    api_aws["secretsmanager"].delete_secret(
        SecretId=AUTHKEY_SECRET, ForceDeleteWithoutRecovery=True
    )
    api_app.reset_state()
    reply = api.get("/streams")
    assert reply.status == 500
    assert reply.error == "config_error"
    assert AUTHKEY_SECRET not in reply.body["message"]


def test_authkey_and_bodies_never_logged(api: Api, caplog):
    caplog.set_level("DEBUG")
    api_app.logger.setLevel("DEBUG")
    try:
        create(api)
        api.get("/streams", authkey="wrong-key")
        api.get("/streams", headers={"Authorization": f"Token {AUTHKEY}"}, authkey=None)
        api.put("/streams/s1/store/k", {"value": "secret-value-in-body"})
        api.put("/streams/s1/store/k", raw_body='{"value": "unparsable-body"')
    finally:
        api_app.logger.setLevel("WARNING")
    # Ours at every level, anyone's at INFO and up (powertools and botocore print request
    # arguments at DEBUG, which a deployment does not enable).
    logged = "\n".join(
        str(vars(r))
        for r in caplog.records
        if r.name.startswith("impetus-api") or r.levelno >= logging.INFO
    )
    assert "'status': 200" in logged  # the request log lines are there, with their fields
    assert "'status': 403" in logged
    for secret in (AUTHKEY, "wrong-key", "secret-value-in-body", "unparsable-body"):
        assert secret not in logged


# --- streams ------------------------------------------------------------------------------
def test_create_stream_then_reuse(api: Api):
    body = create(api, "s1", owner="me", mpps=2)
    assert_stream_shape(body)
    assert body["id"] == "s1"
    assert body["properties"] == {"owner": "me", "mpps": 2}
    again = api.post("/streams", {"id": "s1", "properties": {"owner": "other"}})
    assert again.status == 200
    assert again.body["id"] == "s1"
    assert again.body["created"] == body["created"]


def test_a_body_is_required_where_a_route_takes_one(api: Api):
    reply = api.post("/streams", None)
    assert reply.status == 400 and "body" in reply.body["message"]
    assert api.get("/streams").body == {"streams": [], "more": False}


@pytest.mark.parametrize("payload", [{}, {"properties": {"a": 1}}])
def test_create_stream_without_id_generates_one(api: Api, payload):
    reply = api.post("/streams", payload)
    assert reply.status == 201, reply.body
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", reply.body["id"])
    assert api.get(f"/streams/{reply.body['id']}").status == 200


def test_base64_encoded_body_is_decoded(api: Api):
    reply = api.post("/streams", raw_body=json.dumps({"id": "b64"}), base64_body=True)
    assert reply.status == 201, reply.body
    assert reply.body["id"] == "b64"


def test_list_get_update_delete_stream(api: Api):
    create(api, "s1", a=1, b="x")
    create(api, "s2")
    listed = api.get("/streams")
    assert listed.status == 200
    assert sorted(s["id"] for s in listed.body["streams"]) == ["s1", "s2"]
    for stream in listed.body["streams"]:
        assert_stream_shape(stream)

    got = api.get("/streams/s1")
    assert got.status == 200
    assert_stream_shape(got.body)
    assert got.body["properties"] == {"a": 1, "b": "x"}

    patched = api.patch("/streams/s1", {"properties": {"a": None, "c": [1, 2]}})
    assert patched.status == 200, patched.body
    assert patched.body["properties"] == {"b": "x", "c": [1, 2]}
    assert api.get("/streams/s1").body["properties"] == {"b": "x", "c": [1, 2]}

    deleted = api.delete("/streams/s1")
    assert (deleted.status, deleted.body) == (200, {"deleted": "s1"})
    assert api.get("/streams/s1").status == 404
    assert [s["id"] for s in api.get("/streams").body["streams"]] == ["s2"]


def test_delete_stream_removes_jobs_and_store(api: Api):
    create(api)
    assert api.post("/streams/s1/jobs", job_batch(2)).status == 200
    assert api.put("/streams/s1/store/k", {"value": 1}).status == 200
    assert api.delete("/streams/s1").status == 200
    create(api)  # same id again: a fresh stream
    assert api.get("/streams/s1/jobs/job-0").status == 404
    assert api.get("/streams/s1/store").body == {"keys": [], "more": False}


# --- jobs and results -----------------------------------------------------------------------
def test_enqueue_is_idempotent_per_job_id(api: Api):
    create(api)
    first = api.post("/streams/s1/jobs", job_batch(3))
    assert first.status == 200, first.body
    assert sorted(first.body["accepted"]) == ["job-0", "job-1", "job-2"]
    assert first.body["existing"] == []
    again = api.post("/streams/s1/jobs", job_batch(4))
    assert again.body == {
        "accepted": ["job-3"],
        "existing": ["job-0", "job-1", "job-2"],
        "acked": [],
    }
    counts = api.get("/streams/s1").body["counts"]
    assert counts["forked"] == 4
    assert counts["waiting"] == 4


def test_enqueue_generates_missing_job_ids(api: Api):
    create(api)
    batch = job_batch(2)
    for job in batch["jobs"]:
        del job["id"]
    reply = api.post("/streams/s1/jobs", batch)
    assert reply.status == 200, reply.body
    assert len(set(reply.body["accepted"])) == 2
    for job_id in reply.body["accepted"]:
        assert api.get(f"/streams/s1/jobs/{job_id}").status == 200


def test_enqueue_reuses_stored_code(api: Api):
    create(api)
    assert api.post("/streams/s1/jobs", job_batch(1)).status == 200
    batch = job_batch(3)
    batch["functions"] = {}  # the digest is already stored for this stream
    reply = api.post("/streams/s1/jobs", batch)
    assert reply.status == 200, reply.body
    assert sorted(reply.body["accepted"]) == ["job-1", "job-2"]


def test_get_job(api: Api):
    create(api)
    batch = job_batch(1, priority=-5, properties={"tag": "t"})
    api.post("/streams/s1/jobs", batch)
    reply = api.get("/streams/s1/jobs/job-0")
    assert reply.status == 200, reply.body
    job = reply.body
    assert job["id"] == "job-0"
    assert job["name"] == "square"
    assert job["status"] == "waiting"
    assert job["code"] == batch["jobs"][0]["code"]
    assert job["args"] == batch["jobs"][0]["args"]
    assert job["callback"] == "stage1"
    assert job["client"] == "s1"
    assert job["priority"] == -5


def test_results_and_ack(api: Api):
    create(api)
    api.post("/streams/s1/jobs", job_batch(3))
    queue = Queue(AwsSettings.from_env())  # a node's side: claim and complete
    claim = queue.claim("s1", "node-1", max_jobs=10, lease=60)
    assert claim is not None and len(claim.jobs) == 3
    outcomes = {
        job.id: Outcome(status=READY, result=codec.dumps(square(int(job.id[-1]))))
        for job in claim.jobs
        if job.id != "job-2"
    }
    outcomes["job-2"] = Outcome(status=ERROR, error=system_error("Boom", "failed", "square"))
    queue.complete(claim, outcomes)

    reply = api.get("/streams/s1/results", query="stage=stage1")
    assert reply.status == 200, reply.body
    jobs = {job["id"]: job for job in reply.body["jobs"]}
    assert set(jobs) == {"job-0", "job-1", "job-2"}
    assert jobs["job-1"]["status"] == "ready"
    assert codec.loads(jobs["job-1"]["result"]) == 1
    assert jobs["job-2"]["status"] == "error"
    assert jobs["job-2"]["result"]["type"] == "Boom"

    limited = api.get("/streams/s1/results", query="stage=stage1&limit=1")
    assert len(limited.body["jobs"]) == 1 and limited.body["more"] is True
    assert api.get("/streams/s1/results", query="stage=stage1&limit=3").body["more"] is False
    assert api.get("/streams/s1/results", query="stage=other").body == {
        "jobs": [],
        "started": [],
        "more": False,
    }

    acked = api.post("/streams/s1/results/ack", {"ids": ["job-0", "job-2"]})
    assert acked.status == 200, acked.body
    assert acked.body == {"acked": 2}
    left = api.get("/streams/s1/results", query="stage=stage1").body["jobs"]
    assert [job["id"] for job in left] == ["job-1"]
    assert api.get("/streams/s1").body["counts"]["acked"] == 2


def test_results_show_the_jobs_started_until_they_end(api: Api):
    create(api)
    api.post("/streams/s1/jobs", job_batch(2))
    queue = Queue(AwsSettings.from_env())  # a node's side: claim, report part, complete
    claim = queue.claim("s1", "node-1", max_jobs=10, lease=60)
    done = Outcome(status=READY, result=codec.dumps(0))
    queue.report(claim, {"job-0": done}, started=["job-1"])
    reply = api.get("/streams/s1/results", query="stage=stage1")
    assert reply.status == 200, reply.body
    assert [j["id"] for j in reply.body["jobs"]] == ["job-0"]
    assert reply.body["started"] == ["job-1"]
    queue.complete(claim, {"job-1": done}, reported=["job-0"])
    reply = api.get("/streams/s1/results", query="stage=stage1")
    assert sorted(j["id"] for j in reply.body["jobs"]) == ["job-0", "job-1"]
    assert reply.body["started"] == []


# --- store ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value", [None, 0, -7, 2.5, "text", "ünïcødé", [1, "a", None], {"a": {"b": [1, 2.25]}}, True]
)
def test_store_roundtrip(api: Api, value):
    create(api)
    put = api.put("/streams/s1/store/k", {"value": value})
    assert (put.status, put.body) == (200, {"key": "k"})
    got = api.get("/streams/s1/store/k")
    assert (got.status, got.body) == (200, {"key": "k", "value": value})


def test_store_keys_overwrite_and_delete(api: Api):
    create(api)
    api.put("/streams/s1/store/a", {"value": 1})
    api.put("/streams/s1/store/b", {"value": 2})
    api.put("/streams/s1/store/a", {"value": 3})
    assert sorted(api.get("/streams/s1/store").body["keys"]) == ["a", "b"]
    assert api.get("/streams/s1/store/a").body["value"] == 3
    deleted = api.delete("/streams/s1/store/a")
    assert (deleted.status, deleted.body) == (200, {"deleted": "a"})
    assert api.get("/streams/s1/store").body == {"keys": ["b"], "more": False}
    assert api.get("/streams/s1/store/a").status == 404


def test_store_key_is_percent_decoded(api: Api):
    create(api)
    reply = api.put("/streams/s1/store/http%3A%2F%2Fsite%2Fa%20b%3Fq%3D1", {"value": "page"})
    assert reply.body == {"key": "http://site/a b?q=1"}
    assert api.get("/streams/s1/store").body == {"keys": ["http://site/a b?q=1"], "more": False}
    got = api.get("/streams/s1/store/http%3A%2F%2Fsite%2Fa%20b%3Fq%3D1")
    assert got.body == {"key": "http://site/a b?q=1", "value": "page"}


def test_store_key_of_512_chars_is_accepted(api: Api):
    create(api)
    assert api.put("/streams/s1/store/" + "k" * 512, {"value": 1}).status == 200


# --- OpenAPI --------------------------------------------------------------------------------
def test_openapi_describes_every_route(api: Api):
    reply = api.get("/openapi.json")
    assert reply.status == 200
    doc = reply.body
    assert doc["openapi"].startswith("3.")
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == {
        ("GET", "/streams"),
        ("POST", "/streams"),
        ("GET", "/streams/{stream_id}"),
        ("PATCH", "/streams/{stream_id}"),
        ("POST", "/streams/{stream_id}/payloads"),
        ("DELETE", "/streams/{stream_id}"),
        ("PUT", "/streams/{stream_id}/collector"),
        ("DELETE", "/streams/{stream_id}/collector/{holder}"),
        ("POST", "/streams/{stream_id}/jobs"),
        ("GET", "/streams/{stream_id}/jobs"),
        ("GET", "/streams/{stream_id}/jobs/{job_id}"),
        ("GET", "/nodes"),
        ("GET", "/streams/{stream_id}/results"),
        ("POST", "/streams/{stream_id}/results/ack"),
        ("POST", "/streams/{stream_id}/cancel"),
        ("GET", "/streams/{stream_id}/store"),
        ("GET", "/streams/{stream_id}/store/{key}"),
        ("PUT", "/streams/{stream_id}/store/{key}"),
        ("DELETE", "/streams/{stream_id}/store/{key}"),
    }
    assert "bearer" in doc["components"]["securitySchemes"]
    assert "Enqueue" in doc["components"]["schemas"]


def test_responses_are_api_gateway_v2_json(api: Api):
    out = api_app.handler(
        http_event("GET", "/streams", headers={"authorization": f"Bearer {AUTHKEY}"}), None
    )
    assert out["statusCode"] == 200
    assert out["headers"]["Content-Type"] == "application/json"
    assert isinstance(out["body"], str)
    assert json.loads(out["body"]) == {"streams": [], "more": False}


def test_one_queue_per_container(api: Api):
    create(api)
    first = api_app.queue()
    api.get("/streams/s1")
    assert api_app.queue() is first  # warm invocations reuse it
    api_app.reset_state()
    assert api_app.queue() is not first  # a cold start builds a new one


# --- the collector lease --------------------------------------------------------------------
HOLDER_A, HOLDER_B = "a" * 32, "b" * 32


def test_one_client_collects_a_stream_at_a_time(api: Api):
    """Two programs on one stream id each took the other's results and both hung: a
    second holder is refused (409, with when to try again) while the lease runs."""
    assert api.post("/streams", {"id": "owned"}).status == 201
    first = api.put("/streams/owned/collector", {"holder": HOLDER_A, "ttl": 30})
    assert first.status == 200 and first.body["holder"] == HOLDER_A
    busy = api.put("/streams/owned/collector", {"holder": HOLDER_B, "ttl": 30})
    assert busy.status == 409 and busy.body["error"] == "conflict"
    assert "collected by another client" in busy.body["message"]
    assert 25 <= int(busy.headers["Retry-After"]) <= 30
    renewed = api.put("/streams/owned/collector", {"holder": HOLDER_A, "ttl": 30})
    assert renewed.status == 200 and renewed.body["expires"] >= first.body["expires"]
    # Only the holder releases it; then the other one takes it.
    assert api.delete(f"/streams/owned/collector/{HOLDER_B}").body == {"released": False}
    assert api.delete(f"/streams/owned/collector/{HOLDER_A}").body == {"released": True}
    assert api.put("/streams/owned/collector", {"holder": HOLDER_B, "ttl": 30}).status == 200
    bad = api.put("/streams/owned/collector", {"holder": "not-hex", "ttl": 1})
    assert bad.status == 400
    assert api.put("/streams/nope/collector", {"holder": HOLDER_A, "ttl": 30}).status == 404


def test_an_expired_collector_lease_is_taken_over(api_aws):
    """A client that died leaves its lease to expire; a restart takes it over then."""
    queue = Queue(AwsSettings.from_env())
    queue.create_stream("restarted")
    queue.streams.collector.take("restarted", HOLDER_A, ttl=30, now=1000.0)
    with pytest.raises(CollectorBusy) as busy:
        queue.streams.collector.take("restarted", HOLDER_B, ttl=30, now=1010.0)
    assert busy.value.retry_after == pytest.approx(20.0)
    assert queue.streams.collector.take("restarted", HOLDER_B, ttl=30, now=1031.0) == 1061.0
    with pytest.raises(CollectorBusy):  # and now the old holder is the one refused
        queue.streams.collector.take("restarted", HOLDER_A, ttl=30, now=1032.0)


def test_cancel_jobs_and_stream(api: Api):
    create(api)
    api.post("/streams/s1/jobs", job_batch(4))
    queue = Queue(AwsSettings.from_env())
    claim = queue.claim("s1", "node-1", max_jobs=1, lease=60)
    assert [job.id for job in claim.jobs] == ["job-0"]
    reply = api.post("/streams/s1/cancel", {"ids": ["job-2", "job-0", "job-9"]})
    assert reply.status == 200, reply.body
    assert reply.body == {
        "cancelled": ["job-2"],
        "running_or_done": ["job-0"],
        "unknown": ["job-9"],
    }
    assert api.get("/streams/s1/jobs/job-2").body["status"] == "cancelled"
    rest = api.post("/streams/s1/cancel", {})
    assert rest.status == 200, rest.body
    assert sorted(rest.body["cancelled"]) == ["job-1", "job-3"]
    assert queue.claim("s1", "node-2", max_jobs=10, lease=60) is None
    bad = api.post("/streams/s1/cancel", {"ids": "job-1"})
    assert bad.status == 400 and bad.body["error"]
