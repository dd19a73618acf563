"""The job record: what a fork becomes, what a stage receives, what a task file holds.

A job dict carries the original's fields (id, name, args, result, status, callback,
client, created, delay, priority, transport, code) plus attempt bookkeeping. ``status``
is one of :data:`STATUSES`; ``result`` of an error job is an :func:`error_record`.
"""

from __future__ import annotations

import inspect
import linecache
import re
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

WAITING = "waiting"
RUNNING = "running"
READY = "ready"
ERROR = "error"
ACKED = "acked"
STATUSES = (WAITING, RUNNING, READY, ERROR, ACKED)

JOB_FIELDS = (
    "id", "name", "args", "result", "status", "callback", "client", "created",
    "delay", "priority", "transport", "code",
)  # fmt: skip

MAX_NAME_CHARS = 200
# Payloads travel inside one DynamoDB item (400 KB) with room for the record's fields.
MAX_PAYLOAD_BYTES = 350 * 1024
MAX_DELAY_SECONDS = 14 * 86400


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass
class JobSpec:
    """One fork, as the client sends it to the API (args already encoded)."""

    name: str
    code: str  # digest of the function's encoded code (see codec.digest)
    args: str  # codec.dumps(args)
    stage: str
    id: str = field(default_factory=new_job_id)
    priority: int = 0
    delay: float = 0.0
    properties: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "code": self.code,
            "args": self.args,
            "stage": self.stage,
            "priority": self.priority,
            "delay": self.delay,
            "properties": self.properties,
        }


# Why an ERROR outcome failed, which decides whether the job may run again:
EXCEPTION = "exception"  # the user's function raised: re-run while ``retries`` last
CRASH = "crash"  # the worker or node died: re-run until ``max_attempts`` runs were lost
# "" (neither): final at once (bad signature, Python mismatch, ...): re-running cannot help.


@dataclass
class Outcome:
    """What running one job produced: an encoded result, or an error record."""

    status: str  # READY or ERROR
    result: str | None = None  # codec.dumps(value) when READY
    error: dict[str, Any] | None = None  # error_record(...) when ERROR
    started: float = 0.0
    finished: float = 0.0
    failure: str = ""  # EXCEPTION, CRASH or "" (see above); only for ERROR
    result_ref: str | None = None  # S3 key of a large result (impetus.storage.payloads)
    result_digest: str = ""  # sha256 of that S3 object's text, as its worker uploaded it
    # What the job printed and logged: {"stdout"?, "stderr"?, "log"?, "truncated"?},
    # each the last 64 KiB (node_agent/capture.py); None when it wrote nothing.
    output: dict[str, Any] | None = None


def error_record(exc: BaseException, function_name: str | None = None) -> dict[str, Any]:
    """The original's error result, plus the exception type and the full traceback.

    ``linenumber`` and ``statement`` point at the innermost frame, which is where the
    user's code raised (the frame of the function that ran, or deeper).
    """
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    statement = ""
    if last is not None:
        statement = last.line or linecache.getline(last.filename, last.lineno or 0).strip()
    return {
        "error": str(exc),
        "type": type(exc).__name__,
        "name": last.name if last is not None else (function_name or ""),
        "linenumber": last.lineno if last is not None else None,
        "statement": statement,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def system_error(kind: str, message: str, name: str = "") -> dict[str, Any]:
    """An error record for a job that failed outside the user's code (lost, signature...)."""
    return {
        "error": f"{kind}: {message}",
        "type": kind,
        "name": name,
        "linenumber": None,
        "statement": "",
        "traceback": "",
    }


# cloudpickle names the file of every by-value code object "<dynamic-code>", so a node
# cannot quote the source line of a function shipped by value. The client has the source:
# it fills the statement in when it decodes the error.
DYNAMIC_CODE = "<dynamic-code>"
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def fill_statement(record: dict[str, Any], fn: Any) -> None:
    """Quote the failing statement from the client's copy of ``fn``'s source file."""
    if record.get("statement") or not record.get("linenumber") or fn is None:
        return
    frames = _FRAME.findall(record.get("traceback") or "")
    if not frames or frames[-1][0] != DYNAMIC_CODE:
        return
    try:
        filename = inspect.getsourcefile(fn)
    except TypeError:
        return
    if filename:
        record["statement"] = linecache.getline(filename, int(record["linenumber"])).strip()
