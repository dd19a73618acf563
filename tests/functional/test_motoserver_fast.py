"""The local moto server's fast DynamoDB answers parse exactly like moto's own ones.

The same requests go to the serialised moto server (fast json.dumps path, keep-alive
connections, the DynamoDB lane and impetus.local.motospeed's patches) and to moto
in-process as released (moto's generic serializer); boto3 must return the same answers.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from impetus.local import motospeed
from impetus.local.motoserver import MotoServer

TABLE = "fast-check"
ITEM = {
    "pk": {"S": "p"},
    "sk": {"S": "1"},
    "n": {"N": "12.50"},
    "b": {"B": b"\x00\xffbytes"},
    "flag": {"BOOL": True},
    "none": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2"]},
    "bs": {"BS": [b"x", b"y"]},
    "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "3"}, {"M": {}}]}}},
}


def _client(endpoint: str | None) -> Any:
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard"}),
    )


def _exercise(ddb: Any) -> list[Any]:
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"pk": {"S": "p"}, "sk": {"S": "1"}}
    answers = [
        ddb.put_item(TableName=TABLE, Item=ITEM, ReturnValues="ALL_OLD"),
        ddb.put_item(TableName=TABLE, Item=ITEM, ReturnValues="ALL_OLD"),
        ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True),
        ddb.get_item(TableName=TABLE, Key={"pk": {"S": "none"}, "sk": {"S": "0"}}),
        ddb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET #c = :c ADD #n :one",
            ExpressionAttributeNames={"#c": "c", "#n": "n"},
            ExpressionAttributeValues={":c": {"M": {"k": {"S": "v"}}}, ":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        ),
        ddb.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": {"pk": {"S": "p"}, "sk": {"S": str(i)}}}}
                    for i in range(2, 6)
                ]
            }
        ),
        ddb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p"}},
            Limit=3,
        ),
        ddb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ProjectionExpression="sk, m.inner",
            FilterExpression="attribute_exists(b)",
            ExpressionAttributeValues={":p": {"S": "p"}},
            ConsistentRead=True,
        ),
        ddb.query(
            TableName=TABLE,
            KeyConditionExpression="#p = :p",
            ProjectionExpression="#p, sk, n, b, absent, m",
            ExpressionAttributeNames={"#p": "pk"},
            ExpressionAttributeValues={":p": {"S": "p"}},
        ),
        ddb.scan(TableName=TABLE, Select="COUNT"),
        ddb.scan(TableName=TABLE, ProjectionExpression="sk, ss"),
        ddb.batch_get_item(
            RequestItems={TABLE: {"Keys": [key, {"pk": {"S": "p"}, "sk": {"S": "9"}}]}}
        ),
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t"}, "sk": {"S": "1"}}}},
                {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "p"}, "sk": {"S": "2"}}}},
            ]
        ),
        ddb.transact_get_items(TransactItems=[{"Get": {"TableName": TABLE, "Key": key}}]),
        ddb.delete_item(TableName=TABLE, Key=key, ReturnValues="ALL_OLD"),
    ]
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as failed:
        ddb.delete_item(TableName=TABLE, Key=key, ConditionExpression="attribute_exists(pk)")
    answers.append(failed.value.response["Error"]["Code"])
    for answer in answers:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    return answers


def _canonical(value: Any) -> Any:
    """Sets (SS, NS, BS) have no order: compare them sorted."""
    if isinstance(value, dict):
        return {
            k: sorted(v) if k in ("SS", "NS", "BS") else _canonical(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def test_fast_answers_equal_the_generic_serializer(monkeypatch):
    calls = []
    real = motospeed.wire.fast_dynamodb_result  # the name the patched answer path calls

    def spy(result, context):
        answer = real(result, context)
        calls.append(answer is not None)
        return answer

    with MotoServer() as server:
        monkeypatch.setattr(motospeed.wire, "fast_dynamodb_result", spy)
        fast = _exercise(_client(server.endpoint_url))
        monkeypatch.undo()
    assert sum(calls) >= 10  # the item answers took the fast path
    with mock_aws(), motospeed.moto_original():  # moto as released, in this process
        generic = _exercise(_client(None))
    assert _canonical(fast) == _canonical(generic)
    assert fast[2]["Item"]["b"] == {"B": b"\x00\xffbytes"}
    assert fast[-1] == "ConditionalCheckFailedException"
    assert float(fast[8]["Items"][0]["n"]["N"]) == 13.5 and "absent" not in fast[8]["Items"][0]
