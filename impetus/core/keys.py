"""Identifier rules and DynamoDB key formats of the queue table."""

from __future__ import annotations

import os
import re
import time

from impetus.core.exceptions import InvalidRequest

STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
STAGE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_STORE_KEY = 512
MAX_STORE_KEY_BYTES = 1024  # DynamoDB's sort key limit (UTF-8)

# Priorities are stored offset so that they sort as fixed-width strings.
PRIORITY_MIN, PRIORITY_MAX = -(10**9), 10**9
_PRIORITY_OFFSET = 10**9

DELAYED = "delayed"
CODE_PREFIX = "#code#"


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


def ready_pk(stream: str, shard: int) -> str:
    return f"{stream}#{shard}"


def delayed_pk(stream: str) -> str:
    return f"{stream}#{DELAYED}"


def ready_sk(priority: int, due_ms: int, suffix: str) -> str:
    """Lower priority first, then earlier due time, then arrival: the claim order."""
    return f"{priority + _PRIORITY_OFFSET:010d}#{due_ms:013d}#{suffix}"


def delayed_sk(priority: int, due_ms: int, suffix: str) -> str:
    """Due time first, so 'everything due by now' is one key-range query."""
    return f"{due_ms:013d}#{priority + _PRIORITY_OFFSET:010d}#{suffix}"


def delayed_sk_upper(due_ms: int) -> str:
    """Above every delayed sort key due at or before ``due_ms``."""
    return f"{due_ms:013d}#~"


def delayed_to_ready_sk(sk: str) -> str:
    due, priority, suffix = sk.split("#", 2)
    return f"{priority}#{due}#{suffix}"


def code_key(digest: str) -> str:
    return f"{CODE_PREFIX}{digest}"
