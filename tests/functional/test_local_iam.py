"""The local moto server enforces IAM, with one identity per component (issue 15).

One moto server process per module, started as the local stack starts it
(``python -m impetus.local.motoserver --admin-credentials ...``), provisioned with the
admin's key, with the component users the stack creates. Each test calls it as one
identity and checks what moto allows and refuses.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from impetus.core.config import AwsSettings
from impetus.core.grants import Component, Res, actions
from impetus.local import credentials, iam
from impetus.local.provision import client, local_settings, provision, provision_node_group
from impetus.storage.tables import table_names

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Stack:
    def __init__(
        self, settings: AwsSettings, authkey: str, arns: dict[Res, list[str]], stats: Path
    ) -> None:
        self.settings = settings
        self.authkey = authkey
        self.arns = arns
        self.stats = stats

    def client(self, service: str, identity: str) -> Any:
        return client(service, self.settings, credentials.session(identity, self.settings.region))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("home")
    previous = os.environ.get("IMPETUS_HOME")
    os.environ["IMPETUS_HOME"] = str(home)
    admin_file = credentials.credentials_path(credentials.ADMIN)
    stats = home / "moto-stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "impetus.local.motoserver", "--admin-credentials", str(admin_file)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, IMPETUS_MOTO_STATS=str(stats)),  # the request meter
    )
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        settings = local_settings(f"http://127.0.0.1:{port}", "iamtest")
        admin = credentials.session(credentials.ADMIN, settings.region)
        resources = provision(settings, admin)
        provision_node_group(settings, 2, admin)
        arns = iam.local_arns(settings, resources.secret_arns)
        iam.create_component_users(client("iam", settings, admin), arns)
        yield Stack(settings, resources.authkey, arns, stats)
    finally:
        proc.terminate()
        proc.wait(10)
        if previous is None:
            os.environ.pop("IMPETUS_HOME", None)
        else:
            os.environ["IMPETUS_HOME"] = previous


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def _denied(exc: pytest.ExceptionInfo[ClientError]) -> bool:
    """moto's refusal for the identity: 403 naming AccessDenied (JSON services get it in
    an XML body, so botocore's parsed code is just "403")."""
    status = exc.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return status == 403 and "AccessDenied" in str(exc.value)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with NO_PROXY.open(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- who may call at all ------------------------------------------------------------------------
def test_credentials_files_are_private(stack: Stack) -> None:
    directory = credentials.credentials_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert files == sorted(["admin", *(c.value for c in Component)])
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert credentials.read(path.name).access_key_id.startswith("AKIA")


def test_made_up_sigv4_request_is_refused(stack: Stack) -> None:
    """The reported attack: a SigV4 header with a made-up key, GetSecretValue."""
    made_up = boto3.session.Session(
        aws_access_key_id="AKIAMADEUPMADEUPMADE",
        aws_secret_access_key="x" * 40,
        region_name=stack.settings.region,
    )
    sm = client("secretsmanager", stack.settings, made_up)
    with pytest.raises(ClientError) as refused:
        sm.get_secret_value(SecretId=stack.settings.authkey_secret)
    assert exc_status(refused) == 403
    assert _code(refused) == "UnrecognizedClientException" or "InvalidClientTokenId" in str(
        refused.value
    )


def exc_status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_the_curl_request_of_the_report_is_refused(stack: Stack) -> None:
    status, body = _post(
        stack.settings.endpoint_url or "",
        json.dumps({"SecretId": stack.settings.authkey_secret}).encode(),
        {
            "X-Amz-Target": "secretsmanager.GetSecretValue",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAFAKE/20240101/us-east-1/"
            "secretsmanager/aws4_request, SignedHeaders=host, Signature=abc",
            "X-Amz-Date": "20240101T000000Z",
        },
    )
    assert status == 403
    assert stack.authkey.encode() not in body


def test_unsigned_requests_and_the_moto_control_api_are_refused(stack: Stack) -> None:
    base = stack.settings.endpoint_url or ""
    target = {"X-Amz-Target": "secretsmanager.GetSecretValue"}
    body = json.dumps({"SecretId": stack.settings.authkey_secret}).encode()
    assert _post(base, body, target)[0] == 403
    for path in ("/moto-api/reset-auth", "/moto-api/reset", "/moto-api/data.json"):
        status, answer = _post(base + path, b"inf", {})
        assert status == 403, path
        assert stack.authkey.encode() not in answer
    # still enforcing after those attempts: the admin works, a made-up key does not
    assert stack.client("dynamodb", "admin").list_tables()["TableNames"]
    with pytest.raises(ClientError):
        client("dynamodb", stack.settings).list_tables()  # FAKE_CREDENTIALS


# --- least privilege ------------------------------------------------------------------------------
def test_node_reads_the_signing_key_but_not_the_authkey(stack: Stack) -> None:
    sm = stack.client("secretsmanager", "node")
    assert sm.get_secret_value(SecretId=stack.settings.signing_secret)["SecretString"]
    for secret_id in (stack.settings.authkey_secret, stack.arns[Res.AUTHKEY_SECRET][0]):
        with pytest.raises(ClientError) as refused:
            sm.get_secret_value(SecretId=secret_id)
        assert _denied(refused), refused.value


def test_api_reads_the_authkey(stack: Stack) -> None:
    sm = stack.client("secretsmanager", "api")
    value = sm.get_secret_value(SecretId=stack.settings.authkey_secret)["SecretString"]
    assert value == stack.authkey


def test_node_cannot_delete_or_create_tables(stack: Stack) -> None:
    ddb = stack.client("dynamodb", "node")
    table = table_names(stack.settings.table_prefix)["queue"]
    ddb.scan(TableName=table, Limit=1)  # its data-plane actions work
    with pytest.raises(ClientError) as refused:
        ddb.delete_table(TableName=table)
    assert _denied(refused), refused.value
    assert table in stack.client("dynamodb", "admin").list_tables()["TableNames"]


def test_components_cannot_touch_iam_or_other_services(stack: Stack) -> None:
    for identity in ("api", "dfs", "node"):
        with pytest.raises(ClientError):
            stack.client("iam", identity).create_user(UserName=f"intruder-{identity}")
        with pytest.raises(ClientError):
            stack.client("secretsmanager", identity).list_secrets()


def test_node_writes_payload_objects_only(stack: Stack) -> None:
    s3 = stack.client("s3", "node")
    bucket = stack.settings.bucket
    s3.put_object(Bucket=bucket, Key="payloads/s1/results/r1", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="payloads/s1/results/r1")["Body"].read() == b"x"
    with pytest.raises(ClientError):
        s3.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")
    with pytest.raises(ClientError):
        s3.list_objects_v2(Bucket=bucket, Prefix="payloads/")  # the API lists, nodes do not


def test_api_lists_and_deletes_a_streams_payloads(stack: Stack) -> None:
    from impetus.storage.payloads import Payloads

    payloads = Payloads(stack.settings, stack.client("s3", "api"))
    payloads.put("payloads/s2/args/a1", "data")
    assert payloads.exists("payloads/s2/args/a1")
    assert not payloads.exists("payloads/s2/args/missing")
    assert payloads.delete_stream("s2") == 1


def test_dfs_scales_and_publishes_but_cannot_read_secrets(stack: Stack) -> None:
    from impetus.local.provision import node_group_name
    from impetus.scaler.metrics import publish

    asg = stack.client("autoscaling", "dfs")
    group = node_group_name(stack.settings.table_prefix)
    asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=0)
    publish(stack.client("cloudwatch", "dfs"), [{"MetricName": "WaitingJobs", "Value": 1.0}])
    with pytest.raises(ClientError):
        stack.client("secretsmanager", "dfs").get_secret_value(
            SecretId=stack.settings.signing_secret
        )
    with pytest.raises(ClientError):
        stack.client("cloudwatch", "node").put_metric_data(
            Namespace="Impetus", MetricData=[{"MetricName": "X", "Value": 1.0}]
        )


