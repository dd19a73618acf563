"""The job record: what a fork becomes, what a stage receives, what a task file holds.

A job dict carries the original's fields (id, name, args, result, status, callback,
client, created, delay, priority, transport, code) plus attempt bookkeeping. ``status``
is one of :data:`STATUSES`; ``result`` of an error job is an :func:`error_record`.
"""

from __future__ import annotations

import inspect
import linecache
import re
import sys
import traceback
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from impetus.core import excdata

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
    # The worker slot that ran it (0, 1, ... on its node), set by the node agent, never
    # taken from the worker's own report: the timeline's rows (impetus.timeline).
    worker: int | None = None


def error_record(exc: BaseException, function_name: str | None = None) -> dict[str, Any]:
    """The original's error result, plus what lets the client rebuild the exception.

    ``linenumber`` and ``statement`` point at the innermost frame, which is where the
    user's code raised (the frame of the function that ran, or deeper). ``module`` and
    ``qualname`` name the exception's class; ``exc_args`` and ``exc_attrs`` are its args
    and attributes as JSON text (see :mod:`impetus.core.excdata`), never a pickle. The
    traceback starts at the user's first frame: the worker's own frames are left out.
    """
    tb = user_traceback(exc.__traceback__)
    frames = traceback.extract_tb(tb)
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
        "traceback": format_traceback(exc, tb),
        **excdata.describe(exc),
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
# cannot quote the source line of a function shipped by value. The node writes the
# frame's module into the name ("<dynamic-code mymodule>"); the client, which has the
# source, fills the file and line in when it decodes the error.
DYNAMIC_CODE = "<dynamic-code>"
# Frames of these packages before the user's first frame are the worker's, not the user's.
_INTERNAL_PACKAGES = ("node_agent", "impetus")
_DYNAMIC_FRAME = re.compile(
    r'^(?P<indent> *)File "<dynamic-code(?: (?P<module>[\w.]+))?>", line (?P<line>\d+), '
    r"in (?P<name>.+)$",
    re.M,
)


def _is_internal(tb: TracebackType) -> bool:
    module = str(tb.tb_frame.f_globals.get("__name__") or "")
    return module.split(".")[0] in _INTERNAL_PACKAGES


def user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from the first frame that is not Impetus's own (the worker, a chunk runner);
    all of it when every frame is Impetus's."""
    first = tb
    while first is not None and _is_internal(first):
        first = first.tb_next
    return first if first is not None else tb


def format_traceback(exc: BaseException, tb: TracebackType | None) -> str:
    """The traceback text, by-value frames named "<dynamic-code MODULE>" (see above)."""
    summary = traceback.TracebackException(type(exc), exc, tb)
    _name_dynamic_frames(summary, tb)
    return "".join(summary.format())


def _name_dynamic_frames(summary: traceback.TracebackException, tb: TracebackType | None) -> None:
    modules = [str(f.f_globals.get("__name__") or "") for f, _ in traceback.walk_tb(tb)]
    for entry, module in zip(summary.stack, modules, strict=True):
        if entry.filename == DYNAMIC_CODE and module:
            entry.filename = f"<dynamic-code {module}>"


def _source_file(module_name: str | None, name: str, fn: Any) -> str | None:
    """The client's file for a by-value frame: from a module already imported here (never
    imported on demand), else ``fn``'s own file."""
    module = sys.modules.get(module_name) if module_name else None
    candidates = []
    if module is not None:
        candidates.append(getattr(module, "__dict__", {}).get(name))
    if fn is not None and module_name in (None, getattr(fn, "__module__", None)):
        candidates.append(fn)
    for candidate in candidates:
        code = getattr(inspect.unwrap(candidate), "__code__", None) if candidate else None
        if code is not None and code.co_filename != DYNAMIC_CODE:
            return str(code.co_filename)
    file = getattr(module, "__file__", None) if module is not None else None
    return str(file) if file else None


def fill_statement(record: dict[str, Any], fn: Any) -> None:
    """Fill in the file and source line of every by-value frame of the record's
    traceback from the client's copy of the code, and the failing statement."""
    text = record.get("traceback")
    if not isinstance(text, str) or "<dynamic-code" not in text:
        return
    sources: dict[int, str] = {}  # frame line's offset in ``text`` -> its source line

    def fill(match: re.Match[str]) -> str:
        indent, line, name = match["indent"], int(match["line"]), match["name"]
        filename = _source_file(match["module"], name, fn)
        if not filename:
            return match[0]
        source = linecache.getline(filename, line).strip()
        sources[match.start()] = source
        frame = f'{indent}File "{filename}", line {line}, in {name}'
        return f"{frame}\n{indent}  {source}" if source else frame

    record["traceback"] = _DYNAMIC_FRAME.sub(fill, text)
    frames = list(_FRAME_LINE.finditer(text))
    if not record.get("statement") and frames:
        record["statement"] = sources.get(frames[-1].start(), "")


_FRAME_LINE = re.compile(r'^ *File "[^"]+", line \d+, in .+$', re.M)
