"""Render the node bootstrap script (EC2 user-data) from its template.

The template (``user_data.sh``) is plain bash with ``@@NAME@@`` placeholders in one
settings block; every value is shell-quoted here, so a value (or a CDK token that
CloudFormation later replaces with a bucket name or an ARN) cannot break the script.
The systemd unit is the repository's ``node_agent/impetus-node.service``, embedded as is.

Only resource names travel in user-data: the renderer refuses the authkey and its secret
id outright, because user-data is readable by anyone who can describe the instance.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from impetus.core.config import ENV_AUTHKEY, ENV_AUTHKEY_SECRET

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "user_data.sh"
UNIT_FILE = HERE.parent / "impetus-node.service"

_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_PROPERTY_KEY = re.compile(r"^[^\s,:]+$")
_PROPERTY_VALUE = re.compile(r"^[^\s,]*$")
FORBIDDEN_ENV = frozenset({ENV_AUTHKEY, ENV_AUTHKEY_SECRET})


@dataclass(frozen=True)
class BootConfig:
    """What one node class's instances need to bootstrap themselves."""

    python_version: str  # major.minor of the clients, e.g. "3.11"
    package_source: str  # the node package: s3://bucket/key.zip on EC2; a path in the sandbox
    region: str
    environment: Mapping[str, str] = field(default_factory=dict)  # lands in node.env
    mpps: int = 2
    properties: Mapping[str, str] = field(default_factory=dict)
    grace: int = 30
    log_group: str = ""  # CloudWatch Logs group of the agent's log; "" = no shipping
    root: str = ""  # "" on EC2; the sandbox's private root in tests
    python_bin: str = ""  # "" = python<version>, installed with dnf when missing
    node_id: str = ""  # "" = the EC2 instance id
    service: Literal["systemd", "direct"] = "systemd"

    def validate(self) -> None:
        if not _PYTHON_VERSION.match(self.python_version):
            raise ValueError(f"python_version must be major.minor, got {self.python_version!r}")
        if not self.package_source:
            raise ValueError("package_source must name the node package")
        if self.mpps < 1 or self.grace < 0:
            raise ValueError("mpps must be >= 1 and grace >= 0")
        if self.service not in ("systemd", "direct"):
            raise ValueError(f"service must be systemd or direct, got {self.service!r}")
        for name, value in self.environment.items():
            if name in FORBIDDEN_ENV:
                raise ValueError(f"{name} must never reach a node's user-data")
            if not _ENV_NAME.match(name) or "\n" in value:
                raise ValueError(f"bad node environment entry {name!r}")
        for key, value in self.properties.items():
            if not _PROPERTY_KEY.match(key) or not _PROPERTY_VALUE.match(value):
                raise ValueError(f"bad node property {key!r}: no spaces, commas or ':' in keys")

    def agent_args(self) -> str:
        """``impetus-node`` arguments besides node id and grace (the script adds those)."""
        args = f"--mpps {self.mpps}"
        if self.properties:
            args += " --properties " + ",".join(f"{k}:{v}" for k, v in self.properties.items())
        return args


def unit_text() -> str:
    return UNIT_FILE.read_text().rstrip("\n")


def render(config: BootConfig) -> str:
    """The complete user-data script for ``config``."""
    config.validate()
    values = {
        "ROOT": config.root,
        "PYTHON_VERSION": config.python_version,
        "PYTHON_BIN": config.python_bin,
        "PACKAGE_SOURCE": config.package_source,
        "REGION": config.region,
        "NODE_ID": config.node_id,
        "AGENT_ARGS": config.agent_args(),
        "GRACE": str(config.grace),
        "LOG_GROUP": config.log_group,
        "SERVICE": config.service,
        "NODE_ENV": "\n".join(f"{k}={v}" for k, v in sorted(config.environment.items())),
    }
    quoted = {name: shlex.quote(value) for name, value in values.items()}
    quoted["UNIT"] = unit_text()  # inside a quoted heredoc: taken literally

    def fill(match: re.Match[str]) -> str:
        return quoted[match.group(1)]

    return _PLACEHOLDER.sub(fill, TEMPLATE.read_text())
