"""What the API's routes declare: the OpenAPI document's header, the path and query
parameters, and the answers each route documents besides success."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from impetus.core import keys, streamauth
from lambdas.api import models, pages
from lambdas.api.config import JOB_ID_PATTERN, STREAM_ID_PATTERN
from lambdas.api.exceptions import BadRequest

OPENAPI = {
    "title": "Impetus API",
    "version": "1",
    "description": "Streams, jobs, results and stores of Impetus. Errors: {error, message}.",
    "security_schemes": {
        "bearer": HTTPBearer(description="Authorization: Bearer <authkey>"),
        "streamKey": APIKey(
            name=streamauth.HEADER,
            in_=APIKeyIn.header,
            description="the stream key's token (see docs/http-api.md#stream-keys); "
            "every route on one stream needs it",
        ),
    },
    "security": [{"bearer": []}],
}
OWNED = [{"bearer": [], "streamKey": []}]  # the routes on one stream


# --- path parameters ------------------------------------------------------------------------
StreamIdPath = Annotated[str, Path(pattern=STREAM_ID_PATTERN, description="stream id")]
JobIdPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="job id")]
HolderPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="lease holder id")]
KeyPath = Annotated[str, Path(description="store key, percent-encoded")]
AfterQuery = Annotated[
    str | None,
    Query(max_length=pages.MAX_CURSOR_CHARS, description="the `next` of the previous page"),
]


def store_key(raw: str) -> str:
    try:
        key = unquote(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadRequest("store key is not percent-encoded UTF-8") from exc
    return keys.check_store_key(key)  # InvalidRequest -> 400


def answers(model: type, description: str, created: str | None = None) -> dict[int, Any]:
    """OpenAPI ``responses`` of a route (documentation only; answers are not re-validated)."""
    doc = {200: {"description": description, "content": {"application/json": {"model": model}}}}
    if created:
        doc[201] = {"description": created, "content": {"application/json": {"model": model}}}
    for status, why in ERROR_STATUSES.items():
        model = models.AuthError if status in AUTH_STATUSES else models.Error
        doc[status] = {"description": why, "content": {"application/json": {"model": model}}}
    return doc


# What any route may answer besides success (every one with an Error body, but the auth
# refusals that API Gateway's authorizer answers on AWS: see models.AuthError).
AUTH_STATUSES = (401, 403)
ERROR_STATUSES = {
    400: "bad input",
    401: "no Authorization header (on AWS: API Gateway's body, no error code); no stream "
    "key header (a stream's routes)",
    403: "wrong authkey or malformed header (on AWS: API Gateway's body, no error code); "
    "wrong stream key",
    404: "unknown stream, job, key or route",
    409: "a change the resource cannot take (a stream's shards; its collector lease; "
    "creating an id that exists without its key)",
    413: "body or payload too large",
    415: "body is not JSON",
}
