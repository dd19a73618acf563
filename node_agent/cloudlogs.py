"""Shipping jobs' captured output to CloudWatch Logs (on AWS), besides the result record.

Enabled when ``IMPETUS_LOG_GROUP`` names a log group (the deployment sets it for nodes;
the local stack does not). The agent ships for its workers (they hold no credentials):
each worker's jobs go to the log stream ``<impetus stream id>/<host>-<worker pid>``, one
event per job and kind (``<job id> stdout: ...``), sent once per batch of jobs, when the
worker reports idle: one PutLogEvents request per batch, not per job. AWS's limits are kept
here (moto does not enforce them): at most 10,000 events and 1,048,576 bytes per
request (message bytes + 26 each), events of at most 256 KB, in time order. Shipping
never fails a job: errors are logged to the node's log and the events dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from impetus.core.config import ENV_LOG_GROUP

log = logging.getLogger(__name__)

MAX_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD
KINDS = ("stdout", "stderr", "log")


@dataclass(frozen=True)
class CloudLogSettings:
    log_group: str | None = None

    @classmethod
    def from_env(cls) -> CloudLogSettings:
        return cls(log_group=os.environ.get(ENV_LOG_GROUP) or None)


def events(job_id: str, output: dict[str, Any] | None, when_ms: int) -> list[dict[str, Any]]:
    """One event per non-empty kind of a job's output."""
    found = []
    for kind in KINDS:
        text = (output or {}).get(kind)
        if isinstance(text, str) and text:
            message = f"{job_id} {kind}: {text.rstrip()}"
            data = message.encode("utf-8")
            if len(data) > MAX_EVENT_BYTES:
                message = data[:MAX_EVENT_BYTES].decode("utf-8", "ignore")
            found.append({"timestamp": when_ms, "message": message})
    return found


def batches(pending: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Events in time order, split into requests within PutLogEvents' limits."""
    batch: list[dict[str, Any]] = []
    size = 0
    for event in sorted(pending, key=lambda e: e["timestamp"]):
        cost = len(event["message"].encode("utf-8")) + EVENT_OVERHEAD
        if batch and (len(batch) >= MAX_EVENTS or size + cost > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += cost
    if batch:
        yield batch


class LogShipper:
    """Gathers one worker's events and sends them to its log stream."""

    def __init__(self, group: str, client: Any = None, label: str = "") -> None:
        self.group = group
        self.label = label or str(os.getpid())  # the worker's pid
        self._client = client
        self._pending: list[dict[str, Any]] = []
        self._stream: str | None = None
        self._created: set[str] = set()

    def add(self, stream_id: str, job_id: str, output: dict[str, Any] | None, when: float) -> None:
        if not output:
            return
        if self._stream not in (None, stream_id):
            self.flush()  # a worker serves one stream; be safe if that ever changes
        self._stream = stream_id
        self._pending += events(job_id, output, int(when * 1000))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending or self._stream is None:
            return
        name = f"{self._stream}/{socket.gethostname()}-{self.label}"
        try:
            client = self._client_or_new()
            self._ensure_stream(client, name)
            for batch in batches(pending):
                client.put_log_events(logGroupName=self.group, logStreamName=name, logEvents=batch)
        except Exception as exc:  # never fail jobs over their logs
            log.warning("CloudWatch Logs: dropped %d events: %s", len(pending), exc)

    def _client_or_new(self) -> Any:
        if self._client is None:
            from impetus.core import aws

            self._client = aws.client("logs")
        return self._client

    def _ensure_stream(self, client: Any, name: str) -> None:
        if name in self._created:
            return
        with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
            client.create_log_stream(logGroupName=self.group, logStreamName=name)
        self._created.add(name)


class _Off:
    def add(self, *args: Any) -> None:
        pass

    def flush(self) -> None:
        pass


def shipper(settings: CloudLogSettings | None = None, label: str = "") -> LogShipper | _Off:
    """A worker's shipper: a no-op unless a log group is configured."""
    settings = settings or CloudLogSettings.from_env()
    return LogShipper(settings.log_group, label=label) if settings.log_group else _Off()


def shipper_for(label: str) -> LogShipper | _Off:
    """The shipper of the worker ``label`` (its pid), configured from the environment."""
    return shipper(label=label)
