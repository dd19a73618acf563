"""The default ``name`` of a stream the client creates (see the ``name`` property)."""

from __future__ import annotations

import sys
from pathlib import Path

from impetus.core.properties import MAX_NAME

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
