"""Plain-text formatting shared by the CLI and the watch view: tables and ages."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; None shows as '-'."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def age(epoch: float | None, now: float | None = None) -> str | None:
    """'5s', '3m', '2h', '4d' since an epoch time."""
    if epoch is None:
        return None
    seconds = max(0.0, (time.time() if now is None else now) - float(epoch))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def clip(text: str | None, width: int) -> str | None:
    """``text`` cut to ``width`` characters, the last one an ellipsis when it was cut."""
    if text is None or len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"
