"""The patch register: every replaced moto attribute, so :func:`moto_original` can lift
them all for a block (tests compare patched and released moto answer for answer)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

patched: list[tuple[Any, str, Any, Any]] = []  # (owner, name, moto's value, ours)


def replace(owner: Any, name: str, value: Any) -> Any:
    """Set ``owner.name`` to ``value``, remembering moto's own (for :func:`moto_original`)."""
    original = vars(owner)[name] if name in vars(owner) else getattr(owner, name)
    patched.append((owner, name, original, value))
    setattr(owner, name, value)
    return value


@contextlib.contextmanager
def moto_original() -> Iterator[None]:
    """moto exactly as released while the block runs (tests compare the two)."""
    for owner, name, original, _ in reversed(patched):
        setattr(owner, name, original)
    try:
        yield
    finally:
        for owner, name, _, ours in patched:
            setattr(owner, name, ours)
