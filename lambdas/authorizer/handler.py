"""The HTTP API's Lambda authorizer (REQUEST type, payload 2.0, simple responses).

API Gateway calls it before the API Lambda with the request's headers and caches its
answer per ``Authorization`` value (``infra/functions.py`` sets the identity source and
the TTL), so a request without the authkey never invokes, or bills, the API Lambda. The
check is the API Lambda's own (``lambdas.api.auth``: bearer scheme, constant-time compare
with the authkey secret); the API Lambda keeps checking too (defense in depth).

The answer depends on the ``Authorization`` header alone, which is what makes caching it
per identity source exact. A secret that cannot be read is an exception, not a denial:
API Gateway answers 500 and caches nothing, whereas a cached denial would refuse the
right key for a whole TTL.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.api import auth
from lambdas.api.exceptions import HttpError

SERVICE = "impetus-authorizer"

logger = Logger(service=SERVICE)


def handler(event: dict[str, Any], context: Any) -> dict[str, bool]:
    """``{"isAuthorized": bool}`` for one request (its token is never logged)."""
    request = event.get("requestContext") or {}
    logger.set_correlation_id(request.get("requestId"))
    try:
        auth.check(event.get("headers") or {})
    except HttpError as exc:  # Unauthorized (no usable bearer token) or Forbidden (wrong key)
        logger.info(
            "request denied",
            extra={
                "reason": exc.code,
                "source_ip": (request.get("http") or {}).get("sourceIp"),
                "route": event.get("routeKey"),
            },
        )
        return {"isAuthorized": False}
    return {"isAuthorized": True}
