"""DFS settings: which Auto Scaling group serves which node class, and the policy knobs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from impetus.core.config import (
    ENV_BOOT_SECONDS,
    ENV_DFS_BOOT_DEADLINE,
    ENV_DFS_IDLE_SECONDS,
    ENV_DFS_MIN_BILLED,
    ENV_DFS_SCALE_IN_TICKS,
    ENV_DFS_STREAM_METRICS,
    ENV_NODE_GROUPS,
    AwsSettings,
)
from impetus.core.exceptions import ConfigError
from impetus.scaler.params import (
    BOOT_DEADLINE,
    IDLE_FLOOR,
    MIN_BILLED,
    SCALE_IN_TICKS,
    PolicyParams,
)

DEFAULT_BOOT_SECONDS = 60.0
NAMESPACE = "Impetus"  # CloudWatch metric namespace


def _number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _optional_number(name: str, default: float | None, minimum: float) -> float | None:
    return _number(name, default, minimum) if os.environ.get(name) else default


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def parse_node_groups(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        groups = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{ENV_NODE_GROUPS} is not JSON: {exc}") from exc
    if not isinstance(groups, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in groups.items()
    ):
        raise ConfigError(f"{ENV_NODE_GROUPS} must be a JSON object of node class -> group")
    return groups


@dataclass(frozen=True)
class DfsSettings:
    aws: AwsSettings = field(default_factory=AwsSettings)
    node_groups: dict[str, str] = field(default_factory=dict)  # node class -> ASG name
    boot_seconds: float = DEFAULT_BOOT_SECONDS
    idle_floor: float | None = IDLE_FLOOR  # None: half the boot estimate
    min_billed: float = MIN_BILLED  # a node runs this long before it may leave
    scale_in_ticks: int = SCALE_IN_TICKS
    boot_deadline: float = BOOT_DEADLINE  # no first heartbeat by then: a failed boot
    stream_metrics: bool = False  # Backlog/Running per stream: a custom metric per stream

    @classmethod
    def from_env(cls) -> DfsSettings:
        return cls(
            aws=AwsSettings.from_env(),
            node_groups=parse_node_groups(os.environ.get(ENV_NODE_GROUPS)),
            boot_seconds=_number(ENV_BOOT_SECONDS, DEFAULT_BOOT_SECONDS, 0),
            idle_floor=_optional_number(ENV_DFS_IDLE_SECONDS, IDLE_FLOOR, 0),
            min_billed=_number(ENV_DFS_MIN_BILLED, MIN_BILLED, 0),
            scale_in_ticks=int(_number(ENV_DFS_SCALE_IN_TICKS, SCALE_IN_TICKS, 1)),
            boot_deadline=_number(ENV_DFS_BOOT_DEADLINE, BOOT_DEADLINE, 1),
            stream_metrics=_flag(ENV_DFS_STREAM_METRICS),
        )

    @property
    def params(self) -> PolicyParams:
        return PolicyParams(
            idle_floor=self.idle_floor,
            min_billed=self.min_billed,
            scale_in_ticks=self.scale_in_ticks,
            boot_deadline=self.boot_deadline,
        )
