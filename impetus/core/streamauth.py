"""Stream owners: the per-stream key, the API credential and the outcome MAC.

A stream's creator gets its **stream key** once, in the answer to ``POST /streams``. The
API keeps nothing secret about it: the stream item holds a random nonce and the signing
key version it was drawn under, and the key is ``HMAC(signing key, "impetus-stream:" +
id + ":" + nonce)`` (:func:`derive_stream_key`), so the API and the nodes, who hold the
signing key, recompute it, and a stream created again under the same id gets a new
nonce: keys of the old one stop working.

From the stream key, for separate purposes (one leaked never gives another):

* :func:`api_token`: what the client sends in the ``X-Impetus-Stream-Key`` header with
  every request on the stream (reads, forks, acknowledgements, deletion...);
* :func:`outcome_mac`: what a node writes with each outcome, over :class:`OutcomeFacts`
  (stream, job, attempt, status, code, args and result digests, the error record), so
  the client knows a node wrote it for that job; the client unpickles nothing else.

Nothing here reads AWS: the API and the nodes pass the signing key in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any, Protocol

HEADER = "X-Impetus-Stream-Key"
KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")  # the stream key as the client holds it
TOKEN_PATTERN = KEY_PATTERN  # the header's value (an HMAC-SHA256, hex)
MAC_VERSION = "o1"


class KeyDeriver(Protocol):
    """The signing key's side of it (impetus.core.signing.Signer / Keyring)."""

    def derive(self, message: bytes, version: str | None = None) -> tuple[str, bytes]: ...


def new_nonce() -> str:
    return secrets.token_hex(16)


def derive_stream_key(
    signer: KeyDeriver, stream_id: str, nonce: str, version: str | None
) -> tuple[str, str]:
    """(key version used, the stream key as hex); ``version`` None: the current one."""
    used, raw = signer.derive(f"impetus-stream:{stream_id}:{nonce}".encode(), version)
    return used, raw.hex()


def _hmac(key_hex: str, purpose: str, data: bytes = b"") -> str:
    key = bytes.fromhex(key_hex)
    sub = hmac.new(key, purpose.encode(), hashlib.sha256).digest()
    return hmac.new(sub, data, hashlib.sha256).hexdigest() if data else sub.hex()


def api_token(stream_key: str) -> str:
    """The header value that proves knowledge of the stream key (not the key itself)."""
    return _hmac(stream_key, "api")


def token_matches(stream_key: str, token: Any) -> bool:
    """Whether ``token`` is this key's API token (constant time)."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        return False
    return hmac.compare_digest(api_token(stream_key).encode(), token.encode())


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def error_digest(error: Any) -> str:
    """Digest of an error record as JSON (what DynamoDB and the API hand back)."""
    if error is None:
        return ""
    text = json.dumps(error, sort_keys=True, separators=(",", ":"), default=_number)
    return sha256_hex(text)


def _number(value: Any) -> Any:
    # DynamoDB hands numbers back as Decimal; the error record's are ints.
    return int(value) if value == int(value) else float(value)


@dataclass(frozen=True)
class OutcomeFacts:
    """What an outcome's MAC covers, so that it cannot be moved to another job or changed.

    ``args_digest`` is the sha256 of the args the node verified against the job's
    signature ("" when it did not verify them: a job refused before that check, a lease
    reaped): the client unpickles args only when this or its own fork digest vouches.
    ``result_digest`` is the sha256 of the encoded result (inline, spilled or the S3
    object's bytes, whose key is ``result_ref``); ``error_digest`` that of the record.
    """

    stream: str
    job: str
    attempt: int
    status: str
    code: str
    args_digest: str
    result_digest: str
    result_ref: str
    error_digest: str

    def canonical(self) -> bytes:
        fields = dict(asdict(self), version=MAC_VERSION)
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def outcome_mac(stream_key: str, facts: OutcomeFacts) -> str:
    return f"{MAC_VERSION}:{_hmac(stream_key, 'outcome', facts.canonical())}"


def outcome_verifies(stream_key: str, facts: OutcomeFacts, mac: Any) -> bool:
    if not isinstance(mac, str):
        return False
    return hmac.compare_digest(outcome_mac(stream_key, facts).encode(), mac.encode())
