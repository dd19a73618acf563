"""The AWS resources of a local stack, created in its moto server.

Same table definitions as the deployed stack (impetus.storage.tables), the two secrets the API
and the nodes read, and the payload bucket. The local stack creates them with its admin
identity (a boto3 session, impetus.local.credentials); without one, clients carry
:data:`FAKE_CREDENTIALS`, which only a moto that enforces nothing accepts (``mock_aws``
in tests, an in-process ``MotoServer()`` without auth).
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from impetus.core.config import (
    ENV_AUTHKEY_SECRET,
    ENV_BUCKET,
    ENV_ENDPOINT,
    ENV_HOME,
    ENV_REGION,
    ENV_SIGNING_SECRET,
    ENV_TABLE_PREFIX,
    AwsSettings,
)
from impetus.core.grants import Res
from impetus.local import credentials
from impetus.storage.tables import create_tables

# For a moto without IAM enforcement; fixed fake ones keep boto3 from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}
# Variables that would point boto3 at a real account or profile.
_REAL_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_REGION",
)

BOTO_CONFIG = Config(retries={"mode": "standard"})


@dataclass(frozen=True)
class LocalResources:
    settings: AwsSettings
    authkey: str = field(repr=False)
    secret_arns: dict[Res, str] = field(default_factory=dict)  # authkey's and signing key's


def local_settings(endpoint_url: str, table_prefix: str = "impetus") -> AwsSettings:
    return AwsSettings(
        endpoint_url=endpoint_url,
        table_prefix=table_prefix,
        bucket=f"{table_prefix}-payloads",
    )


def server_environment(
    settings: AwsSettings, base: dict[str, str], identity: str | None = None
) -> dict[str, str]:
    """The environment of everything that plays "server side" (API handler, node agents):
    ``identity``'s credentials file and profile (impetus.local.credentials), or
    FAKE_CREDENTIALS for a moto without enforcement."""
    env = {k: v for k, v in base.items() if k not in _REAL_AWS_VARIABLES}
    if identity is None:
        env.update(FAKE_CREDENTIALS)
    else:
        for name in credentials.KEY_VARIABLES:
            env.pop(name, None)
        home = env.get(ENV_HOME)  # the stack these processes belong to
        env.update(credentials.environment(identity, Path(home) if home else None))
    # A proxy from the user's environment must not intercept loopback traffic.
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(filter(None, [env.get(name, ""), "127.0.0.1", "localhost"]))
    env.update(
        {
            ENV_ENDPOINT: settings.endpoint_url or "",
            ENV_REGION: settings.region,
            ENV_TABLE_PREFIX: settings.table_prefix,
            ENV_AUTHKEY_SECRET: settings.authkey_secret,
            ENV_SIGNING_SECRET: settings.signing_secret,
            ENV_BUCKET: settings.bucket or "",
        }
    )
    return env


def client(service: str, settings: AwsSettings, session: Any = None) -> Any:
    """A client of the local moto: with ``session``'s credentials, else the fake ones."""
    if session is not None:
        return session.client(
            service,
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            config=BOTO_CONFIG,
        )
    return boto3.client(
        service,
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        config=BOTO_CONFIG,
    )


def _put_secret(sm: Any, name: str, value: str) -> str:
    """Create or update the secret; returns its ARN."""
    try:
        return sm.create_secret(Name=name, SecretString=value)["ARN"]
    except sm.exceptions.ResourceExistsException:
        return sm.put_secret_value(SecretId=name, SecretString=value)["ARN"]


LAUNCH_TEMPLATE = "impetus-local-node"
LOCAL_AMI = "ami-12c6146b"  # any id moto knows: its instances are only ids here


def node_group_name(table_prefix: str, node_class: str = "default") -> str:
    return f"{table_prefix}-{node_class}"


def provision_node_group(
    settings: AwsSettings, max_nodes: int, session: Any = None
) -> dict[str, str]:
    """A launch template and one Auto Scaling group (min 0, desired 0) for the default
    node class; returns {node class: group name} as DFS reads it (IMPETUS_NODE_GROUPS).

    The fleet reconciler (impetus.local.fleet) runs one node agent per instance moto
    launches into it."""
    ec2, asg = client("ec2", settings, session), client("autoscaling", settings, session)
    with contextlib.suppress(ec2.exceptions.ClientError):
        ec2.create_launch_template(
            LaunchTemplateName=LAUNCH_TEMPLATE,
            LaunchTemplateData={"ImageId": LOCAL_AMI, "InstanceType": "t3.micro"},
        )
    name = node_group_name(settings.table_prefix)
    existing = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    if not existing["AutoScalingGroups"]:
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": LAUNCH_TEMPLATE, "Version": "$Latest"},
            MinSize=0,
            MaxSize=max_nodes,
            DesiredCapacity=0,
            AvailabilityZones=[f"{settings.region}a"],
        )
    return {"default": name}


def provision(settings: AwsSettings, session: Any = None) -> LocalResources:
    """Create tables, secrets and bucket; returns the authkey clients must present."""
    create_tables(client("dynamodb", settings, session), settings.table_prefix)
    authkey = secrets.token_urlsafe(32)
    sm = client("secretsmanager", settings, session)
    secret_arns = {
        Res.AUTHKEY_SECRET: _put_secret(sm, settings.authkey_secret, authkey),
        Res.SIGNING_SECRET: _put_secret(sm, settings.signing_secret, secrets.token_urlsafe(32)),
    }
    if settings.bucket:
        s3 = client("s3", settings, session)
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=settings.bucket)
    return LocalResources(settings=settings, authkey=authkey, secret_arns=secret_arns)
