"""The two Lambdas: the API behind an HTTP API, and DFS on a one-minute schedule.

Both run the same bundle (``infra.assets.lambda_code``) with their own role and log group.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.assets import LAMBDA_RUNTIME

API_HANDLER = "lambdas.api.app.handler"
DFS_HANDLER = "lambdas.dfs.handler.handler"
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
DFS_RATE = Duration.minutes(1)


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
            # One decision loop at a time: an invocation keeps ticking while the fleet
            # is active, and a second one (the schedule, a nudge) deciding from its own
            # copy of the policy's memory could drain or terminate twice. An event that
            # finds it busy is throttled and retried by Lambda's async queue (within
            # max_event_age), by which time the running loop has usually covered it.
            reserved_concurrency=1,
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


class ApiService(Construct):
    """The API Lambda behind an HTTP API (payload 2.0) with stage throttling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        environment: Mapping[str, str],
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
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            description="Impetus API",
            create_default_stage=False,
            default_integration=integrations.HttpLambdaIntegration("Api", self.function),
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
        )

    @property
    def url(self) -> str:
        return self.stage.url
