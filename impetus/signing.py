"""Signed job envelopes: a node runs only what the API accepted.

The API signs every job it enqueues: HMAC-SHA256, keyed by the signing key, over a
canonical envelope of everything that decides what runs and how often: the stream, the
job id, name and stage, the code digest, the args digest (and their S3 reference when
they travel through S3), the client's Python version and the attempt policy. Nodes
recompute the digests from the bytes they fetched and verify the signature *before
anything is unpickled*; a job that fails becomes an error record ``signature: ...``.

The signing key lives in Secrets Manager (``IMPETUS_SIGNING_SECRET``). The API Lambda and
the nodes read it with their IAM roles; it is never the authkey, never sent to clients,
never written to logs, user-data or command lines. Someone who can write the tables
directly (but not read the secret) therefore cannot make a node run their code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from typing import Any

from impetus import aws
from impetus.config import AwsSettings
from impetus.exceptions import ConfigError

VERSION = "v1"


def sha256_hex(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Envelope:
    """The signed facts of one job (see the module docstring for why each is here)."""

    stream: str
    job: str
    name: str
    stage: str
    code_digest: str
    args_digest: str
    args_ref: str  # "" when the args travel inline
    python: str
    retries: int
    max_attempts: int

    def canonical(self) -> bytes:
        fields = dict(self.__dict__, version=VERSION)
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


class Signer:
    """Signs and verifies envelopes with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError("the signing key must be at least 16 bytes")
        self._key = key

    def sign(self, envelope: Envelope) -> str:
        mac = hmac.new(self._key, envelope.canonical(), hashlib.sha256).hexdigest()
        return f"{VERSION}:{mac}"

    def verify(self, envelope: Envelope, signature: Any) -> bool:
        if not isinstance(signature, str):
            return False
        return hmac.compare_digest(self.sign(envelope), signature)

    def __repr__(self) -> str:  # never show the key
        return "Signer(<key>)"


class KeyLoader:
    """Reads the signing key from Secrets Manager once, then keeps it (thread-safe)."""

    def __init__(self, settings: AwsSettings, client: Any = None) -> None:
        self._settings = settings
        self._client = client
        self._signer: Signer | None = None
        self._lock = threading.Lock()

    def signer(self) -> Signer:
        with self._lock:
            if self._signer is None:
                client = self._client or aws.client("secretsmanager", self._settings)
                secret = self._settings.signing_secret
                try:
                    value = client.get_secret_value(SecretId=secret)["SecretString"]
                except Exception as exc:
                    raise ConfigError(f"cannot read the signing key {secret!r}: {exc}") from exc
                self._signer = Signer(value.encode())
            return self._signer
