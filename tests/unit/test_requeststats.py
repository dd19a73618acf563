"""The local moto server's request statistics (bench/profile_local.py reads them)."""

from __future__ import annotations

import io
import json

import boto3

from impetus.local.motoserver import MotoServer
from impetus.local.requeststats import ENV_MOTO_STATS, RequestStats, operation


def environ(target: str | None, body: dict | None = None, path: str = "/") -> dict:
    env = {"REQUEST_METHOD": "PUT", "PATH_INFO": path, "wsgi.input": io.BytesIO()}
    if target:
        env["HTTP_X_AMZ_TARGET"] = target
        env["wsgi.input"] = io.BytesIO(json.dumps(body or {}).encode())
    return env


def test_requests_are_named_by_operation_and_table():
    assert operation(environ("DynamoDB_20120810.UpdateItem", {"TableName": "p-queue"})) == (
        "UpdateItem queue"
    )
    items = {"RequestItems": {"p-jobs": [], "p-queue": []}}
    assert operation(environ("DynamoDB_20120810.BatchWriteItem", items)) == (
        "BatchWriteItem jobs,queue"
    )
    assert operation(environ("secretsmanager.GetSecretValue", {"SecretId": "s"})) == (
        "GetSecretValue"
    )
    assert operation(environ(None, path="/impetus-payloads/x/y")) == "PUT /impetus-payloads"


def test_the_server_counts_and_times_each_operation(tmp_path, monkeypatch):
    path = tmp_path / "stats.json"
    monkeypatch.setenv(ENV_MOTO_STATS, str(path))
    with MotoServer() as server:
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        ddb.list_tables()
        ddb.list_tables()
        server.stats.write()
    stats = json.loads(path.read_text())
    count, seconds = stats["ListTables"]
    assert count == 2 and seconds > 0


def test_off_unless_asked(monkeypatch):
    monkeypatch.delenv(ENV_MOTO_STATS, raising=False)
    assert RequestStats.from_env() is None
