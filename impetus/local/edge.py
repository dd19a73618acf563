"""API Gateway's Lambda authorizer step, for the local API server.

On AWS the HTTP API runs ``lambdas.authorizer.handler`` before the API Lambda (see
``infra/functions.py``: REQUEST type, payload 2.0, simple responses, identity source
``$request.header.Authorization``, results cached 300 s). This module does the same in
front of the local API handler, with API Gateway's documented answers:

- the identity source missing or empty: 401 ``{"message":"Unauthorized"}``, and the
  authorizer is not invoked;
- the authorizer answers ``{"isAuthorized": false}``: 403 ``{"message":"Forbidden"}``;
- the authorizer raises or answers something else: 500 ``{"message":"Internal Server
  Error"}``, and nothing is cached.

Answers are cached per identity source value for the TTL, denials as well as grants, so
the local stack shows what key rotation looks like at the edge.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_AUTHORIZER = "lambdas.authorizer.handler.handler"
IDENTITY_HEADER = "authorization"  # $request.header.Authorization; event headers are lower case
CACHE_TTL = 300.0  # infra.functions.AUTHORIZER_CACHE_TTL (infra is not importable here)
MAX_CACHED = 10_000  # answers kept at most: junk tokens cannot grow the cache without bound

Answer = tuple[int, list[tuple[str, str]], bytes]
Invoke = Callable[[dict[str, Any]], Any]  # an authorizer event -> the authorizer's answer


def gateway_answer(status: int, message: str) -> Answer:
    """API Gateway's own error body (HTTP APIs cannot customise these)."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return status, [("Content-Type", "application/json")], body


UNAUTHORIZED = gateway_answer(401, "Unauthorized")
FORBIDDEN = gateway_answer(403, "Forbidden")
AUTHORIZER_FAILED = gateway_answer(500, "Internal Server Error")


def authorizer_event(event: dict[str, Any], identity: list[str]) -> dict[str, Any]:
    """The payload 2.0 REQUEST authorizer event of an HTTP API event: no body."""
    context = event["requestContext"]
    http = context["http"]
    route_arn = (
        f"arn:aws:execute-api:us-east-1:{context['accountId']}:{context['apiId']}/"
        f"{context['stage']}/{http['method']}{event['rawPath']}"
    )
    authorizer = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": identity,
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "headers": dict(event["headers"]),
        "requestContext": dict(context),
    }
    for optional in ("cookies", "queryStringParameters", "pathParameters"):
        if optional in event:
            authorizer[optional] = event[optional]
    return authorizer


def _verdict(answer: Any) -> bool:
    """``isAuthorized`` of a simple response; ValueError for anything else."""
    if isinstance(answer, dict) and isinstance(answer.get("isAuthorized"), bool):
        return answer["isAuthorized"]
    raise ValueError(f"not a simple authorizer response: {type(answer).__name__}")


class EdgeAuthorizer:
    """Runs the authorizer for a request and caches its verdict per identity value."""

    def __init__(
        self,
        invoke: Invoke,
        ttl: float = CACHE_TTL,
        clock: Callable[[], float] = time.monotonic,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self._invoke = invoke
        self._ttl = ttl
        self._clock = clock
        self._max_cached = max_cached
        self._cache: dict[tuple[str, ...], tuple[float, bool]] = {}  # identity -> (until, ok)
        # One invocation at a time, like one authorizer container; the cache is shared.
        self._lock = threading.Lock()

    def refusal(self, event: dict[str, Any]) -> Answer | None:
        """None when the request may reach the API handler, else API Gateway's answer."""
        value = (event.get("headers") or {}).get(IDENTITY_HEADER, "")
        if not value.strip():
            return UNAUTHORIZED
        identity = (value,)
        with self._lock:
            allowed = self._cached(identity)
            if allowed is None:
                try:
                    allowed = _verdict(self._invoke(authorizer_event(event, list(identity))))
                except Exception:
                    log.exception("authorizer failed on %s", event.get("rawPath"))
                    return AUTHORIZER_FAILED
                self._store(identity, allowed)
        return None if allowed else FORBIDDEN

    def _cached(self, identity: tuple[str, ...]) -> bool | None:
        entry = self._cache.get(identity)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def _store(self, identity: tuple[str, ...], allowed: bool) -> None:
        if self._ttl <= 0:
            return  # caching off, as with a TTL of 0 on API Gateway
        now = self._clock()
        if len(self._cache) >= self._max_cached:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            while len(self._cache) >= self._max_cached:  # still full: drop the oldest
                del self._cache[next(iter(self._cache))]
        self._cache.pop(identity, None)  # re-inserted last: the oldest stay first
        self._cache[identity] = (now + self._ttl, allowed)
