"""The per-stream key-value store: JSON values, one item per key."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from impetus.core.exceptions import InvalidRequest, KeyNotFound
from impetus.core.jobs import MAX_PAYLOAD_BYTES as MAX_VALUE_BYTES
from impetus.core.keys import check_store_key
from impetus.storage import dynamo


class Store:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def _key(self, stream_id: str, key: str) -> dict[str, Any]:
        return dynamo.serialize({"stream": stream_id, "key": check_store_key(key)})

    def get(self, stream_id: str, key: str) -> Any:
        answer = self.client.get_item(
            TableName=self.table, Key=self._key(stream_id, key), ConsistentRead=True
        )
        if "Item" not in answer:
            raise KeyNotFound(f"no key {key!r} in the store of {stream_id!r}")
        return json.loads(dynamo.deserialize(answer["Item"])["value"])

    def put(self, stream_id: str, key: str, value: Any, only_new: bool = False) -> None:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"store values must be JSON: {exc}") from exc
        if len(text.encode()) > MAX_VALUE_BYTES:
            raise InvalidRequest("store value is larger than 350 KB")
        item = {"stream": stream_id, "key": check_store_key(key), "value": text}
        condition = {}
        if only_new:
            condition = {
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": "key"},
            }
        self.client.put_item(TableName=self.table, Item=dynamo.serialize(item), **condition)

    def add(self, stream_id: str, key: str, value: Any) -> bool:
        """Put only if the key is new (conditional write); True when this call stored it."""
        try:
            self.put(stream_id, key, value, only_new=True)
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        return True

    def delete(self, stream_id: str, key: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=self._key(stream_id, key),
                ConditionExpression="attribute_exists(#k)",
                ExpressionAttributeNames={"#k": "key"},
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                raise KeyNotFound(f"no key {key!r} in the store of {stream_id!r}") from exc
            raise

    def keys(self, stream_id: str) -> list[str]:
        items = dynamo.query(
            self.client,
            TableName=self.table,
            KeyConditionExpression="#stream = :s",
            ExpressionAttributeValues=dynamo.values(s=stream_id),
            ProjectionExpression="#k",
            ExpressionAttributeNames={"#k": "key", "#stream": "stream"},
        )
        return [i["key"] for i in items]

    def purge(self, stream_id: str) -> None:
        keys = [{"stream": stream_id, "key": k} for k in self.keys(stream_id)]
        dynamo.batch_write(self.client, self.table, deletes=keys)
