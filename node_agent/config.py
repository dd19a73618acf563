"""Node agent settings: defaults, then the environment, then command-line overrides."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from impetus.core.config import (
    ENV_IMDS_POLL,
    ENV_IMDS_URL,
    ENV_WORKER_ENV,
    ENV_WORKER_USER,
    AwsSettings,
    impetus_home,
)
from impetus.core.exceptions import ConfigError

DEFAULT_MPPS = 2
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_HEARTBEAT_INTERVAL = 5.0
# While holding nothing (no lease to renew) a node beats only for DFS to know it is alive:
# 10,000 idle nodes then write 182 items/s, $0.41 an hour (docs/architecture.md, "What an
# idle fleet costs"). Under DFS's 60 s stale-heartbeat rule (impetus.scaler.policy), so
# an idle node stays a scale-in candidate between beats.
DEFAULT_IDLE_HEARTBEAT_INTERVAL = 55.0
DEFAULT_LEASE = 60.0
DEFAULT_GRACE = 30.0
DEFAULT_IMDS_POLL = 5.0  # s: what AWS recommends for the Spot interruption notice


def default_node_dir() -> Path:
    return impetus_home() / "node"


def default_node_id() -> str:
    """``<hostname>-<pid>``: unique per running agent (call after daemonizing)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def parse_properties(text: str | None) -> dict[str, str]:
    """``k:v,k2:v2`` -> {"k": "v", "k2": "v2"}. Values may contain ':' after the first."""
    result: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"bad property filter {part!r}: expected key:value")
        result[key.strip()] = value.strip()
    return result


def parse_names(text: str | None) -> tuple[str, ...]:
    """``A,B`` -> ("A", "B")."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {text!r}") from None


@dataclass(frozen=True)
class NodeSettings:
    """Everything the agent needs to run; ``node_id`` empty means "resolve at start"."""

    node_id: str = ""
    mpps: int = DEFAULT_MPPS
    properties: dict[str, str] = field(default_factory=dict)
    poll_interval: float = DEFAULT_POLL_INTERVAL
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    # Holding nothing (never below heartbeat_interval: the longer one wins).
    idle_heartbeat_interval: float = DEFAULT_IDLE_HEARTBEAT_INTERVAL
    lease: float = DEFAULT_LEASE
    grace: float = DEFAULT_GRACE
    logdir: Path | None = None
    piddir: Path = field(default_factory=default_node_dir)
    aws: AwsSettings = field(default_factory=AwsSettings)
    worker_user: str | None = None  # the OS user workers run as (None: the agent's)
    worker_env: tuple[str, ...] = ()  # variables workers get besides the harmless ones
    imds_url: str = ""  # the metadata service watched for Spot interruptions ("": none)
    imds_poll: float = DEFAULT_IMDS_POLL

    @classmethod
    def from_env(cls, **overrides: Any) -> NodeSettings:
        """AWS resources from the environment; ``None`` overrides are ignored."""
        base = cls(
            aws=AwsSettings.from_env(),
            worker_user=os.environ.get(ENV_WORKER_USER) or None,
            worker_env=parse_names(os.environ.get(ENV_WORKER_ENV)),
            imds_url=os.environ.get(ENV_IMDS_URL, ""),
            imds_poll=_seconds(ENV_IMDS_POLL, DEFAULT_IMDS_POLL),
        )
        return base.with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> NodeSettings:
        given = {k: v for k, v in overrides.items() if v is not None}
        settings = replace(self, **given)
        settings.validate()
        return settings

    def resolved(self) -> NodeSettings:
        """A copy with ``node_id`` filled in (hostname-pid unless given)."""
        return self if self.node_id else replace(self, node_id=default_node_id())

    def validate(self) -> None:
        if self.mpps < 1:
            raise ConfigError(f"mpps must be at least 1, got {self.mpps}")
        names = ("poll_interval", "heartbeat_interval", "idle_heartbeat_interval", "lease")
        for name in (*names, "imds_poll"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.grace < 0:
            raise ConfigError(f"grace must be >= 0, got {self.grace}")
        if self.lease < 2 * self.heartbeat_interval:
            raise ConfigError("lease must be at least twice the heartbeat interval")
