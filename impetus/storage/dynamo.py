"""Small DynamoDB helpers: plain-Python items, batches within AWS's limits, paging.

AWS limits enforced here (moto is laxer): BatchWriteItem takes at most 25 requests,
BatchGetItem at most 100 keys; unprocessed items are retried with backoff.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [_from_dynamo(v) for v in value]
    return value


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def serialize_value(value: Any) -> dict[str, Any]:
    return _serializer.serialize(_to_dynamo(value))


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def deserialize_value(value: dict[str, Any]) -> Any:
    """One attribute value in DynamoDB's typed form, as a plain value."""
    return _from_dynamo(_deserializer.deserialize(value))


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments: values(a=1) -> {":a": {"N": "1"}}."""
    return {f":{k}": serialize_value(v) for k, v in named.items()}


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))


def batch_write(client: Any, table: str, puts: list[dict] = (), deletes: list[dict] = ()) -> None:
    """Put and delete plain items/keys in batches of 25, retrying unprocessed ones."""
    requests = [{"PutRequest": {"Item": serialize(i)}} for i in puts]
    requests += [{"DeleteRequest": {"Key": serialize(k)}} for k in deletes]
    for start in range(0, len(requests), BATCH_WRITE_LIMIT):
        pending = {table: requests[start : start + BATCH_WRITE_LIMIT]}
        attempt = 0
        while pending:
            answer = client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if pending:
                _backoff(attempt)
                attempt += 1


def batch_get(
    client: Any,
    table: str,
    keys: list[dict],
    consistent: bool = True,
    attributes: tuple[str, ...] = (),
) -> list[dict]:
    """Get plain items by key in batches of 100 (missing keys are simply absent);
    ``attributes`` limits what is read back."""
    found: list[dict] = []
    projection = {}
    if attributes:
        projection = {
            "ProjectionExpression": ", ".join(f"#{a}" for a in attributes),
            "ExpressionAttributeNames": {f"#{a}": a for a in attributes},
        }
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        pending = {
            table: {
                "Keys": [serialize(k) for k in keys[start : start + BATCH_GET_LIMIT]],
                "ConsistentRead": consistent,
                **projection,
            }
        }
        attempt = 0
        while pending:
            answer = client.batch_get_item(RequestItems=pending)
            found += [deserialize(i) for i in answer.get("Responses", {}).get(table, [])]
            pending = answer.get("UnprocessedKeys") or {}
            if pending:
                _backoff(attempt)
                attempt += 1
    return found


def query(client: Any, **kwargs: Any) -> Iterator[dict]:
    """Every item of a Query, page after page, as plain dicts.

    A global secondary index serves eventually consistent reads only: AWS rejects
    ``ConsistentRead`` with ``IndexName`` (ValidationException,
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html). Refused
    here before any request, so the rule holds whatever the backend (moto 5.2 rejects it
    too; a laxer fake or version would not) and the error names the index."""
    if kwargs.get("IndexName") and kwargs.get("ConsistentRead"):
        raise ValueError(
            f"ConsistentRead on the global secondary index {kwargs['IndexName']!r}: "
            "AWS serves index reads eventually consistent only"
        )
    return _pages(client, kwargs)


def _pages(client: Any, kwargs: dict[str, Any]) -> Iterator[dict]:
    while True:
        answer = client.query(**kwargs)
        for item in answer.get("Items", []):
            yield deserialize(item)
        last = answer.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def scan(client: Any, **kwargs: Any) -> Iterator[dict]:
    while True:
        answer = client.scan(**kwargs)
        for item in answer.get("Items", []):
            yield deserialize(item)
        last = answer.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def is_condition_failure(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


_NAME = re.compile(r"#(\w+)")


def names(*expressions: str, **placeholders: str) -> dict[str, str]:
    """ExpressionAttributeNames for every ``#word`` in the expressions.

    ``#word`` stands for the attribute ``word`` (so reserved words like ``cursor`` or
    ``state`` are always safe) unless a placeholder gives it another value, as for map
    keys: names("SET claims.#id = :c", id=claim_id).
    """
    found = {m for e in expressions for m in _NAME.findall(e)}
    return {f"#{n}": placeholders.get(n, n) for n in found}
