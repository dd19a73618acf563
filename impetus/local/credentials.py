"""The local stack's AWS credentials: one IAM user and key per identity, each in its own
shared-credentials file under ``IMPETUS_HOME/local/credentials/`` (directory 0700, files
0600).

Identities: ``admin`` (the stack itself: provisioning, the fleet reconciler, the
``impetus local`` and ``impetus dfs`` commands, tests), and one per component (``api``,
``dfs``, ``node``) whose policy is rendered from impetus.core.grants by
impetus.local.iam. A process gets its identity as ``AWS_SHARED_CREDENTIALS_FILE`` +
``AWS_PROFILE`` (:func:`environment`), never as keys on a command line or in the
environment; in-process users get a boto3 session (:func:`session`).
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session

from impetus.local import state

ADMIN = "admin"
PROFILE_PREFIX = "impetus-"
# Credential variables that would override a profile: boto3 reads them first.
KEY_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)


def credentials_dir(home: Path | None = None) -> Path:
    """The directory of the stack under ``home`` (default: this process's IMPETUS_HOME)."""
    return (home / "local" if home else state.state_dir()) / "credentials"


def credentials_path(identity: str, home: Path | None = None) -> Path:
    return credentials_dir(home) / identity


def profile(identity: str) -> str:
    return f"{PROFILE_PREFIX}{identity}"


def write(identity: str, key: AccessKey, path: Path | None = None) -> Path:
    """Write ``identity``'s key as a one-profile shared-credentials file (0600)."""
    path = path or credentials_path(identity)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = (
        f"[{profile(identity)}]\n"
        f"aws_access_key_id = {key.access_key_id}\n"
        f"aws_secret_access_key = {key.secret_access_key}\n"
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def read(identity: str, path: Path | None = None) -> AccessKey:
    """``identity``'s key (FileNotFoundError or KeyError if the stack has none)."""
    path = path or credentials_path(identity)
    parser = configparser.ConfigParser(interpolation=None)
    with open(path) as fh:
        parser.read_file(fh)
    section = parser[profile(identity)]
    return AccessKey(section["aws_access_key_id"], section["aws_secret_access_key"])


def remove_all() -> None:
    for path in credentials_dir().glob("*"):
        state.remove(path)


def environment(identity: str, home: Path | None = None) -> dict[str, str]:
    """Variables that make boto3 in a child process use ``identity`` of the stack under
    ``home`` (and nothing from the user's own AWS configuration: no config file)."""
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials_path(identity, home)),
        "AWS_PROFILE": profile(identity),
        "AWS_CONFIG_FILE": os.devnull,
    }


def use_in_this_process(identity: str) -> None:
    """Make boto3's default chain in this process resolve to ``identity``."""
    for name in KEY_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(environment(identity))


def session(identity: str, region: str) -> Any:
    """A boto3 session of ``identity``: its credentials file and profile are set on the
    session itself, so it ignores AWS_* variables (this process's may be another's)."""
    core = botocore.session.Session()
    core.set_config_variable("credentials_file", str(credentials_path(identity)))
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("profile", profile(identity))
    return boto3.session.Session(botocore_session=core, region_name=region)
