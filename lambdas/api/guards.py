"""Checks on the raw request that run before routing: body encoding, size, media type.

The resolver parses bodies lazily; these checks make sure it only ever sees a UTF-8 JSON
text no larger than the Lambda payload limit, so bad input cannot surface as a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

from lambdas.api.config import MAX_BODY_BYTES
from lambdas.api.exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def method_of(event: Mapping[str, Any]) -> str:
    return str(event.get("requestContext", {}).get("http", {}).get("method", "")).upper()


def header(event: Mapping[str, Any], name: str) -> str | None:
    """Header lookup that does not trust the gateway to have lower-cased the names."""
    headers = event.get("headers") or {}
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"request body exceeds {MAX_BODY_BYTES} bytes")


def _body_bytes(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        # Base64 is 4/3 of the raw size: refuse hopeless bodies before decoding them.
        if len(body) > (MAX_BODY_BYTES // 3 + 1) * 4:
            raise _too_large()
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("request body is not valid base64") from exc
    else:
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large()
    return raw


def _check_media_type(event: Mapping[str, Any]) -> None:
    content_type = header(event, "content-type")
    if content_type is None:
        return  # JSON is the only thing we speak; a missing header is not worth a refusal
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json":  # the resolver parses nothing else as JSON
        raise UnsupportedMediaType(f"content type must be application/json, not {media!r}")


def normalize_body(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the event whose body is UTF-8 JSON text, not base64, declared as
    application/json. An absent body stays empty: routing answers first (404, 405), then
    validation refuses it (every route that takes a body requires one, ``{}`` for
    defaults, as the OpenAPI description says)."""
    out = dict(event)
    if method_of(event) not in BODY_METHODS:
        return out
    raw = _body_bytes(event)
    if raw:
        _check_media_type(event)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not UTF-8 text") from exc
    out["body"] = text
    out["isBase64Encoded"] = False
    # Checked above; the resolver compares media types case-sensitively, so say it plainly.
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    out["headers"] = {**headers, "content-type": "application/json"}
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def loads(text: str) -> Any:
    """Strict JSON: no NaN/Infinity, and any parse failure is a JSONDecodeError.

    The resolver turns JSONDecodeError into a validation error; anything else would be a 500.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise json.JSONDecodeError(str(exc) or type(exc).__name__, text, 0) from exc
