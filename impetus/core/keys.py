"""Identifier rules every process checks (stream ids, job ids, stages, store keys), and
the time-ordered suffixes sort keys end with. The queue table's key formats live with
its owner, impetus/storage/jobqueue/layout.py."""

from __future__ import annotations

import os
import re
import time

from impetus.core.exceptions import InvalidRequest

# The first character is no dot or dash: "." and ".." are no names in a URL path or on
# disk (task folders), and "-x" reads as an option on a command line.
STREAM_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
STAGE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_STORE_KEY = 512
MAX_STORE_KEY_BYTES = 1024  # DynamoDB's sort key limit (UTF-8)

PRIORITY_MIN, PRIORITY_MAX = -(10**9), 10**9


def check(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidRequest(f"invalid {what}: must match {pattern.pattern}")
    return value


def check_store_key(key: object) -> str:
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_STORE_KEY
        or len(key.encode()) > MAX_STORE_KEY_BYTES
    ):
        raise InvalidRequest(
            f"invalid store key: 1-{MAX_STORE_KEY} characters, at most {MAX_STORE_KEY_BYTES} bytes"
        )
    return key


def now_ms() -> int:
    return int(time.time() * 1000)


def unique_suffix() -> str:
    """Time-ordered and collision-free across processes: FIFO tie-break within a ms."""
    return f"{time.time_ns():020d}{os.urandom(3).hex()}"
