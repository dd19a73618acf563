"""Remote exceptions, re-raised in the client.

A job's exception reaches the client as an error record (type name, message, traceback
text), never as a pickled exception object: nothing from a node is unpickled unless it
is a verified result. :func:`rebuild` turns the record back into an exception of the
same type when the client can name it (a builtin, or a class in the job function's
module), else a :class:`RemoteError`; either way its ``__cause__`` carries the remote
traceback, as ``concurrent.futures.ProcessPoolExecutor`` does.
"""

from __future__ import annotations

import builtins
from typing import Any

from impetus.core.exceptions import ImpetusError


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
    name = str(record.get("type") or "")
    message = str(record.get("error") or "")
    text = str(record.get("traceback") or "")
    exc: BaseException | None = None
    cls = _exception_class(name, fn) if name else None
    if cls is not None:
        try:
            exc = cls(message)
        except Exception:  # a constructor with other arguments: fall back
            exc = None
    if exc is None:
        exc = RemoteError(name, message, text)
    exc.__cause__ = RemoteTraceback(text)
    return exc
