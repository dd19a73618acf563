"""Bearer authkey check. The key lives in Secrets Manager and is cached per container."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.config import Config

from impetus.core.config import AwsSettings
from impetus.core.exceptions import ConfigError
from lambdas.api.config import AUTHKEY_MAX_AGE_SECONDS, SERVICE
from lambdas.api.exceptions import Forbidden, Unauthorized

logger = Logger(service=SERVICE, child=True)

_provider: SecretsProvider | None = None


def _secrets() -> SecretsProvider:
    """One provider per container: its cache is what makes the fetch once per TTL."""
    global _provider
    if _provider is None:
        settings = AwsSettings.from_env()
        client = boto3.client(
            "secretsmanager",
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            config=Config(retries={"mode": "standard"}),
        )
        _provider = SecretsProvider(boto3_client=client)
    return _provider


def reset_cache() -> None:
    """Forget the cached key and client (a new container, as far as auth is concerned)."""
    global _provider
    _provider = None


def authkey() -> str:
    """The expected authkey (SecretString, surrounding whitespace ignored)."""
    secret_id = AwsSettings.from_env().authkey_secret
    try:
        value = _secrets().get(secret_id, max_age=AUTHKEY_MAX_AGE_SECONDS)
    except GetParameterError as exc:
        # The error names the secret id, never its value.
        logger.error("cannot read the authkey secret", extra={"secret_id": secret_id})
        raise ConfigError("the API's authkey is not available") from exc
    key = value.strip() if isinstance(value, str) else ""
    if not key:
        raise ConfigError("the API's authkey secret is empty or not a string")
    return key


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; Unauthorized otherwise."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is None:
        raise Unauthorized("missing Authorization header (expected 'Bearer <authkey>')")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("malformed Authorization header (expected 'Bearer <authkey>')")
    return token


def check(headers: Mapping[str, str]) -> None:
    """Raise Unauthorized (no usable credentials) or Forbidden (wrong key)."""
    token = bearer_token(headers)
    # Compare bytes: compare_digest refuses non-ASCII str, and a caller controls the token.
    if not hmac.compare_digest(token.encode(), authkey().encode()):
        raise Forbidden("invalid authkey")
