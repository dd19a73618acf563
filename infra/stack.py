"""The Impetus stack: everything a deployment needs, wired together, and its outputs."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from impetus.cli.stackconfig import (
    OUTPUT_API_URL,
    OUTPUT_AUTHKEY_SECRET,
    OUTPUT_BUCKET,
    OUTPUT_NODE_GROUPS,
    OUTPUT_REGION,
    OUTPUT_TABLES,
)
from impetus.core.config import (
    ENV_AUTHKEY_SECRET,
    ENV_BUCKET,
    ENV_DFS_FUNCTION,
    ENV_NODE_GROUPS,
    ENV_SIGNING_SECRET,
    ENV_TABLES,
    format_tables,
)
from impetus.core.grants import Component, Res
from infra import assets, node_classes, permissions
from infra.data import DataPlane
from infra.fleet import Network, NodeGroup, node_log_group
from infra.functions import ApiService, DfsService
from infra.monitoring import Monitoring
from infra.node_classes import NodeClass
from infra.nodepackage import NodeTarget, build_node_package
from infra.pythons import check_node_python

CONTEXT_PREFIX = "impetus:tablePrefix"
CONTEXT_PYTHON = "impetus:pythonVersion"
CONTEXT_RATE = "impetus:apiRateLimit"
CONTEXT_BURST = "impetus:apiBurstLimit"
CONTEXT_RETAIN_STORE = "impetus:retainStore"
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class StackSettings:
    prefix: str
    python_version: str  # the clients' major.minor: nodes install the same
    node_classes: tuple[NodeClass, ...]
    api_rate_limit: int = 100
    api_burst_limit: int = 200
    retain_store: bool = True  # keep the key-value store table on delete or replacement

    @classmethod
    def from_context(cls, scope: Construct, stack_name: str) -> StackSettings:
        get = scope.node.try_get_context
        settings = cls(
            prefix=str(get(CONTEXT_PREFIX) or stack_name.lower()),
            python_version=check_node_python(
                str(get(CONTEXT_PYTHON) or "{}.{}".format(*sys.version_info[:2])), CONTEXT_PYTHON
            ),
            node_classes=tuple(node_classes.from_context(get)),
            api_rate_limit=int(get(CONTEXT_RATE) or 100),
            api_burst_limit=int(get(CONTEXT_BURST) or 200),
            retain_store=_flag(get(CONTEXT_RETAIN_STORE), default=True),
        )
        if not _PREFIX.match(settings.prefix):
            raise ValueError(f"{CONTEXT_PREFIX} must match {_PREFIX.pattern}")
        return settings


def _flag(value: Any, *, default: bool) -> bool:
    """A boolean context value: JSON true/false in cdk.json, a string from ``-c``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"expected true or false, got {value!r}")
    return text == "true"


class ImpetusStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.data = DataPlane(
            self, "Data", prefix=settings.prefix, retain_store=settings.retain_store
        )
        # Resource names only, references CloudFormation resolves (none is fixed).
        self.tables_value = format_tables(self.data.table_names())
        code = assets.lambda_code()

        self.network = Network(self, "Network")
        self.node_logs = node_log_group(self)
        packages = self._node_packages(settings)
        node_environment = {
            ENV_TABLES: self.tables_value,
            ENV_SIGNING_SECRET: self.data.signing_key.secret_arn,
            ENV_BUCKET: self.data.bucket.bucket_name,
        }
        self.node_groups = [
            NodeGroup(
                self,
                f"Nodes-{node_class.name}",
                node_class=node_class,
                network=self.network,
                data=self.data,
                package=packages[node_class.name],
                log_group=self.node_logs,
                python_version=settings.python_version,
                environment=node_environment,
                region=Aws.REGION,
            )
            for node_class in settings.node_classes
        ]
        self.group_names = {g.node_class.name: g.group_name for g in self.node_groups}

        self.dfs = DfsService(
            self,
            "Dfs",
            code=code,
            environment={
                ENV_TABLES: self.tables_value,
                ENV_NODE_GROUPS: self.to_json_string(self.group_names),
            },
        )
        self._grant_dfs()

        self.api = ApiService(
            self,
            "Api",
            code=code,
            environment={
                ENV_TABLES: self.tables_value,
                ENV_AUTHKEY_SECRET: self.data.authkey.secret_arn,
                ENV_SIGNING_SECRET: self.data.signing_key.secret_arn,
                ENV_BUCKET: self.data.bucket.bucket_name,
                ENV_DFS_FUNCTION: self.dfs.function.function_name,
            },
            authkey_secret_arn=self.data.authkey.secret_arn,
            rate_limit=settings.api_rate_limit,
            burst_limit=settings.api_burst_limit,
        )
        self._grant_api()

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            dashboard_name=f"{settings.prefix}-impetus",
            api=self.api.function,
            dfs=self.dfs.function,
            groups=list(self.group_names.values()),
            node_classes=list(self.group_names),
        )
        self._outputs()

    def _node_packages(self, settings: StackSettings) -> dict[str, s3_assets.Asset]:
        """Per node class, its node package (wheel + wheelhouse) as an S3 asset; classes
        with the same platform and requirements share one package."""
        assets_by_target: dict[NodeTarget, s3_assets.Asset] = {}
        packages = {}
        for node_class in settings.node_classes:
            target = NodeTarget(settings.python_version, node_class.arm, node_class.requirements)
            if target not in assets_by_target:
                path = build_node_package(target)
                asset_id = f"NodePackage{len(assets_by_target) or ''}"
                assets_by_target[target] = s3_assets.Asset(self, asset_id, path=str(path))
            packages[node_class.name] = assets_by_target[target]
        return packages

    def _grant_dfs(self) -> None:
        arns = {
            **permissions.data_arns(self.data),
            Res.OWN_LOG_GROUP: [self.dfs.log_group.log_group_arn],
            Res.NODE_GROUPS: [permissions.group_arn(self, n) for n in self.group_names.values()],
        }
        permissions.grant_all(self.dfs.role, Component.DFS, arns)

    def _grant_api(self) -> None:
        arns = {
            **permissions.data_arns(self.data),
            Res.OWN_LOG_GROUP: [self.api.log_group.log_group_arn],
            Res.DFS_FUNCTION: [self.dfs.function.function_arn],
        }
        permissions.grant_all(self.api.role, Component.API, arns)

    def _outputs(self) -> None:
        outputs = {
            OUTPUT_API_URL: (self.api.url, "Impetus API URL (clients' address)"),
            OUTPUT_AUTHKEY_SECRET: (
                self.data.authkey.secret_arn,
                "ARN of the authkey secret (its value stays in Secrets Manager)",
            ),
            OUTPUT_BUCKET: (self.data.bucket.bucket_name, "payload bucket"),
            OUTPUT_NODE_GROUPS: (
                self.to_json_string(self.group_names),
                "Auto Scaling group of each node class",
            ),
            OUTPUT_TABLES: (self.tables_value, f"DynamoDB tables ({ENV_TABLES})"),
            OUTPUT_REGION: (Aws.REGION, "region of the stack"),
            "Dashboard": (self.monitoring.dashboard.dashboard_name, "CloudWatch dashboard"),
            "AlarmTopicArn": (self.monitoring.topic.topic_arn, "subscribe to get alarms"),
        }
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)
