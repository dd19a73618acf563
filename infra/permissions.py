"""CDK renderer of the components' grants (impetus.core.grants): IAM statements with the
deployed stack's ARNs. Explicit actions, scoped resources, no wildcards on data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from impetus.core.grants import GRANTS, Component, Grant, Res
from infra.data import DataPlane

Arns = Mapping[Res, Sequence[str]]


def statement(grant: Grant, arns: Arns) -> iam.PolicyStatement:
    resources = ["*"] if grant.resources == (Res.ANY,) else _resolve(grant, arns)
    return iam.PolicyStatement(
        actions=list(grant.actions),
        resources=resources,
        conditions={k: dict(v) for k, v in grant.conditions.items()} or None,
    )


def _resolve(grant: Grant, arns: Arns) -> list[str]:
    missing = [r.value for r in grant.resources if r not in arns]
    if missing:
        raise ValueError(f"no ARN for {', '.join(missing)} ({grant.actions[0]} ...)")
    return [arn for kind in grant.resources for arn in arns[kind]]


def grant_all(
    role: iam.IRole, component: Component, arns: Arns, *, skip: frozenset[Res] = frozenset()
) -> None:
    """Add every grant of ``component`` to ``role``, its resources resolved by ``arns``;
    grants on a kind in ``skip`` are left to :func:`statements_on`."""
    for grant in GRANTS[component]:
        if skip.isdisjoint(grant.resources):
            role.add_to_principal_policy(statement(grant, arns))


def statements_on(component: Component, kinds: frozenset[Res], arns: Arns) -> list:
    """The statements of ``component``'s grants on any of ``kinds``."""
    return [statement(g, arns) for g in GRANTS[component] if not kinds.isdisjoint(g.resources)]


def data_arns(data: DataPlane) -> dict[Res, list[str]]:
    """The ARNs of the stack's state, shared by every role."""
    return {
        Res.TABLES: data.table_arns(),
        Res.CLAIM_INDEX: [data.claim_index_arn()],
        Res.PAYLOAD_OBJECTS: [data.payload_objects_arn()],
        Res.PAYLOAD_BUCKET: [data.bucket.bucket_arn],
        Res.AUTHKEY_SECRET: [data.authkey.secret_arn],
        Res.SIGNING_SECRET: [data.signing_key.secret_arn],
    }


def group_arn(scope: Construct, group_name: str) -> str:
    """The ARN of an Auto Scaling group by name (its id part is unknown before creation)."""
    return Stack.of(scope).format_arn(
        service="autoscaling",
        resource="autoScalingGroup",
        resource_name=f"*:autoScalingGroupName/{group_name}",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
