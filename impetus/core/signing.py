"""Signed job envelopes: a node runs only what the API accepted.

The API signs every job it enqueues: HMAC-SHA256, keyed by the signing key, over a
canonical envelope of everything that decides what runs and how often: the stream, the
job id, name and stage, the code digest, the args digest (and their S3 reference when
they travel through S3), the client's Python version, the attempt policy and the time
limit. Nodes
recompute the digests from the bytes they fetched and verify the signature *before
anything is unpickled*; a job that fails becomes an error record ``signature: ...``.

The signing key lives in Secrets Manager (``IMPETUS_SIGNING_SECRET``). The API Lambda and
the nodes read it with their IAM roles; it is never the authkey, never sent to clients,
never written to logs, user-data or command lines. Someone who can write the tables
directly (but not read the secret) therefore cannot make a node run their code.

**Rotation.** A signature names the secret version that made it
(``v2:<version id>:<mac>``). The API signs with the current version and looks for a new
one every ``REFRESH_SECONDS``; a node verifies with the version the signature names,
fetching a version it has not seen by its id. So putting a new secret value rotates the
key with no restart and no refused job: jobs signed before the rotation still verify
while Secrets Manager keeps their version. Fetches of unknown versions are bounded (a
version that does not exist is remembered; at most ``MAX_FETCHES_PER_MINUTE``), so jobs
forged with made-up version ids cannot flood Secrets Manager. A version that cannot be
read now (an outage, the budget spent) gives no verdict (:class:`KeyUnavailable`): the
node gives the claim back and the job waits, never refused for an outage. ``v1:<mac>``
signatures (written before versions were named) verify with the current key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from impetus.core import aws
from impetus.core.config import AwsSettings
from impetus.core.exceptions import ConfigError

VERSION = "v1"  # the MAC's format (and the canonical envelope's version field)
NAMED = "v2"  # a v1 MAC prefixed by the secret version that made it
REFRESH_SECONDS = 300.0  # how often a signer looks for a new current version
MAX_FETCHES_PER_MINUTE = 30  # fetches of versions a verifier has not seen
KNOWN_VERSIONS = 64  # keys kept per verifier (and as many unknown ids remembered)
_VERSION_ID = re.compile(r"^[A-Za-z0-9-]{32,64}$")  # Secrets Manager: 32-64 chars (a UUID)


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
    cloudpickle: str
    retries: int
    max_attempts: int
    time_limit: float | None = None  # seconds; signed only when set (older jobs have none)

    def __post_init__(self) -> None:
        # 5 and 5.0 must sign alike: DynamoDB hands numbers back as either.
        object.__setattr__(self, "time_limit", _seconds(self.time_limit))

    @classmethod
    def of_record(cls, record: Mapping[str, Any], args_digest: str | None = None) -> Envelope:
        """The signed facts of a job record (``args_digest``: recomputed by the verifier)."""
        return cls(
            stream=record["stream"],
            job=record["job"],
            name=record["name"],
            stage=record["stage"],
            code_digest=record["code"],
            args_digest=args_digest or record.get("args_digest") or sha256_hex(record["args"]),
            args_ref=record.get("args_ref") or "",
            python=record["python"],
            cloudpickle=record.get("cloudpickle") or "",
            retries=int(record["retries"]),
            max_attempts=int(record["max_attempts"]),
            time_limit=_seconds(record.get("time_limit")),
        )

    def canonical(self) -> bytes:
        fields = dict(self.__dict__, version=VERSION)
        if fields["time_limit"] is None:  # what jobs signed before time_limit existed had
            del fields["time_limit"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _seconds(value: Any) -> float | None:
    """A number of seconds as one float (DynamoDB gives ints and floats back alike)."""
    return None if value is None else float(value)


class SigningKey(Protocol):
    """What signs and verifies envelopes: one :class:`Signer` or a :class:`Keyring`."""

    def sign(self, envelope: Envelope) -> str: ...

    def verify(self, envelope: Envelope, signature: Any) -> bool: ...

    def derive(self, message: bytes, version: str | None = None) -> tuple[str, bytes]: ...


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

    def derive(self, message: bytes, version: str | None = None) -> tuple[str, bytes]:
        """("", HMAC(key, message)): a key of its own for ``message``'s purpose (stream
        keys, impetus.core.streamauth). One key has no versions: only "" (or None)."""
        if version not in (None, ""):
            raise UnknownVersion(version)
        return "", hmac.new(self._key, b"derive:" + message, hashlib.sha256).digest()

    def __repr__(self) -> str:  # never show the key
        return "Signer(<key>)"


# (version id, key) of the current version (None) or of the given one
Fetch = Callable[[str | None], tuple[str, bytes]]


class UnknownVersion(Exception):
    """The secret has no such version."""


class KeyUnavailable(Exception):
    """The key version a signature names cannot be read now (Secrets Manager unreachable,
    or the fetch budget spent): try the job again later rather than refuse it."""


class Keyring:
    """Signs with the current key version; verifies with the version a signature names.

    Thread-safe. ``fetch(None)`` returns the current (version id, key), ``fetch(id)``
    that version's, raising :class:`UnknownVersion` when there is none.
    """

    def __init__(
        self,
        fetch: Fetch,
        refresh: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, Signer] = OrderedDict()
        self._missing: OrderedDict[str, None] = OrderedDict()
        self._fetches: deque[float] = deque()
        self._current = ""
        self._checked = float("-inf")
        self._load_current()  # fails now (ConfigError) when the secret is unreadable

    def _load_current(self) -> None:
        version, key = self._fetch(None)
        self._keys[version] = Signer(key)
        self._keys.move_to_end(version)
        self._current, self._checked = version, self._clock()
        while len(self._keys) > KNOWN_VERSIONS:
            self._keys.popitem(last=False)

    def _current_signer(self) -> tuple[str, Signer]:
        with self._lock:
            if self._clock() - self._checked >= self._refresh:
                try:
                    self._load_current()
                except Exception:  # keep signing with the key we have; try again later
                    self._checked = self._clock()
            return self._current, self._keys[self._current]

    def sign(self, envelope: Envelope) -> str:
        version, signer = self._current_signer()
        return f"{NAMED}:{version}:{signer.sign(envelope)}"

    def verify(self, envelope: Envelope, signature: Any) -> bool:
        """Whether ``signature`` is this envelope's; KeyUnavailable when the key version it
        names cannot be read now (a verdict must not depend on an outage)."""
        if not isinstance(signature, str):
            return False
        if signature.startswith(f"{VERSION}:"):
            return self._current_signer()[1].verify(envelope, signature)
        named, _, rest = signature.partition(":")
        version, _, mac = rest.partition(":")
        if named != NAMED or not _VERSION_ID.match(version):
            return False
        signer = self._signer_for(version)
        return signer is not None and signer.verify(envelope, mac)

    def derive(self, message: bytes, version: str | None = None) -> tuple[str, bytes]:
        """(version, key derived from it for ``message``) with the current version (None)
        or the given one: UnknownVersion when the secret has none such, KeyUnavailable
        when it cannot be read now. Stream keys (impetus.core.streamauth) name the version
        they were drawn under, so a rotation does not change them."""
        if version is None:
            version, signer = self._current_signer()
            return version, signer.derive(message)[1]
        if not _VERSION_ID.match(version):
            raise UnknownVersion(version)
        signer = self._signer_for(version)
        if signer is None:
            raise UnknownVersion(version)
        return version, signer.derive(message)[1]

    def _signer_for(self, version: str) -> Signer | None:
        """The version's signer; None when the secret has no such version. Raises
        KeyUnavailable when it cannot be known now."""
        with self._lock:
            if version in self._keys:
                return self._keys[version]
            if version in self._missing:
                return None
            if not self._may_fetch():
                raise KeyUnavailable(f"fetch budget of {MAX_FETCHES_PER_MINUTE}/min spent")
            try:
                _, key = self._fetch(version)
            except UnknownVersion:
                self._missing[version] = None
                while len(self._missing) > KNOWN_VERSIONS:
                    self._missing.popitem(last=False)
                return None
            except Exception as exc:  # Secrets Manager unreachable: not the job's fault
                raise KeyUnavailable(f"cannot read key version {version}: {exc}") from exc
            self._keys[version] = signer = Signer(key)
            while len(self._keys) > KNOWN_VERSIONS:
                self._keys.popitem(last=False)
            return signer

    def _may_fetch(self) -> bool:
        now = self._clock()
        while self._fetches and now - self._fetches[0] >= 60.0:
            self._fetches.popleft()
        if len(self._fetches) >= MAX_FETCHES_PER_MINUTE:
            return False
        self._fetches.append(now)
        return True

    def __repr__(self) -> str:  # never show a key
        return f"Keyring(<{len(self._keys)} keys>, current={self._current})"


class KeyLoader:
    """The signing :class:`Keyring`, read from Secrets Manager on first use (thread-safe)."""

    def __init__(self, settings: AwsSettings, client: Any = None) -> None:
        self._settings = settings
        self._client = client
        self._keyring: Keyring | None = None
        self._lock = threading.Lock()

    def signer(self) -> Keyring:
        with self._lock:
            if self._keyring is None:
                self._keyring = Keyring(self._fetch)
            return self._keyring

    def _fetch(self, version: str | None) -> tuple[str, bytes]:
        client = self._client or aws.client("secretsmanager", self._settings)
        secret = self._settings.signing_secret
        request: dict[str, str] = {"SecretId": secret}
        if version is not None:
            request["VersionId"] = version
        try:
            answer = client.get_secret_value(**request)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if version is not None and code in (
                "ResourceNotFoundException",
                "InvalidRequestException",
                "ValidationException",
            ):
                raise UnknownVersion(version) from exc
            if version is not None:
                raise
            raise ConfigError(f"cannot read the signing key {secret!r}: {exc}") from exc
        return answer["VersionId"], answer["SecretString"].encode()
