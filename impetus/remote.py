"""Remote exceptions, re-raised in the client.

A job's exception reaches the client as an error record (class, args and attributes as
JSON, message, traceback text), never as a pickled exception object: nothing from a
node is unpickled unless it is a verified result. :func:`rebuild` turns the record back
into an exception of the same class with the same args and plain-data attributes when
the client has that class (a builtin, or a class of a module already imported here; see
:mod:`impetus.core.excdata`), else a :class:`RemoteError`; either way its ``__cause__``
carries the remote traceback, user frames only, with the source lines of code that
travelled by value filled in from the client's copy, as
``concurrent.futures.ProcessPoolExecutor`` does.
"""

from __future__ import annotations

import builtins
from typing import Any

from impetus.core.excdata import rebuild_exception
from impetus.core.exceptions import ImpetusError
from impetus.core.jobs import fill_statement


class RemoteTraceback(Exception):
    """The traceback text of the node's exception (shown as the cause)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text.rstrip() if self.text else "(no remote traceback)"


class RemoteError(ImpetusError):
    """A job failed with an exception the client cannot rebuild as its own type."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        # System error records (lost, signature, timeout...) already read "kind: ...".
        prefixed = not type_name or message.startswith(f"{type_name}: ")
        super().__init__(message if prefixed else f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback


def _exception_class(name: str, fn: Any) -> type[BaseException] | None:
    candidates = [getattr(builtins, name, None)]
    if fn is not None:
        candidates.append(getattr(fn, "__globals__", {}).get(name))
    for cls in candidates:
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls
    return None


def rebuild(record: Any, fn: Any = None) -> BaseException:
    """The exception to raise for an error record (see the module doc)."""
    if not isinstance(record, dict):
        record = {"error": str(record)}
    fill_statement(record, getattr(fn, "__wrapped__", fn))
    name = str(record.get("type") or "")
    message = str(record.get("error") or "")
    text = str(record.get("traceback") or "")
    exc: BaseException | None = rebuild_exception(record)
    cls = _exception_class(name, fn) if name and exc is None else None
    if cls is not None:
        try:
            exc = cls(message)
        except Exception:  # a constructor with other arguments: fall back
            exc = None
    if exc is None:
        exc = RemoteError(name, message, text)
    exc.__cause__ = RemoteTraceback(text)
    return exc
