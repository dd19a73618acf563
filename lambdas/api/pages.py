"""Answers cut to fit Lambda's response payload limit: every list route pages by size.

A synchronous Lambda invocation answers at most 6 MB (the function's serialized return
value; https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html, "Invocation
payload (request and response)"). Past it Lambda fails the invocation and API Gateway's
HTTP API answers 500 ``{"message": "Internal Server Error"}`` instead of our body, so an
answer that grows with the data (results, streams, store keys, nodes, job listings) must
stop adding items before it gets there. API Gateway's own limit (10 MB,
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html) is
never the one that binds.

What counts is the body as Lambda sees it: powertools writes it as ASCII JSON (non-ASCII
characters escaped), and the runtime writes the whole return value as JSON again, which
escapes every ``"`` and ``\\`` of the body once more. :func:`encoded_size` measures that.

A page says ``more`` when items were left out; list routes also give ``next``, an opaque
cursor (the sort key of the last item sent) to pass back as ``after``. Results need no
cursor: the client acknowledges a page, and acknowledged jobs leave the queue.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdas.api.exceptions import BadRequest

#: Lambda's synchronous response payload limit, in bytes (6 MB; see the module docstring).
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
#: What one page's items may take: the rest of the 6 MB is room for the envelope (status,
#: headers) and the answer's other fields, which callers reserve when they can grow.
PAGE_BUDGET = 5 * 1024 * 1024
#: What the ids of started jobs beside a results page may take (their list is cut short
#: past it: a client misses some "running" marks, never a result).
STARTED_BUDGET = 512 * 1024
MAX_CURSOR_CHARS = 2048


def encoded_size(value: Any) -> int:
    """Bytes ``value`` takes inside the Lambda response: its compact ASCII JSON (as the
    resolver writes the body), each ``"`` and ``\\`` escaped once more (the body is a
    JSON string in the runtime's answer)."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return len(text) + text.count('"') + text.count("\\")


@dataclass
class Page:
    """Items added while they fit ``budget``; the first one always does (one job is
    bounded by the item and inline limits: see docs/http-api.md#pages)."""

    budget: int = field(default_factory=lambda: PAGE_BUDGET)  # read at each page (tests set it)
    items: list[Any] = field(default_factory=list)
    more: bool = False
    used: int = 0

    def reserve(self, value: Any) -> None:
        """Count a field of the answer outside the list (e.g. ``started``)."""
        self.used += encoded_size(value)

    def add(self, item: Any) -> bool:
        """Add ``item`` if it fits; False (and ``more``) when the page is full."""
        size = encoded_size(item) + 1  # the comma
        if self.items and self.used + size > self.budget:
            self.more = True
            return False
        self.items.append(item)
        self.used += size
        return True


def fitting(values: list[Any], budget: int) -> list[Any]:
    """The longest prefix of ``values`` whose JSON fits ``budget`` bytes (encoded_size)."""
    kept: list[Any] = []
    used = 2  # the brackets
    for value in values:
        used += encoded_size(value) + 1
        if used > budget:
            break
        kept.append(value)
    return kept


def encode_cursor(key: Sequence[Any]) -> str:
    """An opaque cursor for a sort key (a list of JSON scalars)."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The sort key of a cursor; BadRequest (400) when it is not one of ours."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(key, list) or not all(isinstance(k, str | int | float) for k in key):
            raise ValueError("not a sort key")
        return key
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("'after' is not a cursor this API gave out (its 'next')") from exc


def listing(
    items: Iterable[Any],
    sort_key: Callable[[Any], list[Any]],
    after: str | None,
    limit: int | None = None,
    budget: int | None = None,
) -> dict[str, Any]:
    """One page of ``items`` (in ``sort_key`` order) after the cursor ``after``: at most
    ``limit`` items and ``budget`` bytes. ``{"items", "more", "next"?}``."""
    ordered = sorted(items, key=sort_key)
    if after is not None:
        start = decode_cursor(after)
        ordered = [i for i in ordered if _after(sort_key(i), start)]
    page = Page() if budget is None else Page(budget)
    for item in ordered:
        if (limit is not None and len(page.items) >= limit) or not page.add(item):
            page.more = True
            break
    answer: dict[str, Any] = {"items": page.items, "more": page.more}
    if page.more:
        answer["next"] = encode_cursor(sort_key(page.items[-1]))
    return answer


def _after(key: list[Any], start: list[Any]) -> bool:
    """Whether ``key`` sorts after ``start`` (a cursor of another shape: a 400)."""
    try:
        return key > start
    except TypeError as exc:
        raise BadRequest("'after' is not a cursor of this listing") from exc
