"""``impetus config from-stack STACK``: client settings from a deployed stack.

Reads the stack's outputs with CloudFormation and the authkey from the secret the
outputs name (never an output itself), and writes them to ``$IMPETUS_HOME/config.json``
(mode 0600), where ``ClientSettings.resolve`` finds them after explicit arguments and
the environment, before the local stack's ``local.json``.

The output names are defined here and used by ``infra/`` too, so they cannot drift.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from impetus.core.config import ENV_REGION, deployed_settings_path, parse_tables
from impetus.core.exceptions import ConfigError

OUTPUT_API_URL = "ApiUrl"
OUTPUT_AUTHKEY_SECRET = "AuthkeySecretArn"
OUTPUT_BUCKET = "Bucket"
OUTPUT_NODE_GROUPS = "NodeGroups"
OUTPUT_TABLES = "Tables"  # the tables' generated names, as IMPETUS_TABLES spells them
OUTPUT_REGION = "Region"
REQUIRED_OUTPUTS = (OUTPUT_API_URL, OUTPUT_AUTHKEY_SECRET)


def register(subparsers: Any) -> None:
    config = subparsers.add_parser("config", help="client settings for a deployed stack")
    commands = config.add_subparsers(dest="config_command", metavar="{from-stack}", required=True)
    from_stack = commands.add_parser(
        "from-stack", help="write client settings from a deployed stack's outputs and secret"
    )
    from_stack.add_argument("stack", metavar="STACK", help="CloudFormation stack name")
    from_stack.add_argument("--region", help=f"AWS region (default ${ENV_REGION} or profile)")
    from_stack.set_defaults(func=cmd_from_stack)


def _client(service: str, region: str | None) -> Any:
    import boto3  # only this command needs it at import time

    return boto3.client(service, region_name=region)


def stack_outputs(stack: str, region: str | None) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        described = _client("cloudformation", region).describe_stacks(StackName=stack)
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"cannot read stack {stack}: {exc}") from exc
    outputs = described["Stacks"][0].get("Outputs", [])
    return {o["OutputKey"]: o["OutputValue"] for o in outputs}


def read_authkey(secret_arn: str, region: str | None) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = _client("secretsmanager", region).get_secret_value(SecretId=secret_arn)
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"cannot read the authkey secret: {exc}") from exc
    return value["SecretString"]


def settings_from_stack(stack: str, region: str | None = None) -> dict[str, Any]:
    """The client settings of a deployed stack (contains the authkey: keep it private)."""
    outputs = stack_outputs(stack, region)
    missing = [name for name in REQUIRED_OUTPUTS if not outputs.get(name)]
    if missing:
        raise ConfigError(f"stack {stack} is not an Impetus stack: no outputs {missing}")
    region = outputs.get(OUTPUT_REGION) or region
    return {
        "stack": stack,
        "region": region,
        "api_url": outputs[OUTPUT_API_URL].rstrip("/"),
        "authkey": read_authkey(outputs[OUTPUT_AUTHKEY_SECRET], region),
        "authkey_secret": outputs[OUTPUT_AUTHKEY_SECRET],
        "bucket": outputs.get(OUTPUT_BUCKET),
        "tables": parse_tables(outputs.get(OUTPUT_TABLES)),
        "node_groups": json.loads(outputs.get(OUTPUT_NODE_GROUPS) or "{}"),
    }


def write_settings(settings: dict[str, Any], path: Path | None = None) -> Path:
    """Write ``settings`` readable by the owner only (it holds the authkey)."""
    path = path or deployed_settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when a stale tmp file had other permissions
    with os.fdopen(fd, "w") as out:
        json.dump(settings, out, indent=2)
    os.replace(tmp, path)
    return path


def cmd_from_stack(args: argparse.Namespace) -> int:
    region = args.region or os.environ.get(ENV_REGION) or os.environ.get("AWS_REGION")
    settings = settings_from_stack(args.stack, region or None)
    path = write_settings(settings)
    print(f"wrote {path}: api {settings['api_url']} (stack {args.stack}, {settings['region']})")
    return 0
