"""HTTP errors of the API, and how every error becomes ``{"error": code, "message": text}``."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from impetus.core.exceptions import (
    ConfigError,
    Conflict,
    ImpetusError,
    InvalidRequest,
    JobNotFound,
    KeyNotFound,
    StreamNotFound,
)


class HttpError(Exception):
    """An error with its HTTP status and machine-readable code."""

    status: int = HTTPStatus.BAD_REQUEST
    code: str = "bad_request"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(HttpError):
    status, code = HTTPStatus.BAD_REQUEST, "bad_request"


class Unauthorized(HttpError):
    status, code = HTTPStatus.UNAUTHORIZED, "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, {"WWW-Authenticate": "Bearer"})


class Forbidden(HttpError):
    status, code = HTTPStatus.FORBIDDEN, "forbidden"


class NotFound(HttpError):
    status, code = HTTPStatus.NOT_FOUND, "not_found"


class StreamExists(HttpError):
    """POST /streams with an id that exists, without its key: the key is not handed out."""

    status, code = HTTPStatus.CONFLICT, "stream_exists"


class MethodNotAllowed(HttpError):
    status, code = HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed"


class PayloadTooLarge(HttpError):
    status, code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large"


class UnsupportedMediaType(HttpError):
    status, code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"


class ServerError(HttpError):
    status, code = HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error"


# impetus.core.exceptions -> (status, code). Order matters only for subclasses (none today).
IMPETUS_ERRORS: dict[type[ImpetusError], tuple[int, str]] = {
    StreamNotFound: (HTTPStatus.NOT_FOUND, "stream_not_found"),
    JobNotFound: (HTTPStatus.NOT_FOUND, "job_not_found"),
    KeyNotFound: (HTTPStatus.NOT_FOUND, "key_not_found"),
    InvalidRequest: (HTTPStatus.BAD_REQUEST, "invalid_request"),
    Conflict: (HTTPStatus.CONFLICT, "conflict"),
    ConfigError: (HTTPStatus.INTERNAL_SERVER_ERROR, "config_error"),
}


def from_impetus(exc: ImpetusError) -> tuple[int, str]:
    for cls, mapped in IMPETUS_ERRORS.items():
        if isinstance(exc, cls):
            return mapped
    return HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error"


def error_body(code: str, message: str) -> dict[str, str]:
    return {"error": code, "message": message}


def raw_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway v2 error response, for refusals made before the resolver runs."""
    return {
        "statusCode": int(status),
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(error_body(code, message)),
        "isBase64Encoded": False,
    }


def raw_error_response(error: HttpError) -> dict[str, Any]:
    return raw_response(error.status, error.code, error.message, error.headers)
