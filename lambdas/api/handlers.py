"""The API's error handlers: every error becomes an ``{error, message}`` JSON body.

:func:`install` puts them on the resolver (``lambdas.api.app``).
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from impetus.core.exceptions import CollectorBusy, ImpetusError
from lambdas.api import fields
from lambdas.api.exceptions import HttpError, MethodNotAllowed, NotFound, error_body, from_impetus


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(code, message),
        headers=headers,
    )


def http_error(exc: HttpError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def describe(errors: list[dict[str, Any]], limit: int = 5) -> str:
    """Where and what, never the offending input (it may be large or sensitive)."""
    parts = []
    for err in errors[:limit]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def validation_error(exc: RequestValidationError) -> Response:
    errors = list(exc.errors())
    kinds = {err.get("type") for err in errors}
    if "json_invalid" in kinds:
        bad = next(e for e in errors if e.get("type") == "json_invalid")
        detail = (bad.get("ctx") or {}).get("error")
        message = f"request body is not JSON: {detail}" if detail else "request body is not JSON"
        return error_response(HTTPStatus.BAD_REQUEST, "invalid_json", message)
    if kinds == {fields.TOO_LARGE}:
        return error_response(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", describe(errors)
        )
    return error_response(HTTPStatus.BAD_REQUEST, "validation_error", describe(errors))


def install(app: APIGatewayHttpResolver, logger: Logger) -> None:
    """Register the handlers of every error the routes or the resolver raise."""
    app.exception_handler(HttpError)(http_error)
    app.exception_handler(RequestValidationError)(validation_error)

    @app.exception_handler(ImpetusError)
    def _impetus_error(exc: ImpetusError) -> Response:
        status, code = from_impetus(exc)
        if isinstance(exc, CollectorBusy):  # when to try again: the lease's time left
            headers = {"Retry-After": str(math.ceil(exc.retry_after))}
            return error_response(status, code, str(exc), headers)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.error("server error", extra={"code": code, "detail": str(exc)})
            return error_response(status, code, "the API is misconfigured; see its logs")
        return error_response(status, code, str(exc))

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_media(exc: RequestUnsupportedContentType) -> Response:
        return error_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json"
        )

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        return error_response(exc.status_code, "error", exc.msg)

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response:
        path = app.current_event.path
        # Powertools keeps no public route table; its two lists are stable across 2.x/3.x.
        routes = [*app._static_routes, *app._dynamic_routes]
        allowed = sorted({r.method for r in routes if r.rule.match(path)})
        if allowed:
            error = MethodNotAllowed(
                f"{app.current_event.http_method} is not allowed here; use {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        else:
            error = NotFound(f"no route for {path}")
        return http_error(error)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")
