"""Checking S3 presigned URLs' signatures, which moto's IAM enforcement does not do.

moto authenticates a request by its ``Authorization`` header only; a presigned URL
carries its signature in the query string instead (SigV2: ``AWSAccessKeyId``,
``Expires``, ``Signature``; SigV4: ``X-Amz-Credential``, ``X-Amz-Date``,
``X-Amz-Expires``, ``X-Amz-SignedHeaders``, ``X-Amz-Signature``), and with enforcement on
moto fails on it. :func:`verify` recomputes the signature with botocore's signers and the
key's secret, and checks the expiry, as S3 does.
"""

from __future__ import annotations

import calendar
import hmac
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from botocore.auth import HmacV1QueryAuth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"


class PresignError(Exception):
    """The URL's signature is missing, wrong or expired (the message says which)."""


def access_key_id(query: Mapping[str, str]) -> str | None:
    """The access key a presigned URL claims to be signed with (None: not presigned)."""
    if "X-Amz-Credential" in query:
        return query["X-Amz-Credential"].split("/", 1)[0]
    return query.get("AWSAccessKeyId")


def verify(
    method: str,
    url: str,
    headers: Mapping[str, str],
    secret_for: Callable[[str], str],
    now: float | None = None,
) -> str:
    """Check a presigned request; returns its access key id. ``secret_for(key id)``
    returns that key's secret (or raises PresignError for an unknown key)."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    key_id = access_key_id(query)
    if not key_id:
        raise PresignError("the request carries no signature")
    secret = secret_for(key_id)
    now = time.time() if now is None else now
    if "X-Amz-Signature" in query:
        expected, expires = _sigv4(method, url, headers, query, Credentials(key_id, secret))
        given = query["X-Amz-Signature"]
    else:
        expected = _sigv2(method, url, headers, query, Credentials(key_id, secret))
        given, expires = query.get("Signature", ""), float(query.get("Expires") or 0)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise PresignError("the signature does not match")
    if now > expires:
        raise PresignError("the URL has expired")
    return key_id


def _sigv2(
    method: str, url: str, headers: Mapping[str, str], query: Mapping[str, str], creds: Credentials
) -> str:
    signer = _SigV2(creds, query.get("Expires", ""))
    http_headers = HTTPHeaders()
    for name, value in headers.items():
        http_headers[name] = value
    return signer.get_signature(method, urlsplit(url), http_headers)


def _sigv4(
    method: str, url: str, headers: Mapping[str, str], query: Mapping[str, str], creds: Credentials
) -> tuple[str, float]:
    if query.get("X-Amz-Algorithm") != SIGV4_ALGORITHM:
        raise PresignError("unsupported signing algorithm")
    _, _, region, service, _ = (query["X-Amz-Credential"].split("/") + [""] * 5)[:5]
    expires_in = int(query.get("X-Amz-Expires") or 0)
    signed = {h for h in query.get("X-Amz-SignedHeaders", "").split(";") if h}
    split = urlsplit(url)
    unsigned_query = [
        (k, v) for k, v in parse_qsl(split.query, keep_blank_values=True) if k != "X-Amz-Signature"
    ]
    request = AWSRequest(
        method=method,
        url=urlunsplit(split._replace(query=urlencode(unsigned_query))),
        headers={k: v for k, v in headers.items() if k.lower() in signed},
    )
    timestamp = query.get("X-Amz-Date", "")
    request.context["timestamp"] = timestamp
    signer = S3SigV4QueryAuth(creds, service, region, expires=expires_in)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    try:
        signed_at = calendar.timegm(time.strptime(timestamp, "%Y%m%dT%H%M%SZ"))
    except ValueError as exc:
        raise PresignError("malformed X-Amz-Date") from exc
    return signature, signed_at + expires_in


class _SigV2(HmacV1QueryAuth):
    """botocore's SigV2 query signer, with the URL's own expiry in place of now + n."""

    def __init__(self, credentials: Credentials, expires: str) -> None:
        super().__init__(credentials, expires=0)
        self._given_expires = expires

    def _get_date(self) -> str:
        return self._given_expires
