"""Records are read eventually consistent at claim and collection; the ones that read
back missing (written a moment ago) are read again, consistently. DynamoDB's answers
are stubbed (botocore Stubber): moto is always consistent, so it cannot show a miss."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from impetus.storage import dynamo
from impetus.storage.jobqueue.items import QueueItems


def _request(ids: list[str], consistent: bool) -> dict:
    return {
        "RequestItems": {
            "jobs": {
                "Keys": [dynamo.serialize({"stream": "s", "job": i}) for i in ids],
                "ConsistentRead": consistent,
            }
        }
    }


def _answer(ids: list[str]) -> dict:
    items = [dynamo.serialize({"stream": "s", "job": i, "name": f"n-{i}"}) for i in ids]
    return {"Responses": {"jobs": items}}


def _items(client) -> QueueItems:
    return QueueItems(client, {"jobs": "jobs", "queue": "queue"}, streams=None)


def test_a_record_missing_from_the_eventual_read_is_read_consistently():
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("batch_get_item", _answer(["a", "c"]), _request(["a", "b", "c"], False))
        stub.add_response("batch_get_item", _answer(["b"]), _request(["b"], True))
        found = _items(client).written_records("s", ["a", "b", "c"])
        stub.assert_no_pending_responses()
    assert {k: v["name"] for k, v in found.items()} == {"a": "n-a", "b": "n-b", "c": "n-c"}


def test_nothing_missing_means_one_eventual_read():
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("batch_get_item", _answer(["a"]), _request(["a"], False))
        assert set(_items(client).written_records("s", ["a"])) == {"a"}
        stub.assert_no_pending_responses()
