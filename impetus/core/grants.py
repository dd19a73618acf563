"""What each component may do on AWS, as plain data: the one source of its IAM policy.

A :class:`Grant` is a list of actions on symbolic resources (:class:`Res`), optionally
with a condition. Two renderers turn them into policies:

- ``infra.permissions``: CDK ``PolicyStatement``s with the deployed stack's ARNs (the
  Lambda and node roles);
- ``impetus.local.iam``: IAM JSON documents with the local moto server's ARNs (one IAM
  user per component, so the local stack runs under the same least privilege).

Explicit actions, no wildcards in data-plane actions; each component gets only what its
code calls. This module imports no aws_cdk: the local stack needs it at runtime.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from impetus.scaler.config import NAMESPACE as DFS_METRICS_NAMESPACE


class Component(enum.Enum):
    """A party that calls AWS with its own identity (a role on AWS, a user locally)."""

    API = "api"
    DFS = "dfs"
    NODE = "node"
    AUTHORIZER = "authorizer"  # the HTTP API's edge authorizer (lambdas/authorizer)


class Res(enum.Enum):
    """A kind of resource a grant is on; each renderer knows its ARNs."""

    ANY = "*"  # actions with no resource-level control
    TABLES = "tables"  # every table of the stack (not their indexes)
    CLAIM_INDEX = "claim index"  # the queue table's index of claimable chunks
    PAYLOAD_OBJECTS = "payload objects"  # payloads/* in the payload bucket
    PAYLOAD_BUCKET = "payload bucket"  # the bucket itself (listing)
    AUTHKEY_SECRET = "authkey secret"
    SIGNING_SECRET = "signing secret"
    OWN_LOG_GROUP = "own log group"  # the component's log group
    NODE_GROUPS = "node groups"  # every Auto Scaling group of nodes
    OWN_NODE_GROUP = "own node group"  # a node's own Auto Scaling group
    NODE_PACKAGE = "node package"  # the node wheel's S3 object (a CDK asset)
    DFS_FUNCTION = "dfs function"


@dataclass(frozen=True)
class Grant:
    actions: tuple[str, ...]
    resources: tuple[Res, ...]
    conditions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


# Everything the Queue does: single and batch reads/writes, queries, stream listing
# (Scan), and transactions (which IAM authorises through these item actions).
DYNAMODB_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
)
PAYLOAD_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
METRICS_NAMESPACE = DFS_METRICS_NAMESPACE  # the one DFS publishes to (impetus.scaler.config)

TABLES = Grant(DYNAMODB_ACTIONS, (Res.TABLES,))
# Claims (node agents) and DFS's oldest-wait estimate Query the queue's claim index
# (impetus.storage.jobqueue.claim); nothing else reads an index, and no one writes one.
CLAIM_INDEX = Grant(("dynamodb:Query",), (Res.CLAIM_INDEX,))
PAYLOADS = Grant(PAYLOAD_ACTIONS, (Res.PAYLOAD_OBJECTS,))
# Listing the payload bucket: deleting a stream finds its objects, and HeadObject on a
# missing upload answers 404 (not 403) only to a caller that may list the bucket. No
# s3:prefix condition: HeadObject carries no prefix, so it would turn 404s into 403s.
# The bucket holds payloads only (the node wheel is a CDK asset elsewhere).
LIST_PAYLOADS = Grant(("s3:ListBucket",), (Res.PAYLOAD_BUCKET,))
LAMBDA_LOGS = Grant(LOG_ACTIONS, (Res.OWN_LOG_GROUP,))

GRANTS: Mapping[Component, tuple[Grant, ...]] = MappingProxyType(
    {
        Component.API: (
            LAMBDA_LOGS,
            TABLES,
            Grant(("secretsmanager:GetSecretValue",), (Res.AUTHKEY_SECRET, Res.SIGNING_SECRET)),
            PAYLOADS,
            LIST_PAYLOADS,
            Grant(("lambda:InvokeFunction",), (Res.DFS_FUNCTION,)),  # the nudge
        ),
        # The authkey's value and its own logs: never the signing key, never a table.
        Component.AUTHORIZER: (
            LAMBDA_LOGS,
            Grant(("secretsmanager:GetSecretValue",), (Res.AUTHKEY_SECRET,)),
        ),
        Component.DFS: (
            LAMBDA_LOGS,
            TABLES,
            CLAIM_INDEX,
            # Describe calls support no resource-level permissions.
            Grant(("autoscaling:DescribeAutoScalingGroups",), (Res.ANY,)),
            # Only what impetus/scaler calls: not ec2:DescribeInstances, and not
            # SetInstanceProtection (a node sets and lifts its own, node_agent/scaling.py).
            Grant(
                (
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ),
                (Res.NODE_GROUPS,),
            ),
            # PutMetricData has no resource-level control; the namespace condition scopes it.
            Grant(
                ("cloudwatch:PutMetricData",),
                (Res.ANY,),
                MappingProxyType({"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}}),
            ),
        ),
        Component.NODE: (
            TABLES,
            CLAIM_INDEX,
            Grant(("secretsmanager:GetSecretValue",), (Res.SIGNING_SECRET,)),
            PAYLOADS,
            Grant(("s3:GetObject",), (Res.NODE_PACKAGE,)),
            Grant(
                (
                    "autoscaling:SetInstanceProtection",
                    "autoscaling:CompleteLifecycleAction",
                    "autoscaling:RecordLifecycleActionHeartbeat",
                ),
                (Res.OWN_NODE_GROUP,),
            ),
            # The agent finds its group and the termination hook it must complete
            # (node_agent/scaling.py); these Describe calls take no resource-level ARNs.
            Grant(
                ("autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeLifecycleHooks"),
                (Res.ANY,),
            ),
            # The CloudWatch agent looks up its stream's sequence token.
            Grant((*LOG_ACTIONS, "logs:DescribeLogStreams"), (Res.OWN_LOG_GROUP,)),
        ),
    }
)


def actions(component: Component) -> set[str]:
    """Every action ``component`` may call (on some resource)."""
    return {a for grant in GRANTS[component] for a in grant.actions}
