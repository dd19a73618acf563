"""Impetus: auto-scaling distributed processing for Python on AWS.

``from impetus import Impetus`` is the pipeline programming model (see impetus.client);
``from impetus import Executor`` is the ``concurrent.futures`` face of the same client;
``impetus.context`` tells a running job its stream, its id and its stream's store
(see impetus.jobcontext).

The names load on first use, so a server-side process (the API and DFS Lambdas, which
ship only ``impetus.core``, ``impetus.storage`` and ``impetus.scaler``) importing a
subpackage never loads the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from impetus.client import Impetus
    from impetus.executor import Executor
    from impetus.jobcontext import context

_EXPORTS = {
    "Impetus": "impetus.client",
    "Executor": "impetus.executor",
    "context": "impetus.jobcontext",
}
__all__ = ["Executor", "Impetus", "context"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'impetus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
