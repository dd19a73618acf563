"""The API Lambda refuses bad input with a 4xx JSON error and changes nothing.

Every case runs against a stream ``s1`` holding one job and one store key; the tables are
scanned before and after each refused request and must be identical.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import quote

import pytest
from conftest_api import AUTHKEY, TABLE_PREFIX, Api, http_event

from impetus.core import codec
from impetus.storage.tables import table_names
from lambdas.api import app as api_app

pytest_plugins = ["conftest_api"]

MB = 1024 * 1024
KB = 1024


def square(x):
    return x * x


CODE = codec.dump_function(square)
DIGEST = codec.digest(CODE)


def job(i: int = 1, **changes: Any) -> dict[str, Any]:
    spec = {"id": f"job-{i}", "name": "square", "code": DIGEST, "args": codec.dumps(i)}
    return spec | {"stage": "stage1"} | changes


def batch(*jobs: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {
        "python": codec.PYTHON_VERSION,
        "cloudpickle": codec.CLOUDPICKLE_VERSION,
        "functions": {DIGEST: CODE},
        "jobs": list(jobs),
    }
    return body | changes


def snapshot(dynamodb: Any) -> dict[str, list[str]]:
    """Every item of every Impetus table, canonically serialised."""
    out = {}
    for name in table_names(TABLE_PREFIX).values():
        items = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=name):
            items += [json.dumps(item, sort_keys=True) for item in page["Items"]]
        out[name] = sorted(items)
    return out


@pytest.fixture
def seeded(api: Api, api_aws: dict[str, Any]) -> tuple[Api, Any]:
    assert api.post("/streams", {"id": "s1", "properties": {"a": 1}}).status == 201
    assert api.post("/streams/s1/jobs", batch(job(0))).status == 200
    assert api.put("/streams/s1/store/k", {"value": 1}).status == 200
    return api, api_aws["dynamodb"]


def refuse(seeded: tuple[Api, Any], cases: list[tuple], status: int, code: str | None) -> None:
    """Each case: (method, target, body, call kwargs). All must be refused, changing nothing."""
    api, dynamodb = seeded
    before = snapshot(dynamodb)
    for method, target, body, kwargs in cases:
        path, _, query = target.partition("?")
        reply = api.call(method, path, body, query=query, **kwargs)
        where = (method, target[:80], str(body)[:120])
        assert reply.status == status, (where, reply.body)
        assert set(reply.body) == {"error", "message"}, (where, reply.body)
        if code is not None:
            assert reply.error == code, (where, reply.body)
        assert snapshot(dynamodb) == before, where


def raw(text: str | bytes, **kwargs: Any) -> dict[str, Any]:
    return {"raw_body": text, **kwargs}


# --- malformed bodies -----------------------------------------------------------------------
def test_malformed_json_is_400(seeded):
    cases = [
        ("POST", "/streams", None, raw("{bad")),
        ("POST", "/streams", None, raw("{'id': 's2'}")),
        ("PATCH", "/streams/s1", None, raw('{"properties": {"b": 1}')),
        ("POST", "/streams/s1/jobs", None, raw("[1,")),
        ("PUT", "/streams/s1/store/k", None, raw("value=2")),
        ("PUT", "/streams/s1/store/k", None, raw('{"value": NaN}')),
        ("PUT", "/streams/s1/store/k", None, raw('{"value": -Infinity}')),
        ("PUT", "/streams/s1/store/k", None, raw('{"value": 1e400}')),
        ("POST", "/streams/s1/results/ack", None, raw('{"ids": [}')),
        ("PUT", "/streams/s1/store/k", None, raw('{"value": ' + "[" * 5000 + "]" * 5000 + "}")),
        ("POST", "/streams", None, raw("   ")),
    ]
    refuse(seeded, cases, 400, "invalid_json")


def test_undecodable_bodies_are_400(seeded):
    cases = [
        ("POST", "/streams", None, raw(b'{"id": "\xff\xfe"}')),  # base64 of non-UTF-8
        ("PUT", "/streams/s1/store/k", None, raw('{"value": "\ud800"}')),  # lone surrogate
    ]
    refuse(seeded, cases, 400, "bad_request")


def test_invalid_base64_body_is_400(seeded):
    _, dynamodb = seeded
    before = snapshot(dynamodb)
    event = http_event(
        "POST", "/streams", headers={"authorization": f"Bearer {AUTHKEY}"}, body="e30=!!"
    )
    event["isBase64Encoded"] = True
    out = api_app.handler(event, None)
    assert out["statusCode"] == 400
    assert json.loads(out["body"])["error"] == "bad_request"
    assert snapshot(dynamodb) == before


def test_non_json_content_type_is_415(seeded):
    cases = [
        ("POST", "/streams", None, raw("id=s2", headers={"content-type": "text/plain"})),
        (
            "POST",
            "/streams",
            None,
            raw("id=s2", headers={"content-type": "application/x-www-form-urlencoded"}),
        ),
        ("PUT", "/streams/s1/store/k", {"value": 2}, {"headers": {"content-type": "text/json"}}),
        ("PUT", "/streams/s1/store/k", {"value": 2}, {"headers": {"content-type": "a/b+json"}}),
        ("POST", "/streams/s1/jobs", batch(job()), {"headers": {"content-type": "image/png"}}),
    ]
    refuse(seeded, cases, 415, "unsupported_media_type")


def test_json_content_type_variants_are_accepted(seeded):
    api, _ = seeded
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        reply = api.put("/streams/s1/store/k", {"value": 3}, headers={"content-type": content_type})
        assert reply.status == 200, (content_type, reply.body)


# --- types, fields, ranges ------------------------------------------------------------------
def test_wrong_types_are_400(seeded):
    bad_jobs = [
        job(priority="1"),
        job(priority=True),
        job(priority=1.5),
        job(priority=10**9 + 1),
        job(priority=-(10**9) - 1),
        job(delay="5"),
        job(delay=-1),
        job(delay=86400 * 14 + 1),
        job(delay=True),
        job(name=""),
        job(name="n" * 201),
        job(name=7),
        job(code="abc"),
        job(code=DIGEST.upper()),
        job(args=123),
        job(args="not base64!"),
        job(args=""),
        job(stage="bad stage"),
        job(stage=""),
        job(stage="s" * 101),
        job(properties=[]),
        job(properties={"x": 10**40}),
        job(properties={"x": 10**38}),
        {k: v for k, v in job().items() if k != "code"},
        {k: v for k, v in job().items() if k != "stage"},
        "job",
        None,
    ]
    cases = [("POST", "/streams", body, {}) for body in ([], "s2", 5, {"id": 5}, {"id": ""})]
    cases += [("POST", "/streams", None, raw("null"))]
    cases += [
        ("POST", "/streams", {"properties": props}, {})
        for props in ([], "x", 1, {"d": json.loads("[" * 31 + "]" * 31)}, {"big": 1e-200})
    ]
    cases += [
        ("PATCH", "/streams/s1", body, {})
        for body in ({}, {"properties": None}, {"properties": [1]}, {"properties": {}})
    ]
    cases += [("POST", "/streams/s1/jobs", batch(bad), {}) for bad in bad_jobs]
    cases += [
        ("POST", "/streams/s1/jobs", body, {})
        for body in (
            batch(job(), python=3.11),
            batch(job(), python="2.7"),
            batch(job(), python="3"),
            batch(job(), functions=[]),
            batch(job(), functions={"x" * 64: CODE}),
            batch(job(), functions={DIGEST: 5}),
            batch(job(), functions={DIGEST: codec.dumps("other")}),  # digest mismatch
            batch(job(code="0" * 64), functions={}),  # code neither sent nor stored
            {"python": "3.11", "jobs": {}},
            {"functions": {DIGEST: CODE}, "jobs": [job()]},
        )
    ]
    cases += [
        ("POST", "/streams/s1/results/ack", body, {})
        for body in ({}, {"ids": "job-0"}, {"ids": [1]}, {"ids": ["bad id"]}, {"ids": None})
    ]
    cases += [("PUT", "/streams/s1/store/k", body, {}) for body in ({}, [1], {"val": 1})]
    cases += [
        ("GET", f"/streams/s1/results{query}", None, {})
        for query in ("", "?stage=", "?stage=bad!", "?stage=s&limit=0", "?stage=s&limit=1001")
    ]
    cases += [("GET", "/streams/s1/results?stage=s&limit=abc", None, {})]
    refuse(seeded, cases, 400, None)


def test_unknown_fields_are_400(seeded):
    cases = [
        ("POST", "/streams", {"id": "s2", "extra": 1}, {}),
        ("PATCH", "/streams/s1", {"properties": {"b": 1}, "id": "s1"}, {}),
        ("POST", "/streams/s1/jobs", batch(job(callback="x")), {}),
        ("POST", "/streams/s1/jobs", batch(job(), stream="s1"), {}),
        ("POST", "/streams/s1/results/ack", {"ids": ["job-0"], "all": True}, {}),
        ("PUT", "/streams/s1/store/k", {"value": 2, "ttl": 5}, {}),
    ]
    refuse(seeded, cases, 400, "validation_error")


def test_batch_limits_are_400(seeded):
    cases = [
        ("POST", "/streams/s1/jobs", batch(), {}),  # no jobs
        ("POST", "/streams/s1/jobs", batch(*(job(i) for i in range(1001))), {}),
        ("POST", "/streams/s1/jobs", batch(job(1), job(2), job(1)), {}),  # repeated id
        ("POST", "/streams/s1/results/ack", {"ids": [f"j{i}" for i in range(1001)]}, {}),
    ]
    refuse(seeded, cases, 400, "validation_error")


def test_a_valid_batch_of_1000_is_accepted(seeded):
    api, _ = seeded
    reply = api.post("/streams/s1/jobs", batch(*(job(i) for i in range(1, 1001))))
    assert reply.status == 200, reply.body
    assert len(reply.body["accepted"]) == 1000


# --- sizes ----------------------------------------------------------------------------------
def _random_code(size: int) -> tuple[str, str]:
    code = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    return codec.digest(code), code


def test_oversized_bodies_are_413(seeded):
    huge = json.dumps({"value": "x" * (6 * MB)})
    digest, big_code = _random_code(351 * KB)
    cases = [
        ("PUT", "/streams/s1/store/k", None, raw(huge)),
        ("PUT", "/streams/s1/store/k", None, raw(huge, base64_body=True)),
        ("POST", "/streams", None, raw(huge, headers={"content-type": "text/plain"})),
        ("PUT", "/streams/s1/store/k", {"value": "v" * (351 * KB)}, {}),
        ("PUT", "/streams/s1/store/k", {"value": ["v" * 1000] * 400}, {}),
        ("POST", "/streams/s1/jobs", batch(job(args=codec.dumps(os.urandom(300 * KB)))), {}),
        ("POST", "/streams/s1/jobs", batch(job(code=digest), functions={digest: big_code}), {}),
        ("POST", "/streams", {"id": "s2", "properties": {"p": "x" * (65 * KB)}}, {}),
    ]
    refuse(seeded, cases, 413, "payload_too_large")


def test_payloads_just_under_the_limits_are_accepted(seeded):
    api, _ = seeded
    assert api.put("/streams/s1/store/big", {"value": "v" * (349 * KB)}).status == 200
    assert api.get("/streams/s1/store/big").body["value"] == "v" * (349 * KB)


def test_fewer_shards_is_409(seeded):
    api, _ = seeded
    grown = api.call("PATCH", "/streams/s1", {"properties": {"shards": 4}})
    assert grown.status == 200 and grown.body["properties"]["shards"] == 4  # shards grow
    cases = [
        ("PATCH", "/streams/s1", {"properties": {"shards": 2}}, {}),
        ("PATCH", "/streams/s1", {"properties": {"shards": None}}, {}),  # the default, 1
    ]
    refuse(seeded, cases, 409, "conflict")
    same = api.call("PATCH", "/streams/s1", {"properties": {"shards": 4}})
    assert same.status == 200  # the count it has: no change


# --- unknown things -------------------------------------------------------------------------
def test_unknown_stream_is_404(seeded):
    cases = [
        ("GET", "/streams/nope", None, {}),
        ("PATCH", "/streams/nope", {"properties": {"a": 2}}, {}),
        ("DELETE", "/streams/nope", None, {}),
        ("POST", "/streams/nope/jobs", batch(job()), {}),
        ("GET", "/streams/nope/results?stage=stage1", None, {}),
        ("POST", "/streams/nope/results/ack", {"ids": ["job-0"]}, {}),
        ("GET", "/streams/nope/store", None, {}),
        ("GET", "/streams/nope/store/k", None, {}),
        ("PUT", "/streams/nope/store/k", {"value": 1}, {}),
        ("DELETE", "/streams/nope/store/k", None, {}),
    ]
    refuse(seeded, cases, 404, "stream_not_found")


def test_unknown_job_and_key_are_404(seeded):
    refuse(seeded, [("GET", "/streams/s1/jobs/nope", None, {})], 404, "job_not_found")
    refuse(seeded, [("GET", "/streams/nope/jobs/job-0", None, {})], 404, None)
    cases = [
        ("GET", "/streams/s1/store/nope", None, {}),
        ("DELETE", "/streams/s1/store/j", None, {}),
    ]
    refuse(seeded, cases, 404, "key_not_found")


def test_unknown_route_is_404(seeded):
    cases = [
        ("GET", "/", None, {}),
        ("GET", "/stream", None, {}),
        ("GET", "/streams/", None, {}),
        ("GET", "/streams/s1/nope", None, {}),
        ("GET", "/streams/s1/jobs/job-0/extra", None, {}),
        ("PUT", "/streams/s1/store/a/b", {"value": 1}, {}),
        ("POST", "/v1/streams", {"id": "s2"}, {}),
    ]
    refuse(seeded, cases, 404, "not_found")


def test_wrong_method_is_405_with_allow(seeded):
    api, _ = seeded
    expected = {
        ("PUT", "/streams"): "GET, POST",
        ("DELETE", "/streams"): "GET, POST",
        ("POST", "/streams/s1"): "DELETE, GET, PATCH",
        ("PUT", "/streams/s1/jobs"): "GET, POST",
        ("DELETE", "/nodes"): "GET",
        ("PUT", "/streams/s1/jobs/job-0"): "GET",
        ("GET", "/streams/s1/results/ack"): "POST",
        ("POST", "/streams/s1/store"): "GET",
        ("PATCH", "/streams/s1/store/k"): "DELETE, GET, PUT",
        ("POST", "/openapi.json"): "GET",
    }
    refuse(seeded, [(m, p, {}, {}) for m, p in expected], 405, "method_not_allowed")
    for (method, path), allow in expected.items():
        assert api.call(method, path, {}).headers.get("Allow") == allow, (method, path)


# --- identifiers ----------------------------------------------------------------------------
def test_bad_ids_are_400(seeded):
    long_key = quote("k" * 513, safe="")
    wide_key = quote("€" * 400, safe="")  # 400 characters, 1200 bytes of UTF-8
    cases = [
        ("GET", "/streams/" + "s" * 101, None, {}),
        ("GET", "/streams/a%20b", None, {}),
        ("GET", "/streams/a$b", None, {}),
        ("GET", "/streams/a:b", None, {}),
        ("DELETE", "/streams/%2E%2E", None, {}),
        ("POST", "/streams", {"id": "a/b"}, {}),
        ("POST", "/streams", {"id": "s" * 101}, {}),
        ("POST", "/streams", {"id": "ünï"}, {}),
        # "." and ".." are no usable names in a path or a task folder; "-x" reads as an
        # option on the command line: a stream id starts with a letter, digit or "_"
        ("POST", "/streams", {"id": "."}, {}),
        ("POST", "/streams", {"id": ".."}, {}),
        ("POST", "/streams", {"id": "-x"}, {}),
        ("GET", "/streams/.hidden", None, {}),
        ("POST", "/streams/s1/jobs", batch(job(id="a b")), {}),
        ("POST", "/streams/s1/jobs", batch(job(id="a/b")), {}),
        ("POST", "/streams/s1/jobs", batch(job(id="j" * 201)), {}),
        ("POST", "/streams/s1/jobs", batch(job(id="")), {}),
        ("GET", "/streams/s1/jobs/" + "j" * 201, None, {}),
        ("GET", "/streams/s1/jobs/a$b", None, {}),
        ("PUT", f"/streams/s1/store/{long_key}", {"value": 1}, {}),
        ("PUT", f"/streams/s1/store/{wide_key}", {"value": 1}, {}),
        ("PUT", "/streams/s1/store/%ff", {"value": 1}, {}),
        ("GET", "/streams/s1/store/%C3", None, {}),
    ]
    refuse(seeded, cases, 400, None)


def test_errors_are_json_with_code_and_message(seeded):
    api, _ = seeded
    reply = api.post("/streams", {"id": 5})
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body["error"] == "validation_error"
    assert "id" in reply.body["message"]


def test_the_renamed_timeout_property_is_refused_with_its_new_names(seeded):
    api, dynamodb = seeded
    before = snapshot(dynamodb)
    for method, path in (("POST", "/streams"), ("PATCH", "/streams/s1")):
        body = {"properties": {"timeout": 5}} | ({"id": "s2"} if method == "POST" else {})
        reply = api.call(method, path, body)
        assert reply.status == 400, reply.body
        assert "idle_timeout" in reply.body["message"] and "time_limit" in reply.body["message"]
    assert snapshot(dynamodb) == before
    assert api.patch("/streams/s1", {"properties": {"time_limit": 2.5}}).status == 200
    assert api.call("PATCH", "/streams/s1", {"properties": {"time_limit": 0}}).status == 400