# --- presigned URLs -------------------------------------------------------------------------------
@pytest.mark.parametrize("signature_version", ["s3", "s3v4"])
def test_presigned_urls_are_checked(stack: Stack, signature_version: str) -> None:
    from botocore.config import Config

    session = credentials.session("api", stack.settings.region)
    s3 = session.client(
        "s3",
        endpoint_url=stack.settings.endpoint_url,
        config=Config(signature_version=signature_version),
    )
    bucket, key = stack.settings.bucket, f"payloads/s3/args/{signature_version}"
    put = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": key, "ContentType": "application/octet-stream"},
        ExpiresIn=60,
    )
    headers = {"Content-Type": "application/octet-stream"}
    request = urllib.request.Request(put, data=b"payload", headers=headers, method="PUT")
    with NO_PROXY.open(request, timeout=10) as answer:
        assert answer.status == 200
    get = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    with NO_PROXY.open(get, timeout=10) as answer:
        assert answer.read() == b"payload"
    for bad in (get.replace("Signature=", "Signature=A"), get.replace(key, key + "x")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            NO_PROXY.open(bad, timeout=10)
        assert refused.value.code == 403
    expired = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1
    )
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as refused:
        NO_PROXY.open(expired, timeout=10)
    assert refused.value.code == 403


def test_presigned_url_of_a_key_outside_the_grant_is_refused(stack: Stack) -> None:
    s3 = stack.client("s3", "node")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "other", "Key": "x"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        NO_PROXY.open(url, timeout=10)
    assert refused.value.code in (403, 404)


# --- one source for both renderers --------------------------------------------------------------
def test_each_users_policy_in_moto_has_its_components_granted_actions(stack: Stack) -> None:
    """What moto holds is the rendering of impetus.core.grants (tests/infra compares the
    same rendering with the synthesized roles)."""
    users = stack.client("iam", "admin")
    aliases = {a.action for a in iam.MOTO_ALIASES}
    for component in Component:
        document = users.get_user_policy(
            UserName=iam.user_name(component), PolicyName=iam.POLICY_NAME
        )["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        local = {a for s in document["Statement"] for a in s["Action"]}
        assert local - aliases == {iam.moto_name(a) for a in actions(component)}, component


def test_request_meter_counts_authenticated_requests(stack: Stack) -> None:
    """The DynamoDB lane (impetus.local.motospeed) authenticates too, and the meter
    (impetus.local.requeststats) still counts requests (moto's refusals included: only
    unsigned ones are turned away before it)."""
    ddb = stack.client("dynamodb", "node")
    table = table_names(stack.settings.table_prefix)["nodes"]
    for _ in range(3):
        ddb.scan(TableName=table, Limit=1)
    with pytest.raises(ClientError):
        client("dynamodb", stack.settings).scan(TableName=table, Limit=1)  # made-up key

    def counted() -> int:
        try:
            return json.loads(stack.stats.read_text()).get("Scan nodes", [0])[0]
        except (FileNotFoundError, ValueError):
            return 0

    deadline = time.monotonic() + 5
    while counted() < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counted() >= 3
