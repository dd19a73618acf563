"""The collector lease on a stream item: one client collects a stream at a time.

Two programs on one stream id each took the other's results (525 task-file lines for 400
jobs) and both hung. The holder renews its lease; a client that died leaves it to expire,
and a restart takes it over. The lease is an attribute of the stream item
(:class:`impetus.storage.streams.Streams` owns the table and composes this).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from impetus.core.exceptions import CollectorBusy
from impetus.storage import dynamo


class CollectorLease:
    """``get_item`` reads a stream item (StreamNotFound when it is gone); ``active``:
    the status a stream must have to be collected."""

    def __init__(
        self, client: Any, table: str, active: str, get_item: Callable[[str], dict[str, Any]]
    ) -> None:
        self.client = client
        self.table = table
        self.active = active
        self._get_item = get_item

    def take(self, stream_id: str, holder: str, ttl: float, now: float | None = None) -> float:
        """Take or renew the lease for ``holder``; returns its expiry (epoch seconds).
        CollectorBusy while another holder's lease runs."""
        now = time.time() if now is None else now
        expires = now + ttl
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize({"stream": stream_id}),
                UpdateExpression="SET #c = :lease",
                ConditionExpression="attribute_exists(#stream) AND #s = :active AND ("
                "attribute_not_exists(#c) OR #c.#holder = :holder OR #c.#expires < :now)",
                ExpressionAttributeNames={
                    "#c": "collector",
                    "#stream": "stream",
                    "#s": "status",
                    "#holder": "holder",
                    "#expires": "expires",
                },
                ExpressionAttributeValues=dynamo.values(
                    lease={"holder": holder, "expires": Decimal(str(expires))},
                    holder=holder,
                    now=Decimal(str(now)),
                    active=self.active,
                ),
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise
            lease = self._get_item(stream_id).get("collector") or {}  # StreamNotFound if gone
            left = max(0.0, float(lease.get("expires", now)) - now)
            raise CollectorBusy(
                f"stream {stream_id!r} is being collected by another client (its lease "
                f"expires in {left:.0f} s unless renewed): one client collects a stream",
                retry_after=left,
            ) from None
        return expires

    def release(self, stream_id: str, holder: str) -> bool:
        """Give the lease up (a clean exit); False when ``holder`` did not hold it."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize({"stream": stream_id}),
                UpdateExpression="REMOVE #c",
                ConditionExpression="#c.#holder = :holder",
                ExpressionAttributeNames={"#c": "collector", "#holder": "holder"},
                ExpressionAttributeValues=dynamo.values(holder=holder),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return False
            raise
        return True
