"""Settings, and every environment variable Impetus reads, in one place.

Resolution order everywhere: explicit argument > environment > config files > default.
The client's config files: ``config.json`` (written by ``impetus config from-stack``
for a deployed stack), then the local stack's ``local.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impetus.core.exceptions import ConfigError

# --- environment variable names (the only place they are spelled) -------------------------
ENV_API_URL = "IMPETUS_API_URL"
ENV_AUTHKEY = "IMPETUS_AUTHKEY"
ENV_HOME = "IMPETUS_HOME"
ENV_TABLE_PREFIX = "IMPETUS_TABLE_PREFIX"
ENV_TABLES = "IMPETUS_TABLES"
ENV_AUTHKEY_SECRET = "IMPETUS_AUTHKEY_SECRET"
ENV_SIGNING_SECRET = "IMPETUS_SIGNING_SECRET"
ENV_BUCKET = "IMPETUS_BUCKET"
ENV_DFS_FUNCTION = "IMPETUS_DFS_FUNCTION"
ENV_NODE_GROUPS = "IMPETUS_NODE_GROUPS"
ENV_REGION = "AWS_DEFAULT_REGION"
ENV_ENDPOINT = "AWS_ENDPOINT_URL"
ENV_BOOT_SECONDS = "IMPETUS_BOOT_SECONDS"
ENV_DFS_IDLE_SECONDS = "IMPETUS_DFS_IDLE_SECONDS"
ENV_DFS_SCALE_IN_TICKS = "IMPETUS_DFS_SCALE_IN_TICKS"
ENV_DFS_MIN_BILLED = "IMPETUS_DFS_MIN_BILLED_SECONDS"
ENV_DFS_BOOT_DEADLINE = "IMPETUS_DFS_BOOT_DEADLINE"
ENV_DFS_STREAM_METRICS = "IMPETUS_DFS_STREAM_METRICS"
ENV_INSTANCE_ID = "IMPETUS_INSTANCE_ID"
ENV_SHOW_OUTPUT = "IMPETUS_SHOW_OUTPUT"
ENV_LOG_GROUP = "IMPETUS_LOG_GROUP"
ENV_WORKER_USER = "IMPETUS_WORKER_USER"
ENV_WORKER_ENV = "IMPETUS_WORKER_ENV"
ENV_IMDS_URL = "IMPETUS_IMDS_URL"
ENV_IMDS_POLL = "IMPETUS_IMDS_POLL"

DEFAULT_REGION = "us-east-1"
DEFAULT_TABLE_PREFIX = "impetus"
DEFAULT_AUTHKEY_SECRET = "impetus/authkey"
DEFAULT_SIGNING_SECRET = "impetus/signing-key"

ENVIRONMENT_VARIABLES: dict[str, str] = {
    ENV_API_URL: "URL of the Impetus HTTP API (client, CLI).",
    ENV_AUTHKEY: "Bearer authkey for the API (client, CLI).",
    ENV_HOME: "Directory of the local stack's state and settings (default ~/.impetus).",
    ENV_TABLE_PREFIX: "Prefix of the DynamoDB table names (default 'impetus').",
    ENV_TABLES: (
        "Physical names of the DynamoDB tables, 'streams=NAME,queue=NAME,...' (a deployed "
        "stack's, which CloudFormation names; its Tables output); overrides the prefix."
    ),
    ENV_AUTHKEY_SECRET: "Secrets Manager id of the API authkey (API Lambda and its authorizer).",
    ENV_SIGNING_SECRET: "Secrets Manager id of the job signing key (API Lambda, nodes).",
    ENV_BUCKET: "S3 bucket for large payloads.",
    ENV_REGION: "AWS region (default us-east-1).",
    ENV_ENDPOINT: "AWS endpoint override; the local stack points it at its moto server.",
    ENV_NODE_GROUPS: (
        "DFS: JSON object {node_class: Auto Scaling group name}; streams without a "
        "node_class are served by class 'default'."
    ),
    ENV_BOOT_SECONDS: "DFS: estimated seconds from launch to a working node (default 60).",
    ENV_DFS_FUNCTION: (
        "API Lambda: name of the DFS Lambda, invoked asynchronously when a stream goes "
        "from empty to non-empty (unset: no nudge)."
    ),
    ENV_DFS_IDLE_SECONDS: (
        "DFS: seconds a node must be idle before it may be scaled in (default: half of "
        "IMPETUS_BOOT_SECONDS; the local stack shortens it)."
    ),
    ENV_DFS_MIN_BILLED: (
        "DFS: seconds a node must have run before it may be scaled in: EC2's billing "
        "minimum (default 60; the local stack, which bills nothing, sets 0)."
    ),
    ENV_DFS_SCALE_IN_TICKS: "DFS: consecutive ticks that must agree on a scale-in (default 3).",
    ENV_DFS_BOOT_DEADLINE: (
        "DFS: seconds an in-service instance may go without its first heartbeat before "
        "it is terminated as a failed boot (default 600)."
    ),
    ENV_DFS_STREAM_METRICS: (
        "DFS: 1 publishes Backlog and Running per stream (a custom metric per stream; "
        "default 0: fleet and node-class metrics only)."
    ),
    ENV_INSTANCE_ID: (
        "Node agent: the EC2 instance id it runs on (scale-in protection, lifecycle hook); "
        "also taken from a node id that starts with 'i-'."
    ),
    ENV_SHOW_OUTPUT: "0 stops the client printing its jobs' output (default 1: shown, "
    "each line prefixed with the job id); Impetus.run(output=...) overrides it.",
    ENV_LOG_GROUP: "CloudWatch Logs group that nodes also send jobs' output to (one log "
    "stream per stream and worker); unset: not sent.",
    ENV_WORKER_USER: "Node agent: the OS user its workers run as (needs root; the AWS "
    "user-data sets one); unset: the agent's own user.",
    ENV_WORKER_ENV: "Node agent: comma-separated names of environment variables its workers "
    "get besides the harmless defaults (workers never get the agent's credentials).",
    ENV_IMDS_URL: "Node agent: base URL of the EC2 instance metadata service it watches for "
    "Spot interruption notices and rebalance recommendations (the user-data of node classes "
    "with Spot sets http://169.254.169.254); unset: not watched.",
    ENV_IMDS_POLL: "Node agent: seconds between two looks at the metadata service (default 5, "
    "as AWS recommends).",
}

_FALSE = ("0", "false", "no", "off")


def parse_tables(raw: str | None) -> dict[str, str]:
    """``streams=NAME,queue=NAME`` -> {"streams": NAME, ...} (the format of ENV_TABLES).

    Not JSON: the value also lands in the nodes' systemd EnvironmentFile, where quotes
    are not kept; table names never hold ',' or '=' (they are [a-zA-Z0-9_.-]).
    """
    tables = {}
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        name, sep, physical = entry.strip().partition("=")
        if not sep or not name or not physical:
            raise ConfigError(f"{ENV_TABLES}: expected name=table, got {entry.strip()!r}")
        tables[name] = physical
    return tables


def format_tables(tables: Mapping[str, str]) -> str:
    """The inverse of :func:`parse_tables` (values may be CDK tokens)."""
    return ",".join(f"{name}={physical}" for name, physical in tables.items())


def impetus_home() -> Path:
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".impetus")


def tasks_root() -> Path:
    """Where a pipeline app writes its task files by default: ``<this>/<stream id>/``
    (kept out of the working directory; ``Impetus(taskdir=...)`` picks another)."""
    return impetus_home() / "tasks"


def local_settings_path() -> Path:
    return impetus_home() / "local.json"


def deployed_settings_path() -> Path:
    return impetus_home() / "config.json"


def read_local_settings() -> dict[str, Any]:
    """The local stack's connection settings, or {} when no stack is up."""
    return _read_settings(local_settings_path())


