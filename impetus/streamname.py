"""The default ``name`` of a stream the client creates (see the ``name`` property)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from impetus.core.exceptions import ApiError
from impetus.core.properties import MAX_NAME

log = logging.getLogger(__name__)

# sys.argv[0] when there is no script file: the REPL (''), `python -c`, a notebook kernel.
_NO_SCRIPT = {"", "-c", "-m", "ipykernel_launcher", "ipykernel"}


def program_name(fallback: str) -> str:
    """The running program's file name without suffix (``python -m pkg``: the package),
    else ``fallback`` (a class's name when there is no script, as in a notebook)."""
    argv0 = sys.argv[0] if sys.argv else ""
    path = Path(argv0)
    stem = path.parent.name if path.stem == "__main__" else path.stem
    return printable(fallback if stem in _NO_SCRIPT or argv0 in _NO_SCRIPT else stem)


def printable(text: str) -> str:
    """``text`` as a valid name: control characters dropped, at most MAX_NAME long."""
    cleaned = "".join(c for c in text if c.isprintable())[:MAX_NAME]
    return cleaned or "stream"


def with_default_name(properties: dict, creating: bool, default: str) -> dict:
    """``properties`` with ``name`` set to ``default`` when this client creates the stream
    and the user gave none (a stream joined again by id keeps the name it has)."""
    if not creating or properties.get("name") is not None:
        return properties
    return {**properties, "name": printable(default)}


class FirstFunctionName:
    """Names an executor's stream after the first function it runs, when the stream's
    creator gave no name: an executor knows no function when it creates its stream, so
    the stream starts as "executor" and takes e.g. "resize" at the first submit or map
    (one properties request per executor, outside any lock)."""

    def __init__(self, session: Any, pending: bool) -> None:
        self._session = session  # an impetus.session.StreamSession
        self._pending = pending
        self._lock = threading.Lock()

    def first_function(self, fn: Callable[..., Any]) -> str | None:
        """The stream's new name after ``fn``, once; None when it keeps its name."""
        with self._lock:
            if not self._pending:
                return None
            self._pending = False
        name = printable(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "executor"))
        try:
            answer = self._session.api.update_properties(self._session.id, {"name": name})
        except ApiError as exc:  # a name is a label: the work goes on without it
            log.warning("stream %s: could not name it %r: %s", self._session.id, name, exc)
            return None
        self._session.properties = dict(answer.get("properties") or {})
        return name
