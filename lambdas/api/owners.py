"""Stream owners at the API: every request on a stream carries its key's token.

A stream's creator got its key once (``POST /streams``); each request on the stream
sends ``X-Impetus-Stream-Key: <token>`` (impetus.core.streamauth.api_token). The API keeps
nothing secret per stream: it recomputes the key from the stream item's nonce and the
signing key, and compares the token in constant time. No such stream: 404 (ids are no
secret: the listing shows them); no header: 401; a wrong one (or a stream from before
owners, which has no key): 403. Each with an {error, message} body.
"""

from __future__ import annotations

from collections.abc import Mapping

from impetus.core import streamauth
from impetus.storage.queue import Queue
from lambdas.api.exceptions import Forbidden, HttpError

HEADER = streamauth.HEADER.lower()


class StreamKeyRequired(HttpError):
    status, code = 401, "stream_key_required"


def token_of(headers: Mapping[str, str]) -> str | None:
    """The stream-key header's value (names compared case-insensitively), if any."""
    return next((v.strip() for k, v in headers.items() if k.lower() == HEADER), None)


def check(queue: Queue, stream_id: str, headers: Mapping[str, str]) -> None:
    """Raise unless the request proves it holds ``stream_id``'s key (404: no stream)."""
    key = queue.stream_key(stream_id)  # StreamNotFound -> 404 (the listing shows ids)
    token = token_of(headers)
    if not token:
        raise StreamKeyRequired(
            f"stream {stream_id!r} needs its key: send {streamauth.HEADER}: <token>"
        )
    if key is None:
        raise Forbidden(f"stream {stream_id!r} has no owner key (it predates stream keys)")
    if not streamauth.token_matches(key, token):
        raise Forbidden(f"wrong key for stream {stream_id!r} (created by another client?)")


def holds_key(queue: Queue, stream_id: str, headers: Mapping[str, str]) -> bool:
    """Whether the request carries the right token for an existing stream."""
    try:
        check(queue, stream_id, headers)
    except HttpError:
        return False
    return True
