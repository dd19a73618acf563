"""The Lambdas: the API behind an HTTP API with its authorizer, and DFS on a schedule.

All run the same bundle (``infra.assets.lambda_code``), each with its own role and log group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from impetus.core.config import ENV_AUTHKEY_SECRET
from impetus.core.grants import Component, Res
from infra import permissions
from infra.assets import LAMBDA_RUNTIME

API_HANDLER = "lambdas.api.app.handler"
AUTHORIZER_HANDLER = "lambdas.authorizer.handler.handler"
# API Gateway keeps an authorizer's answer this long per Authorization value: a client's
# requests cost one authorizer call per TTL, and a rotated key is honoured (or refused) at
# the edge up to this much later (docs/deploy.md, "Authentication at the edge").
AUTHORIZER_CACHE_TTL = Duration.minutes(5)
AUTHORIZER_IDENTITY_SOURCE = "$request.header.Authorization"
DFS_HANDLER = "lambdas.dfs.handler.handler"
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
# The HTTP API's access log: one JSON line per request, $context variables only (no
# header, no body, so never the authkey). The format must hold $context.requestId:
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging.html
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "method": "$context.httpMethod",
        "path": "$context.path",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "latency": "$context.responseLatency",
        "integrationStatus": "$context.integrationStatus",
        "integrationError": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
    },
    separators=(",", ":"),
)
DFS_RATE = Duration.minutes(1)
# Opt-in: reserve this much concurrency for DFS. Off by default: CloudFormation refuses a
# reservation that leaves the account under 10 unreserved, which is every new account
# (quota 10 or 50): https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
CONTEXT_DFS_RESERVED = "impetus:dfsReservedConcurrency"


def dfs_reserved_concurrency(scope: Construct) -> int | None:
    """The opt-in reservation from the CDK context (None: no reservation)."""
    raw = scope.node.try_get_context(CONTEXT_DFS_RESERVED)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or str(value) != str(raw).strip():
        raise ValueError(f"{CONTEXT_DFS_RESERVED} must be a whole number >= 1, got {raw!r}")
    return value


def _function(
    scope: Construct,
    construct_id: str,
    *,
    code: lambda_.Code,
    handler: str,
    timeout: Duration,
    environment: Mapping[str, str],
    reserved_concurrency: int | None = None,
) -> tuple[lambda_.Function, iam.Role, logs.LogGroup]:
    """A function with its own role (no managed policies; its grants, logs included, come
    from impetus.core.grants) and a log group with retention."""
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"Impetus {construct_id} Lambda",
    )
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=LOG_RETENTION,
        removal_policy=RemovalPolicy.DESTROY,
    )
    function = lambda_.Function(
        scope,
        f"{construct_id}Function",
        runtime=LAMBDA_RUNTIME,
        architecture=lambda_.Architecture.X86_64,
        code=code,
        handler=handler,
        role=role,
        memory_size=512,
        timeout=timeout,
        log_group=log_group,
        environment=dict(environment),
        reserved_concurrent_executions=reserved_concurrency,
    )
    return function, role, log_group


class DfsService(Construct):
    """DFS: scales the node groups and reaps leases, every minute and when nudged."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.function, self.role, self.log_group = _function(
            self,
            "Dfs",
            code=code,
            handler=DFS_HANDLER,
            timeout=Duration.seconds(50),  # done before the next tick
            environment=environment,
            # One decision loop at a time comes from a lease in the decisions table
            # (impetus.scaler.loop), not from a reservation; that stays an opt-in.
            reserved_concurrency=dfs_reserved_concurrency(self),
        )
        # A nudge that cannot run within a minute is stale: the schedule covers it.
        self.function.configure_async_invoke(max_event_age=Duration.seconds(60), retry_attempts=0)
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Impetus DFS backstop tick",
            schedule=events.Schedule.rate(DFS_RATE),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )


class EdgeAuthorizer(Construct):
    """A Lambda REQUEST authorizer for the HTTP API: no authkey, no API Lambda invocation.

    Not IAM auth: that would make every client sign requests with SigV4 and hold AWS
    credentials instead of the authkey. Simple responses (``{"isAuthorized": bool}``),
    cached per ``Authorization`` header; a request without that header is a 401 from API
    Gateway itself, without invoking the authorizer.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, code: lambda_.Code, authkey_secret_arn: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.function, self.role, self.log_group = _function(
            self,
            "Authorizer",
            code=code,
            handler=AUTHORIZER_HANDLER,
            timeout=Duration.seconds(10),  # API Gateway gives an authorizer 10 s at most
            environment={ENV_AUTHKEY_SECRET: authkey_secret_arn},
        )
        permissions.grant_all(
            self.role,
            Component.AUTHORIZER,
            {
                Res.AUTHKEY_SECRET: [authkey_secret_arn],
                Res.OWN_LOG_GROUP: [self.log_group.log_group_arn],
            },
        )
        self.authorizer = authorizers.HttpLambdaAuthorizer(
            "Authkey",
            self.function,
            authorizer_name="impetus-authkey",
            identity_source=[AUTHORIZER_IDENTITY_SOURCE],
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            results_cache_ttl=AUTHORIZER_CACHE_TTL,
        )


class ApiService(Construct):
    """The API Lambda behind an HTTP API (payload 2.0) with stage throttling.

    Every route, ``/openapi.json`` included, goes through the edge authorizer; the API
    Lambda checks the authkey again itself (defense in depth, and the local stack's API
    server relies on the same code).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        environment: Mapping[str, str],
        authkey_secret_arn: str,
        rate_limit: int,
        burst_limit: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function, self.role, self.log_group = _function(
            self,
            "Api",
            code=code,
            handler=API_HANDLER,
            timeout=Duration.seconds(29),  # API Gateway's own integration limit
            environment=environment,
        )
        self.edge = EdgeAuthorizer(self, "Edge", code=code, authkey_secret_arn=authkey_secret_arn)
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            description="Impetus API",
            create_default_stage=False,
            default_integration=integrations.HttpLambdaIntegration("Api", self.function),
            default_authorizer=self.edge.authorizer,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
        )
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        # Set on the L1 stage: plain strings, no jsii interface to implement in Python.
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigwv2.CfnStage)
        cfn_stage.access_log_settings = apigwv2.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn, format=ACCESS_LOG_FORMAT
        )

    @property
    def url(self) -> str:
        return self.stage.url
