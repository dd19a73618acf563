"""Fixtures for the API Lambda tests: moto tables and secret, and API Gateway v2 events.

Not a conftest (the lead owns those): test modules load it with ``pytest_plugins`` and
import its helpers. PYTEST_DONT_REWRITE (it has no asserts; imported before registration).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from impetus.core import streamauth
from impetus.core.config import DEFAULT_SIGNING_SECRET
from impetus.storage.tables import create_tables

AUTHKEY = "test-authkey-0123456789abcdef"
AUTHKEY_SECRET = "test/impetus/authkey"
SIGNING_KEY = "test-signing-key-fedcba9876543210"
BUCKET = "test-payloads"
TABLE_PREFIX = "test"
REGION = "us-east-1"
BOTO_CONFIG = Config(retries={"mode": "standard"})


def http_event(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event as the $default route delivers it."""
    if isinstance(body, bytes) or (base64_body and body is not None):
        raw = body if isinstance(body, bytes) else body.encode()
        body, base64_body = base64.b64encode(raw).decode(), True
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "testapi",
            "domainName": "testapi.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "testapi",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": f"req-{now:.6f}",
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        params: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    if body is not None:
        event["body"] = body
    return event


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON (None when the body is empty)

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


AUTO = object()  # the stream key: the one this Api got when it created the stream


class Api:
    """Calls the Lambda handler the way API Gateway would.

    Like a client, it keeps the key of each stream it created (``keys``) and sends its
    token with every request on that stream, unless ``stream_key`` says otherwise (None:
    no header; a string: that key's token).
    """

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.keys: dict[str, str] = {}

    def _stream_of(self, path: str, json_body: Any) -> str | None:
        parts = path.split("?")[0].split("/")
        if len(parts) >= 3 and parts[1] == "streams":
            return parts[2]
        if path == "/streams" and isinstance(json_body, dict):
            return json_body.get("id")
        return None

    def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        query: str = "",
        raw_body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        authkey: str | None = AUTHKEY,
        base64_body: bool = False,
        stream_key: Any = AUTO,
    ) -> Reply:
        hdrs = {"content-type": "application/json"}
        if authkey is not None:
            hdrs["authorization"] = f"Bearer {authkey}"
        stream = self._stream_of(path, json_body)
        if stream_key is AUTO:
            stream_key = self.keys.get(stream or "")
        if stream_key is not None:
            hdrs[streamauth.HEADER.lower()] = streamauth.api_token(stream_key)
        hdrs.update(headers or {})
        body = raw_body if raw_body is not None else (
            None if json_body is None else json.dumps(json_body)
        )  # fmt: skip
        event = http_event(
            method, path, query=query, headers=hdrs, body=body, base64_body=base64_body
        )
        out = self.handler(event, None)
        text = out.get("body") or ""
        if out.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        parsed = json.loads(text) if text else None
        if isinstance(parsed, dict) and parsed.get("stream_key") and path == "/streams":
            self.keys[parsed["id"]] = parsed["stream_key"]
        return Reply(out["statusCode"], out.get("headers") or {}, parsed)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", path, json_body, **kw)

    def put(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.call("PUT", path, json_body, **kw)

    def patch(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.call("PATCH", path, json_body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.call("DELETE", path, **kw)


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "IMPETUS_TABLE_PREFIX": TABLE_PREFIX,
        "IMPETUS_AUTHKEY_SECRET": AUTHKEY_SECRET,
        "IMPETUS_BUCKET": BUCKET,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def api_aws(api_env: None) -> Iterator[dict[str, Any]]:
    """moto with Impetus' tables and the authkey secret; yields the boto3 clients."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION, config=BOTO_CONFIG)
        secrets = boto3.client("secretsmanager", region_name=REGION, config=BOTO_CONFIG)
        create_tables(dynamodb, TABLE_PREFIX)
        secrets.create_secret(Name=AUTHKEY_SECRET, SecretString=AUTHKEY)
        secrets.create_secret(Name=DEFAULT_SIGNING_SECRET, SecretString=SIGNING_KEY)
        s3 = boto3.client("s3", region_name=REGION, config=BOTO_CONFIG)
        s3.create_bucket(Bucket=BUCKET)
        yield {"dynamodb": dynamodb, "secretsmanager": secrets, "s3": s3}


@pytest.fixture
def api(api_aws: dict[str, Any]) -> Iterator[Api]:
    """The handler on a fresh container (no cached Queue or authkey)."""
    from lambdas.api import app as api_app

    api_app.reset_state()
    yield Api(api_app.handler)
    api_app.reset_state()
