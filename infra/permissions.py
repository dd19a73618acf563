"""IAM statements shared by the roles: explicit actions, scoped resources, no wildcards.

Each role gets only what its code calls (see the README, "Deploy to AWS", for the per-role list).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from impetus.scaler.config import NAMESPACE as DFS_METRICS_NAMESPACE
from infra.data import DataPlane

# Everything the Queue does: single and batch reads/writes, queries, stream listing
# (Scan), and transactions (which IAM authorises through these item actions).
DYNAMODB_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
]
PAYLOAD_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
METRICS_NAMESPACE = DFS_METRICS_NAMESPACE  # the one DFS publishes to (impetus.scaler.config)


def tables(data: DataPlane) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=DYNAMODB_ACTIONS, resources=data.table_arns())


def payloads(data: DataPlane) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=PAYLOAD_ACTIONS, resources=[data.payload_objects_arn()])


def list_payloads(data: DataPlane) -> iam.PolicyStatement:
    """Listing the payload bucket: deleting a stream finds its objects, and HeadObject on
    a missing upload answers 404 (not 403) only to a caller that may list the bucket.
    No s3:prefix condition: HeadObject carries no prefix, so it would turn 404s into 403s.
    The bucket holds payloads only (the node wheel is a CDK asset elsewhere)."""
    return iam.PolicyStatement(actions=["s3:ListBucket"], resources=[data.bucket.bucket_arn])


def read_secrets(*arns: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=list(arns))


def write_logs(group: logs.ILogGroup, *, describe: bool = False) -> iam.PolicyStatement:
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    if describe:  # the CloudWatch agent looks up its stream's sequence token
        actions.append("logs:DescribeLogStreams")
    return iam.PolicyStatement(actions=actions, resources=[group.log_group_arn])


def put_metrics() -> iam.PolicyStatement:
    """PutMetricData has no resource-level control; the namespace condition scopes it."""
    return iam.PolicyStatement(
        actions=["cloudwatch:PutMetricData"],
        resources=["*"],
        conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
    )


def group_arn(scope: Construct, group_name: str) -> str:
    """The ARN of an Auto Scaling group by name (its id part is unknown before creation)."""
    return Stack.of(scope).format_arn(
        service="autoscaling",
        resource="autoScalingGroup",
        resource_name=f"*:autoScalingGroupName/{group_name}",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
