"""IAM enforcement in the local moto server: who may call it, and what moto can check.

:func:`enable` runs in the moto server's process before it listens. It creates the
bootstrap identity (IAM user ``impetus-admin``, allowed everything: it is the stack's
owner, the account root of the local "AWS") with a fresh key, and turns moto's
enforcement on from the first request (``INITIAL_NO_AUTH_ACTION_COUNT`` = 0; moto's
documented way leaves the first N requests unauthenticated to create that user over
HTTP, a window any local user could use). The supervisor then creates one user per
component with that key (impetus.local.iam).

What moto evaluates (moto 5.2.6, ``moto/core/authorization.py`` and
``moto/iam/access_control.py``), and what this module adds:

- The SigV4 ``Authorization`` header: the access key must be an IAM user's and the
  signature must match; otherwise 403 (InvalidClientTokenId, SignatureDoesNotMatch).
- Actions: every request names one action (``dynamodb:GetItem``), which the user's
  policies must allow; an explicit Deny wins.
- Resources: only S3 (``arn:aws:s3:::bucket/key``) and IAM, STS, SQS name the resource
  of a request; every other service is checked against resource ``*``, which a
  statement scoped to ARNs never matches. Added here: Secrets Manager requests name
  their secret's ARN (:func:`_secret_resource`), so a policy can tell the authkey
  from the signing key.
- Conditions: moto evaluates none (it has no request context): a statement with a
  Condition is treated as a Deny of its actions.
- Presigned S3 URLs: moto does not check their signature (and with enforcement on it
  fails on them); :func:`_s3_authorize` checks it (impetus.local.presigned) and then
  the signer's policies, as S3 does.

And in front of moto, :class:`AuthGate`: requests that carry no signature at all, and
moto's control API (``/moto-api/``: reset, reset-auth, data.json, which would dump or
unlock everything), are refused before moto sees them.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable, Iterable
from typing import Any

from impetus.local import presigned

ADMIN_USER = "impetus-admin"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
ACCOUNT = "123456789012"  # moto's default account
PARTITION = "aws"
_KEY_ALPHABET = string.ascii_letters + string.digits + "+/"
_installed = False


def enable(region: str) -> tuple[str, str]:
    """Install the checks, create the admin user and turn enforcement on; returns the
    admin's (access key id, secret access key). Call before the server listens."""
    from moto import settings
    from moto.iam.models import iam_backends

    _install()
    backend = iam_backends[ACCOUNT][PARTITION]
    backend.create_user(region, ADMIN_USER)
    backend.put_user_policy(ADMIN_USER, "admin", json.dumps(ADMIN_POLICY))
    key = backend.create_access_key(ADMIN_USER)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    return key.access_key_id, key.secret_access_key


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    import moto.iam.models as iam_models
    from moto.s3.responses import S3Response
    from moto.secretsmanager.responses import SecretsManagerResponse

    # moto draws secret keys from Python's Mersenne Twister, whose outputs also show in
    # request ids; secret keys come from the OS's CSPRNG instead.
    iam_models.random_alphanumeric = _secret_key  # type: ignore[attr-defined]
    SecretsManagerResponse._determine_resource = _secret_resource  # type: ignore[attr-defined]
    original = S3Response._authenticate_and_authorize_s3_action
    S3Response._authenticate_and_authorize_s3_action = _s3_authorize(original)  # type: ignore[method-assign]


def _secret_key(length: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


def _secret_resource(self: Any) -> str:
    """The ARN of the secret a Secrets Manager request names ("*" if none)."""
    from moto.secretsmanager.models import secretsmanager_backends

    secret_id = self._get_param("SecretId")
    if not isinstance(secret_id, str) or not secret_id:
        return "*"
    if secret_id.startswith("arn:"):
        return secret_id
    found = secretsmanager_backends[self.current_account][self.region].secrets.get(secret_id)
    prefix = f"arn:{PARTITION}:secretsmanager:{self.region}:{self.current_account}:secret:"
    return found.arn if found is not None else f"{prefix}{secret_id}"


def _s3_authorize(original: Callable[..., None]) -> Callable[..., None]:
    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        if "Authorization" in self.headers or not _enforcing():
            return original(self, bucket_name, key_name)
        _authorize_presigned(self, bucket_name, key_name)

    return authorize


def _enforcing() -> bool:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def _authorize_presigned(response: Any, bucket_name: str | None, key_name: str | None) -> None:
    from moto.iam.access_control import IAMPolicy, IAMUserAccessKey, PermissionResult
    from moto.s3.exceptions import S3AccessDeniedError

    users: dict[str, IAMUserAccessKey] = {}

    def secret_for(key_id: str) -> str:
        try:
            users[key_id] = IAMUserAccessKey(ACCOUNT, PARTITION, key_id, headers={})
        except Exception as exc:  # moto's CreateAccessKeyFailure: no such key
            raise presigned.PresignError("unknown access key") from exc
        return users[key_id].create_credentials().secret_key

    try:
        key_id = presigned.verify(response.method, response.uri, response.headers, secret_for)
    except presigned.PresignError as exc:
        raise S3AccessDeniedError() from exc
    path = f"{bucket_name or '*'}/{key_name}" if key_name else (bucket_name or "*")
    resource, action = f"arn:{PARTITION}:s3:::{path}", f"s3:{response._get_action()}"
    results = [
        IAMPolicy(p).is_action_permitted(action, resource) for p in users[key_id].collect_policies()
    ]
    if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
        raise S3AccessDeniedError()


# --- the gate in front of moto ------------------------------------------------------------------
REFUSED_BODY = (
    b'{"__type":"MissingAuthenticationTokenException",'
    b'"message":"the local stack accepts signed AWS requests only"}'
)


class AuthGate:
    """WSGI wrapper: refuses unsigned requests and moto's control API."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self.refused = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if _is_control(environ) or not _is_signed(environ):
            self.refused += 1
            start_response("403 Forbidden", [("Content-Type", "application/x-amz-json-1.0")])
            return [REFUSED_BODY]
        return self._app(environ, start_response)


def _is_control(environ: dict[str, Any]) -> bool:
    return environ.get("PATH_INFO", "").lower().startswith("/moto-api")


def _is_signed(environ: dict[str, Any]) -> bool:
    if environ.get("HTTP_AUTHORIZATION"):
        return True
    query = environ.get("QUERY_STRING", "")
    return "X-Amz-Signature=" in query or "Signature=" in query
