"""What the inspection commands share: the API client, JSON output, text helpers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from impetus.api_client import ApiClient
from impetus.cli.textfmt import age, clip, table
from impetus.core.config import ClientSettings

__all__ = [
    "NAME_WIDTH",
    "STREAM_ID_HELP",
    "add_json_flag",
    "age",
    "api",
    "clip",
    "print_json",
    "print_list",
    "same_keys",
    "stream_api",
    "stream_name",
    "table",
    "write",
]

STREAM_ID_HELP = (
    "stream id (a stream this user created: its key is read from $IMPETUS_HOME/streams)"
)

# A stream's name in a table: long names are cut (with an ellipsis) to keep rows on a line.
NAME_WIDTH = 24

# A command fails fast when the API is down: 3 attempts (about a second), not the
# client's patient default.
CLI_ATTEMPTS = 3


def api() -> ApiClient:
    """A client of the configured API (environment, else the local stack's settings)."""
    return ApiClient(ClientSettings.resolve(), max_attempts=CLI_ATTEMPTS)


def stream_api(stream_id: str) -> ApiClient:
    """A client that sends the key this user holds for ``stream_id`` (impetus.streamkeys);
    a stream whose key it does not hold fails as NoStreamKey: one line, exit 1."""
    client = api()
    client.use_filed_key(stream_id)
    return client


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def print_list(rows: list[dict[str, Any]]) -> None:
    """A listing's ``--json``: one array of objects that all carry the same keys (a key
    one row lacks is null), the one shape of every list (docs/cli.md, "JSON output")."""
    print_json(same_keys(rows))


def same_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with every key any of them has (null where a row lacks it)."""
    keys = sorted({key for row in rows for key in row})
    return [{key: row.get(key) for key in keys} for row in rows]


def stream_name(stream: dict[str, Any]) -> str | None:
    """The stream's ``name`` property (None for a stream created without one)."""
    return (stream.get("properties") or {}).get("name")


def write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
