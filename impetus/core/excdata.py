"""An exception's class, args and attributes as plain data, and back.

A node describes the exception a job raised as JSON (:func:`describe`): the class's
module and qualname, its args, and its attributes that are plain data (``errno``,
``filename``, ``__dict__`` entries...). The client rebuilds an exception of the same class
from that (:func:`rebuild_exception`) only when the class is a builtin or is already
imported in the client and is an ``Exception``: nothing is unpickled, and no module is
imported because a node named it.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sys
from typing import Any

# Attributes the builtin exceptions keep outside ``args`` (OSError's filename is not in
# its args, for one); read when present, set back after the constructor ran.
KNOWN_ATTRIBUTES = (
    "errno", "strerror", "filename", "filename2", "name", "path", "msg", "lineno",
    "offset", "text", "end_lineno", "end_offset", "encoding", "start", "end", "reason",
    "value", "code",
)  # fmt: skip
# Above this the args and attributes are left out (the message still travels).
MAX_JSON_CHARS = 16 * 1024
_SCALARS = (str, int, float, bool, type(None))


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` if it is JSON data (str, int, float, bool, None, lists, str-keyed
    dicts), else its repr."""
    if isinstance(value, _SCALARS):
        return value
    if depth < 8 and isinstance(value, (list, tuple)):
        return [plain(item, depth + 1) for item in value]
    if depth < 8 and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {key: plain(item, depth + 1) for key, item in value.items()}
    try:
        return repr(value)
    except Exception:  # a repr that raises: the type at least
        return f"<{type(value).__name__}>"


def _attributes(exc: BaseException) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in KNOWN_ATTRIBUTES:
        with contextlib.suppress(Exception):  # a property may raise
            if hasattr(type(exc), name) or name in getattr(exc, "__dict__", {}):
                found[name] = plain(getattr(exc, name))
    for name, value in getattr(exc, "__dict__", {}).items():
        if name == "__notes__" or (isinstance(name, str) and not name.startswith("__")):
            found[name] = plain(value)
    return found


def describe(exc: BaseException) -> dict[str, Any]:
    """The error record's fields that name the exception's class and hold its data."""
    cls = type(exc)
    facts = {"module": str(cls.__module__), "qualname": str(cls.__qualname__)}
    args = json.dumps(plain(list(exc.args)))
    attrs = json.dumps(_attributes(exc))
    if len(args) + len(attrs) <= MAX_JSON_CHARS:
        facts.update(exc_args=args, exc_attrs=attrs)
    return facts


def known_class(module: str, qualname: str) -> type[Exception] | None:
    """The class a record names, if builtin or in a module the client already imported,
    and an ``Exception`` (never a module imported on demand)."""
    if not module or not qualname or "<" in qualname:
        return None
    owner: Any = builtins if module == "builtins" else sys.modules.get(module)
    for part in qualname.split("."):
        owner = getattr(owner, part, None) if owner is not None else None
    if isinstance(owner, type) and issubclass(owner, Exception):
        return owner
    return None


def _loads(text: Any, kind: type) -> Any:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def rebuild_exception(record: dict[str, Any]) -> Exception | None:
    """An exception of the record's class with its args and attributes, or None."""
    cls = known_class(str(record.get("module") or ""), str(record.get("qualname") or ""))
    args = _loads(record.get("exc_args"), list)
    if cls is None or args is None:
        return None
    attrs = _loads(record.get("exc_attrs"), dict) or {}
    try:
        exc = cls(*args)
    except Exception:  # an __init__ whose parameters are not its args: as pickle would not
        try:
            exc = cls.__new__(cls, *args)
            exc.args = tuple(args)
        except Exception:
            return None
    for name, value in attrs.items():
        if not name.isidentifier() or name.startswith("__"):
            continue  # plain attributes only: never __class__, __dict__ and the like
        with contextlib.suppress(Exception):  # read-only or typed attributes stay as built
            if getattr(exc, name, _MISSING) != value:
                setattr(exc, name, value)
    return exc


_MISSING = object()
