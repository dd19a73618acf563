"""Local renderer of the components' grants (impetus.core.grants): IAM policy documents
with the local moto server's ARNs, and one IAM user with its key per component.

The grants are the deployed roles' (infra.permissions renders the same data for CDK);
what differs is only what moto can evaluate (see impetus.local.motoauth):

- Resources: moto names the resource of S3 requests, and (with motoauth) of Secrets
  Manager requests; those statements keep their ARNs. Every other service is checked
  against resource ``*``, so its statements are rendered on ``*``: locally, the
  DynamoDB, Auto Scaling, CloudWatch, Logs and Lambda grants limit actions, not
  resources (a node could set protection on another group, for instance).
- Conditions: moto treats any Condition as a Deny, so the one condition (DFS's
  PutMetricData namespace) is dropped locally.
- Names: moto prefixes actions with the service's signing name (``monitoring:``, not
  ``cloudwatch:``), and authorises some calls by their operation's name, which is not
  the IAM action AWS checks (``s3:HeadObject`` for ``s3:GetObject``, a transaction for
  its items' actions); :data:`MOTO_ALIASES` adds those names where all the actions they
  stand for are granted.
- The node package (a CDK asset) has no local counterpart: that grant is left out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from impetus.core.config import AwsSettings
from impetus.core.grants import GRANTS, Component, Res, actions
from impetus.local import credentials
from impetus.local.credentials import AccessKey
from impetus.storage.payloads import PREFIX as PAYLOAD_PREFIX

# Services whose requests moto (with impetus.local.motoauth) checks against an ARN.
RESOURCE_CHECKED = frozenset({"s3", "secretsmanager"})
# moto prefixes an action with the service's signing name, not its IAM prefix.
MOTO_PREFIXES = {"cloudwatch": "monitoring"}
POLICY_NAME = "impetus-grants"


@dataclass(frozen=True)
class MotoAlias:
    action: str  # the name moto checks
    stands_for: frozenset[str]  # the IAM actions AWS checks instead (all must be granted)
    on: Res | None = None  # the resource moto checks it on (None: "*")


MOTO_ALIASES = (
    # AWS authorises each item of a transaction by its own action.
    MotoAlias(
        "dynamodb:TransactWriteItems",
        frozenset(
            {
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:ConditionCheckItem",
            }
        ),
    ),
    # moto names S3 requests by their operation: HeadObject is s3:GetObject to AWS,
    # ListObjectsV2 s3:ListBucket, and a multi-object delete s3:DeleteObject per key
    # (moto checks it on the bucket).
    MotoAlias("s3:HeadObject", frozenset({"s3:GetObject"}), on=Res.PAYLOAD_OBJECTS),
    MotoAlias("s3:ListObjectsV2", frozenset({"s3:ListBucket"}), on=Res.PAYLOAD_BUCKET),
    MotoAlias("s3:DeleteObjects", frozenset({"s3:DeleteObject"}), on=Res.PAYLOAD_BUCKET),
)


def local_arns(settings: AwsSettings, secret_arns: Mapping[Res, str]) -> dict[Res, list[str]]:
    """The ARNs moto checks: the payload bucket's and the two secrets'."""
    bucket = f"arn:aws:s3:::{settings.bucket}"
    return {
        Res.PAYLOAD_OBJECTS: [f"{bucket}/{PAYLOAD_PREFIX}/*"],
        Res.PAYLOAD_BUCKET: [bucket],
        **{kind: [arn] for kind, arn in secret_arns.items()},
    }


def policy_document(component: Component, arns: Mapping[Res, Sequence[str]]) -> dict[str, Any]:
    statements = []
    for grant in GRANTS[component]:
        for service, names in _by_service(grant.actions).items():
            resources = _resources(service, grant.resources, arns)
            if resources:
                statements.append(_allow(names, resources))
    granted = actions(component)
    for alias in MOTO_ALIASES:
        if alias.stands_for <= granted:
            on = (alias.on,) if alias.on else (Res.ANY,)
            service = alias.action.split(":", 1)[0]
            statements.append(_allow([alias.action], _resources(service, on, arns)))
    return {"Version": "2012-10-17", "Statement": statements}


def _by_service(names: Sequence[str]) -> dict[str, list[str]]:
    grouped: defaultdict[str, list[str]] = defaultdict(list)
    for name in names:
        grouped[name.split(":", 1)[0]].append(name)
    return grouped


def _resources(service: str, kinds: Sequence[Res], arns: Mapping[Res, Sequence[str]]) -> list[str]:
    """The grant's ARNs where moto checks them, else "*"; [] when none exists locally."""
    if kinds == (Res.ANY,) or service not in RESOURCE_CHECKED:
        return ["*"]
    return [arn for kind in kinds for arn in arns.get(kind, ())]


def _allow(names: Sequence[str], resources: Sequence[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": [moto_name(n) for n in names], "Resource": list(resources)}


def moto_name(action: str) -> str:
    """``action`` as moto names it (``cloudwatch:X`` is ``monitoring:X`` to moto)."""
    service, _, name = action.partition(":")
    return f"{MOTO_PREFIXES.get(service, service)}:{name}"


def user_name(component: Component) -> str:
    return credentials.profile(component.value)


def create_component_users(iam: Any, arns: Mapping[Res, Sequence[str]]) -> None:
    """One IAM user per component, its policy and a key (written to its 0600 file)."""
    for component in Component:
        name = user_name(component)
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName=POLICY_NAME,
            PolicyDocument=json.dumps(policy_document(component, arns)),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        credentials.write(component.value, AccessKey(key["AccessKeyId"], key["SecretAccessKey"]))
