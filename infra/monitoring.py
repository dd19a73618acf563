"""The dashboard and the alarms.

Queue metrics come from DFS, which publishes them every tick in the ``Impetus`` namespace
(the only namespace its role may write), without dimensions:

    WaitingJobs          jobs waiting in all streams (the backlog)
    OldestWaitingJobAge  seconds the oldest waiting job has waited
    BusyWorkers          worker processes running a job, over all nodes
    JobErrors            jobs that finished with an error since the last tick

and per node class (dimension NodeClass) FailedBootsLastHour, the instances DFS
terminated because they sent no heartbeat within its boot deadline, over the last hour:
one alarm per class at ``FAILED_BOOTS_LIMIT`` (a broken AMI, package or bootstrap
replaces nodes in a loop; each one's bootstrap log is in the node log group).

Instances in service come from the groups' own metrics (group metrics are enabled), and
function errors from Lambda and API Gateway.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from impetus.core.grants import METRICS_NAMESPACE
from impetus.scaler.metrics import (
    BUSY_WORKERS,
    FAILED_BOOTS,
    JOB_ERRORS,
    OLDEST_WAITING_AGE,
    WAITING_JOBS,
)

OLDEST_WAITING_LIMIT = 900  # seconds: a job waiting 15 min means scaling is stuck
API_ERROR_RATE_LIMIT = 5  # percent of API invocations
FAILED_BOOTS_LIMIT = 3  # failed boots of one node class within an hour
MINUTE = Duration.minutes(1)


def queue_metric(name: str, statistic: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE, metric_name=name, statistic=statistic, period=MINUTE
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        api: lambda_.Function,
        dfs: lambda_.Function,
        groups: Sequence[str],
        node_classes: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "AlarmTopic", display_name="Impetus alarms")
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        in_service = [
            cloudwatch.Metric(
                namespace="AWS/AutoScaling",
                metric_name="GroupInServiceInstances",
                dimensions_map={"AutoScalingGroupName": name},
                statistic="Maximum",
                period=MINUTE,
                label=name,
            )
            for name in groups
        ]
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Backlog",
                left=[queue_metric(WAITING_JOBS, "Maximum")],
                right=[queue_metric(OLDEST_WAITING_AGE, "Maximum")],
            ),
            cloudwatch.GraphWidget(title="Nodes in service", left=in_service),
            cloudwatch.GraphWidget(
                title="Busy workers", left=[queue_metric(BUSY_WORKERS, "Maximum")]
            ),
            cloudwatch.GraphWidget(
                title="Errors",
                left=[
                    queue_metric(JOB_ERRORS, "Sum"),
                    api.metric_errors(period=MINUTE, label="API errors"),
                    dfs.metric_errors(period=MINUTE, label="DFS errors"),
                ],
            ),
        )
        self.alarms = [
            self._alarm(
                "OldestWaitingJob",
                queue_metric(OLDEST_WAITING_AGE, "Maximum"),
                threshold=OLDEST_WAITING_LIMIT,
                evaluation_periods=3,
                description="A job has waited over 15 minutes: nodes are not scaling out.",
            ),
            self._alarm(
                "ApiErrorRate",
                cloudwatch.MathExpression(
                    expression="IF(invocations > 0, 100 * errors / invocations, 0)",
                    using_metrics={
                        "errors": api.metric_errors(period=Duration.minutes(5)),
                        "invocations": api.metric_invocations(period=Duration.minutes(5)),
                    },
                    period=Duration.minutes(5),
                    label="API error rate (%)",
                ),
                threshold=API_ERROR_RATE_LIMIT,
                evaluation_periods=2,
                description="Over 5% of API invocations failed.",
            ),
            self._alarm(
                "DfsFailures",
                dfs.metric_errors(period=MINUTE),
                threshold=1,
                evaluation_periods=5,
                datapoints_to_alarm=3,
                description="DFS failed in 3 of the last 5 minutes: nothing scales.",
            ),
        ]
        self.alarms += [
            self._alarm(
                f"FailedBoots-{node_class}",
                cloudwatch.Metric(
                    namespace=METRICS_NAMESPACE,
                    metric_name=FAILED_BOOTS,
                    dimensions_map={"NodeClass": node_class},
                    statistic="Maximum",
                    period=MINUTE,
                ),
                threshold=FAILED_BOOTS_LIMIT,
                evaluation_periods=1,
                description=f"{FAILED_BOOTS_LIMIT} or more {node_class} nodes failed to boot "
                "within an hour: see their bootstrap logs in the node log group.",
            )
            for node_class in node_classes
        ]

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        evaluation_periods: int,
        description: str,
        datapoints_to_alarm: int | None = None,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        return alarm
