"""Messages between the agent and its workers: length-prefixed JSON frames on two pipes.

A worker runs untrusted code, so the agent treats what a worker sends as data only: one
JSON object per frame (``multiprocessing.connection``'s length prefix), at most
:data:`MAX_REPORT_BYTES`, of one of the shapes below, checked by :func:`parse_report`.
Anything else raises :class:`Malformed`; the agent then kills the worker and charges the
job it was running (node_agent/pool.py). Nothing a worker sends is ever unpickled.

agent -> worker::

    {"type": "batch", "jobs": [ClaimedJob as dict], "frequency": seconds}
    {"type": "reply", "id": n, "ok": true, "value": ...}  or  {"ok": false, "error": "..."}
    {"type": "stop"}
    {"type": "shed", "jobs": [id, ...]}          taken back: never start these

worker -> agent::

    {"type": "started", "job": id}               a job of its batch begins
    {"type": "outcome", "job": id, "outcome": {...Outcome fields...}}
    {"type": "idle"}                             its oldest batch is done
    {"type": "request", "id": n, "kind": "store" | "args_url" | "result_url", ...}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from typing import Any

from impetus.core.jobs import CRASH, ERROR, EXCEPTION, READY, Outcome
from impetus.storage.payloads import INLINE_RESULT_LIMIT

# An outcome carries at most an inline result (350 KB, base64 text), three 64 KiB output
# tails and an error record with its traceback; 4 MiB leaves room without letting a
# worker make the agent buffer much.
MAX_REPORT_BYTES = 4 * 1024 * 1024
MAX_ID_CHARS = 200
REQUEST_KINDS = ("store", "args_url", "result_url")
STORE_OPS = ("get", "put", "add", "delete", "keys")
_OUTCOME_FIELDS = {f.name for f in fields(Outcome)}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Malformed(Exception):
    """A worker sent something that is not a report it may send."""


@dataclass(frozen=True)
class Report:
    """One checked message from a worker."""

    type: str  # started | outcome | idle | request
    job: str = ""
    outcome: Outcome | None = None
    request_id: int = 0
    kind: str = ""
    body: dict[str, Any] | None = None  # the request's other fields


def send(conn: Connection, message: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(message, separators=(",", ":")).encode())


def receive(conn: Connection, limit: int | None = None) -> dict[str, Any]:
    """One frame as a JSON object; Malformed if it is too long or not an object.

    EOFError when the other end closed the pipe."""
    try:
        data = conn.recv_bytes(limit)
    except OSError as exc:  # "bad message length": the frame exceeds the limit
        raise Malformed(f"unreadable frame: {exc}") from exc
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not JSON: {str(exc)[:200]}") from exc
    if not isinstance(message, dict):
        raise Malformed(f"a frame must hold a JSON object, got {type(message).__name__}")
    return message


def parse_report(message: dict[str, Any]) -> Report:
    """Check one worker message's shape; raise Malformed when it has none we know."""
    kind = message.get("type")
    if kind == "idle":
        return Report("idle")
    if kind == "started":
        return Report("started", job=_job_id(message))
    if kind == "outcome":
        return Report("outcome", job=_job_id(message), outcome=_outcome(message.get("outcome")))
    if kind == "request":
        return _request(message)
    raise Malformed(f"unknown message type {str(kind)[:40]!r}")


def _job_id(message: dict[str, Any]) -> str:
    job = message.get("job")
    if not isinstance(job, str) or not job or len(job) > MAX_ID_CHARS:
        raise Malformed("a report must name a job id")
    return job


def _outcome(raw: Any) -> Outcome:
    if not isinstance(raw, dict) or not set(raw) <= _OUTCOME_FIELDS:
        raise Malformed("an outcome must be an object of Outcome's fields")
    try:
        outcome = Outcome(**raw)
    except TypeError as exc:
        raise Malformed(f"bad outcome: {exc}") from exc
    _check_outcome(outcome)
    return outcome


def _check_outcome(outcome: Outcome) -> None:
    if outcome.status not in (READY, ERROR):
        raise Malformed(f"bad outcome status {str(outcome.status)[:20]!r}")
    if outcome.failure not in ("", EXCEPTION, CRASH):
        raise Malformed("bad outcome failure")
    checks = (
        (outcome.result, str, INLINE_RESULT_LIMIT),
        (outcome.result_ref, str, 1024),
        (outcome.error, dict, None),
        (outcome.output, dict, None),
    )
    for value, kind, limit in checks:
        if value is not None and not isinstance(value, kind):
            raise Malformed(f"bad outcome field type {type(value).__name__}")
        if limit is not None and value is not None and len(value) > limit:
            raise Malformed("outcome field over its size limit")
    for stamp in (outcome.started, outcome.finished):
        if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
            raise Malformed("outcome times must be numbers")
    digest = outcome.result_digest
    if not isinstance(digest, str) or (digest and not _HEX64.match(digest)):
        raise Malformed("a result digest is 64 hex digits")
    if outcome.status == READY and (outcome.result is None) == (outcome.result_ref is None):
        raise Malformed("a ready outcome carries a result or a result reference")


def _request(message: dict[str, Any]) -> Report:
    number, kind = message.get("id"), message.get("kind")
    if not isinstance(number, int) or isinstance(number, bool):
        raise Malformed("a request needs an integer id")
    if kind not in REQUEST_KINDS:
        raise Malformed(f"unknown request kind {str(kind)[:40]!r}")
    body = {k: v for k, v in message.items() if k not in ("type", "id", "kind")}
    if kind == "store" and body.get("op") not in STORE_OPS:
        raise Malformed("unknown store operation")
    if kind == "store" and body.get("op") != "keys" and not isinstance(body.get("key"), str):
        raise Malformed("a store request names a key")
    return Report(
        "request", job=str(body.get("job") or ""), request_id=number, kind=kind, body=body
    )