def read_deployed_settings() -> dict[str, Any]:
    """A deployed stack's settings (``impetus config from-stack``), or {} when none."""
    return _read_settings(deployed_settings_path())


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read settings {path}: {exc}") from exc


@dataclass(frozen=True)
class ClientSettings:
    """Where the client finds the API and how it authenticates."""

    api_url: str
    authkey: str = field(repr=False)

    @classmethod
    def resolve(cls, api_url: str | None = None, authkey: str | None = None) -> ClientSettings:
        url = api_url or os.environ.get(ENV_API_URL)
        key = authkey or os.environ.get(ENV_AUTHKEY)
        for read in (read_deployed_settings, read_local_settings):
            if url and key:
                break
            found = read()
            url = url or found.get("api_url")
            key = key or found.get("authkey")
        if not url or not key:
            raise ConfigError(
                "no Impetus API configured: pass address/authkey, set "
                f"{ENV_API_URL} and {ENV_AUTHKEY}, run `impetus config from-stack STACK`, "
                "or run `impetus local up`"
            )
        return cls(api_url=url.rstrip("/"), authkey=key)


@dataclass(frozen=True)
class AwsSettings:
    """Where the server side (API Lambda, DFS, node agents) finds its AWS resources."""

    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    table_prefix: str = DEFAULT_TABLE_PREFIX
    # logical table name -> physical name; empty: every table is "<table_prefix>-<name>"
    tables: Mapping[str, str] = field(default_factory=dict)
    authkey_secret: str = DEFAULT_AUTHKEY_SECRET
    signing_secret: str = DEFAULT_SIGNING_SECRET
    bucket: str | None = None

    @classmethod
    def from_env(cls) -> AwsSettings:
        env = os.environ
        return cls(
            region=env.get(ENV_REGION) or env.get("AWS_REGION") or DEFAULT_REGION,
            endpoint_url=env.get(ENV_ENDPOINT) or None,
            table_prefix=env.get(ENV_TABLE_PREFIX) or DEFAULT_TABLE_PREFIX,
            tables=parse_tables(env.get(ENV_TABLES)),
            authkey_secret=env.get(ENV_AUTHKEY_SECRET) or DEFAULT_AUTHKEY_SECRET,
            signing_secret=env.get(ENV_SIGNING_SECRET) or DEFAULT_SIGNING_SECRET,
            bucket=env.get(ENV_BUCKET) or None,
        )


@dataclass(frozen=True)
class DisplaySettings:
    """What the client prints while it runs."""

    show_output: bool = True  # jobs' captured stdout/stderr/logging, prefixed by job id

    @classmethod
    def from_env(cls) -> DisplaySettings:
        value = os.environ.get(ENV_SHOW_OUTPUT, "").strip().lower()
        return cls(show_output=value not in _FALSE)
