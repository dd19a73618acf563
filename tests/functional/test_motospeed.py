"""impetus.local.motospeed answers exactly as moto does: each scenario runs on moto
in-process twice, once as released (``moto_original``) and once patched, and boto3
must return the same answers (errors included)."""

from __future__ import annotations

import importlib.metadata
import logging
import re
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from impetus.local import motospeed

TABLE = "speed"
NESTED = {
    "M": {
        "results": {
            "M": {str(i): {"M": {"s": {"S": "ready"}, "r": {"S": "x" * i}}} for i in range(20)}
        },
        "list": {"L": [{"N": "1.5"}, {"BOOL": False}, {"NULL": True}, {"SS": ["a", "bé"]}]},
        "bin": {"B": b"\x00\x01"},
        "ns": {"NS": ["1", "22.5"]},
    }
}


@pytest.fixture(autouse=True)
def _patched():
    motospeed.install()


def _ddb() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1")


def _create(ddb: Any) -> None:
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _answer(call: Any) -> Any:
    try:
        answer = call()
    except ClientError as exc:
        return ("error", exc.response["Error"]["Code"])
    answer.pop("ResponseMetadata", None)
    return answer


def _scenario(ddb: Any = None) -> list[Any]:
    ddb = ddb or _ddb()
    _create(ddb)
    for p in ("a", "b", "c"):
        for i in range(12):
            item = {"pk": {"S": p}, "sk": {"S": f"{i:03d}"}, "n": {"N": str(i)}, "doc": NESTED}
            if i % 3 == 0:
                item["g"] = {"S": f"g{p}"}
            ddb.put_item(TableName=TABLE, Item=item)
    key = {"pk": {"S": "b"}, "sk": {"S": "004"}}
    sets = ", ".join(f"#doc.#results.#r{i} = :v{i}" for i in range(20))
    names = {"#doc": "doc", "#results": "results"} | {f"#r{i}": str(i) for i in range(20)}
    values = {f":v{i}": {"M": {"s": {"S": "acked"}}} for i in range(20)}

    def update(expression: str, returns: str = "NONE", **extra: Any) -> Any:
        text = f"{expression} {extra.get('ConditionExpression', '')}"
        used = {k: v for k, v in names.items() if re.search(f"{k}\\b", text)}
        kwargs = {"ExpressionAttributeNames": used}
        if any(k in text for k in values):
            kwargs["ExpressionAttributeValues"] = {
                k: v for k, v in values.items() if re.search(f"{k}\\b", text)
            }
        kwargs.update(extra)
        return _answer(
            lambda: ddb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression=expression,
                ReturnValues=returns,
                **kwargs,
            )
        )

    query = {"TableName": TABLE, "KeyConditionExpression": "pk = :p"}
    b = {":p": {"S": "b"}}
    return [
        _answer(lambda: ddb.query(**query, ExpressionAttributeValues=b)),
        _answer(lambda: ddb.query(**query, ExpressionAttributeValues=b, Limit=5)),
        _answer(
            lambda: ddb.query(
                **query,
                ExpressionAttributeValues=b,
                ExclusiveStartKey={"pk": {"S": "b"}, "sk": {"S": "004"}},
                ScanIndexForward=False,
                Limit=4,
            )
        ),
        _answer(
            lambda: ddb.query(
                **query,
                FilterExpression="n >= :low",
                ExpressionAttributeValues=b | {":low": {"N": "7"}},
                ProjectionExpression="sk, n",
            )
        ),
        _answer(lambda: ddb.query(**query, ExpressionAttributeValues={":p": {"S": "none"}})),
        _answer(
            lambda: ddb.query(
                TableName=TABLE,
                IndexName="by-g",
                KeyConditionExpression="g = :g",
                ExpressionAttributeValues={":g": {"S": "gc"}},
            )
        ),
        update(f"SET {sets}"),
        update(f"SET {sets}", "ALL_OLD"),
        update(f"SET {sets}", "UPDATED_OLD"),
        update(f"SET {sets}", "UPDATED_NEW"),
        update(f"SET {sets.split(', ', 1)[1]} REMOVE #doc.#results.#r0", "ALL_NEW"),
        update("SET #doc.#results.#r1 = :v1 SET #doc.#results.#r2 = :v2"),  # two SET clauses
        update("SET #doc.#results.#r1 = :v1, #doc.#results = :v2"),  # overlapping paths
        update(
            "SET #doc.#results.#r1 = :v1",
            "ALL_NEW",
            ConditionExpression="attribute_exists(#doc.#results.#r1)",
        ),
        update(
            "SET #doc.#results.#r1 = :v1",
            ConditionExpression="attribute_not_exists(#doc)",
        ),
        _answer(
            lambda: ddb.update_item(
                TableName=TABLE,
                Key={"pk": {"S": "new"}, "sk": {"S": "1"}},
                UpdateExpression="SET #x = :x",
                ExpressionAttributeNames={"#x": "x"},
                ExpressionAttributeValues={":x": {"S": "created"}},
                ReturnValues="ALL_NEW",
            )
        ),
        _answer(
            lambda: ddb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET #big = :big",
                ExpressionAttributeNames={"#big": "big"},
                ExpressionAttributeValues={":big": {"S": "x" * 410_000}},
            )
        ),
        _answer(
            lambda: ddb.put_item(
                TableName=TABLE,
                Item={"pk": {"S": "z"}, "sk": {"S": "1"}, "big": {"S": "y" * 410_000}},
            )
        ),
        _answer(lambda: ddb.query(**query, ExpressionAttributeValues=b)),
        _answer(lambda: ddb.scan(TableName=TABLE, Select="COUNT")),
        # A legacy AttributeUpdates PUT of a BOOL: moto stores {"S": True} and its
        # serializer writes the string "True".
        _answer(
            lambda: ddb.update_item(
                TableName=TABLE,
                Key=key,
                AttributeUpdates={"legacy": {"Value": {"BOOL": True}, "Action": "PUT"}},
                ReturnValues="ALL_NEW",
            )
        ),
        _answer(lambda: ddb.get_item(TableName=TABLE, Key=key)),
    ]


