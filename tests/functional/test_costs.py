"""The cost meter counts requests and bills units from item sizes (moto in-process)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from bench import costmeter as costs
from impetus.core import aws as impetus_aws
from impetus.core.config import AwsSettings
from impetus.storage.tables import create_tables


def test_item_size_follows_dynamodb_rules():
    assert costs.item_size({"ab": {"S": "xyz"}}) == 5
    assert costs.item_size({"n": {"N": "12345"}}) == 1 + 4  # 5 digits -> 3 + 1 bytes
    assert costs.item_size({"b": {"BOOL": True}, "z": {"NULL": True}}) == 4
    assert costs.item_size({"l": {"L": [{"S": "a"}, {"S": "b"}]}}) == 1 + 3 + 2 * 2
    assert costs.item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert costs.write_units(0, 1024) == 1 and costs.write_units(2000, 10) == 2
    assert costs.read_units(4097, True) == 2 and costs.read_units(10, False) == 0.5


@pytest.fixture
def metered(aws):
    settings = AwsSettings.from_env()
    create_tables(impetus_aws.client("dynamodb", settings), settings.table_prefix)
    meter = costs.CostMeter(impetus_aws.client("dynamodb", settings), settings.table_prefix)
    client = meter.instrument(impetus_aws.client("dynamodb", settings))
    return meter, client, f"{settings.table_prefix}-jobs"


def test_writes_and_reads_are_billed_on_item_sizes(metered):
    meter, client, table = metered
    big = {"stream": {"S": "s"}, "job": {"S": "j"}, "payload": {"S": "x" * 1500}}
    client.put_item(TableName=table, Item=big)  # ~1.5 KB: 2 WCU
    key = {"stream": {"S": "s"}, "job": {"S": "j"}}
    client.update_item(  # billed on the larger image (before): 2 WCU
        TableName=table,
        Key=key,
        UpdateExpression="REMOVE payload",
    )
    with pytest.raises(ClientError):  # a failed conditional write is billed (1 WCU)
        client.delete_item(TableName=table, Key=key, ConditionExpression="attribute_exists(nope)")
    client.get_item(TableName=table, Key=key, ConsistentRead=True, ProjectionExpression="job")
    client.batch_get_item(RequestItems={table: {"Keys": [key, {**key, "job": {"S": "none"}}]}})
    usage = meter.reset()
    assert usage.dynamodb["PutItem"].wcu == 2
    assert usage.dynamodb["UpdateItem"].wcu == 2
    assert usage.dynamodb["DeleteItem"].wcu == 1 and usage.dynamodb["DeleteItem"].requests == 1
    assert usage.dynamodb["GetItem"].rcu == 1
    assert usage.dynamodb["BatchGetItem"].rcu == 1.0  # two eventually consistent keys
    assert usage.wcu == 5 and usage.dynamodb_requests == 5


def test_query_is_billed_on_evaluated_items_and_batches_per_item(metered):
    meter, client, table = metered
    items = [
        {
            "PutRequest": {
                "Item": {"stream": {"S": "q"}, "job": {"S": f"{i}"}, "v": {"S": "y" * 900}}
            }
        }
        for i in range(10)
    ]
    client.batch_write_item(RequestItems={table: items})
    client.query(  # evaluates ~9.3 KB although the filter returns nothing: 3 RCU
        TableName=table,
        KeyConditionExpression="#s = :s",
        FilterExpression="attribute_exists(nope)",
        ExpressionAttributeNames={"#s": "stream"},
        ExpressionAttributeValues={":s": {"S": "q"}},
        ConsistentRead=True,
    )
    usage = meter.reset()
    assert usage.dynamodb["BatchWriteItem"].wcu == 10 and usage.dynamodb_requests == 2
    assert usage.dynamodb["Query"].rcu == 3
    dollars = usage.dollars()
    assert dollars["dynamodb"] == pytest.approx(10 * 0.625e-6 + 3 * 0.125e-6)
    assert costs.sqs_dollars_per_million() == pytest.approx(1.20)
