"""What the inspection commands share: the API client, JSON output, plain-text tables."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from impetus.api_client import ApiClient
from impetus.config import ClientSettings

# A command fails fast when the API is down: 3 attempts (about a second), not the
# client's patient default.
CLI_ATTEMPTS = 3


def api() -> ApiClient:
    """A client of the configured API (environment, else the local stack's settings)."""
    return ApiClient(ClientSettings.resolve(), max_attempts=CLI_ATTEMPTS)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


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


def write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