def test_patched_moto_answers_as_moto_does():
    with mock_aws():
        patched = _scenario()
    with mock_aws(), motospeed.moto_original():
        original = _scenario()
    assert patched == original
    assert patched[1]["Count"] == 5 and "LastEvaluatedKey" in patched[1]
    assert patched[11] == ("error", "ValidationException")  # the checks still run
    assert patched[12] == ("error", "ValidationException")
    assert patched[16] == ("error", "ValidationException")  # item too large
    assert "legacy" in patched[-1]["Item"]


@pytest.mark.parametrize(
    "value",
    [
        {"S": "héllo"},
        {"N": "-12.500"},
        {"N": "100"},
        {"N": "0"},
        {"N": "-0.000120"},
        {"N": "12345678901234567890123456789012345678"},
        {"B": b"\x00\xff"},
        {"BOOL": True},
        {"NULL": True},
        {"SS": ["a", "bb"]},
        {"NS": ["1", "2.25", "1000", "0.50"]},
        {"BS": [b"x", b"yz"]},
        {"L": [{"S": "a"}, {"L": [{"N": "3"}]}]},
        NESTED,
    ],
)
def test_attribute_sizes_match_moto(value):
    with motospeed.moto_original():
        expected = DynamoType(value).size()
    assert DynamoType(value).size() == expected
    assert motospeed.attribute_size(*next(iter(value.items()))) == expected


def test_item_size_limit_is_the_same():
    key = DynamoType({"S": "k"})
    just_under = {"a": {"S": "x" * (405_000 - 1)}}
    over = {"a": {"S": "x" * 405_000}}
    for attrs in (just_under, over):
        with motospeed.moto_original():
            try:
                Item(key, None, attrs)
                refused = False
            except ItemSizeTooLarge:
                refused = True
        if refused:
            with pytest.raises(ItemSizeTooLarge):
                Item(key, None, attrs)
        else:
            assert Item(key, None, attrs).size() == len("a") + 405_000 - 1


def test_an_update_forgets_the_kept_size():
    with mock_aws():
        ddb = _ddb()
        _create(ddb)
        key = {"pk": {"S": "p"}, "sk": {"S": "1"}}
        ddb.put_item(TableName=TABLE, Item=key | {"v": {"S": "short"}})
        table = dynamodb_backends["123456789012"]["us-east-1"].get_table(TABLE)
        item = table.get_item(DynamoType(key["pk"]), DynamoType(key["sk"]))
        before = item.size()  # kept from here on
        ddb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": "much longer than before"}},
        )
        after = item.size()
        with motospeed.moto_original():
            assert after == item.size()
        assert after == before + len("much longer than before") - len("short")


def test_requests_parse_as_moto_parses_them():
    """Every request body of the scenario (binary values added), parsed plainly and by
    moto's model-walking parser."""
    from moto.core.responses import BaseResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_server.werkzeug_app import BackendRequest
    from werkzeug.test import EnvironBuilder

    bodies: list[tuple[str, bytes]] = []

    def capture(request, **_):
        bodies.append((request.headers["X-Amz-Target"].decode(), request.body))

    with mock_aws():
        ddb = _ddb()
        ddb.meta.events.register("before-send.dynamodb.*", capture)
        _scenario(ddb)
        ddb.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": "bin"},
                "sk": {"S": "1"},
                "B": {"B": b"\x00\xff"},
                "BS": {"BS": [b"a", b"\x01"]},
                "m": {"M": {"B": {"S": "not binary"}}},
            },
        )
        ddb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            FilterExpression="#b = :b",
            ExpressionAttributeNames={"#b": "B"},
            ExpressionAttributeValues={":p": {"S": "bin"}, ":b": {"B": b"\x00\xff"}},
        )
    assert len(bodies) > 40
    for target, body in bodies:
        request = BackendRequest(
            EnvironBuilder(
                method="POST",
                data=body,
                headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"},
            ).get_environ()
        )
        handler = DynamoHandler()
        handler.setup_class(request, "http://localhost/", request.headers)
        BaseResponse.parse_parameters(handler, request)  # moto's own
        assert motospeed.parse_dynamodb_request(body) == handler.params, target


def test_other_moto_releases_run_unpatched(monkeypatch, caplog):
    """The patches apply to the releases they were verified against (the lock's among
    them); any other runs moto as released, with a warning."""
    assert importlib.metadata.version("moto") in motospeed.MOTO_VERSIONS
    patched = list(motospeed.patching.patched)
    monkeypatch.setattr(motospeed, "_installed", False)
    monkeypatch.setattr(motospeed, "_active", False)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "5.2.5")
    with caplog.at_level(logging.WARNING, logger=motospeed.__name__):
        motospeed.install()
    assert "moto 5.2.5 is not" in caplog.text
    assert motospeed._active is False and motospeed.patching.patched == patched
