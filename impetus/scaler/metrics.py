"""CloudWatch metrics of DFS, namespace ``Impetus``, published at most once a minute.

Fleet-wide (no dimension, what the deployed dashboard and alarms read): WaitingJobs,
OldestWaitingJobAge, BusyWorkers and JobErrors. Per group (dimension NodeClass):
Desired, Needed, InService, Pending, BusyWorkers and FailedBootsLastHour (the failed-boot
alarm's metric). Per stream (dimension Stream) Backlog and Running only when asked
(``IMPETUS_DFS_STREAM_METRICS=1``): every stream is a new custom metric, billed as one
(https://aws.amazon.com/cloudwatch/pricing/).

While active DFS ticks every 2-10 s; CloudWatch's standard resolution is one minute. So
each tick's values go into a :class:`MinuteBuffer` and are sent as statistic sets
(SampleCount, Sum, Minimum, Maximum per metric) in one PutMetricData call per minute at
most: the Maximum and Sum the dashboard and alarms read are those of every tick, for a
sixth of the requests or fewer. The buffer lives in the process (a warm Lambda
container, the local ticker): a container that is recycled loses at most its last
minute of metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from impetus.scaler.config import NAMESPACE
from impetus.scaler.model import Decision, PolicyInput
from impetus.scaler.params import FAILURE_WINDOW

BATCH = 500  # PutMetricData takes up to 1000 metrics per call (we stay well below)
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html
# Fleet-wide metric names: the deployed dashboard and alarms (infra/monitoring.py) use these.
WAITING_JOBS = "WaitingJobs"
OLDEST_WAITING_AGE = "OldestWaitingJobAge"
BUSY_WORKERS = "BusyWorkers"
JOB_ERRORS = "JobErrors"
FAILED_BOOTS = "FailedBootsLastHour"  # per NodeClass: the failed-boot alarm reads it
PUBLISH_EVERY = 60.0  # seconds: one PutMetricData per calendar minute at most


def metric_data(
    inputs: PolicyInput, decision: Decision, busy: dict[str, int], per_stream: bool = False
) -> list[dict]:
    data: list[dict[str, Any]] = []

    def put(name: str, value: float, dimension: str, key: str, unit: str = "Count") -> None:
        data.append(
            {
                "MetricName": name,
                "Dimensions": [{"Name": dimension, "Value": key}],
                "Value": float(value),
                "Unit": unit,
            }
        )

    if per_stream:
        for s in inputs.streams:
            put("Backlog", s.backlog, "Stream", s.id)
            put("Running", s.running, "Stream", s.id)
    decided = {d.node_class: d for d in decision.groups}
    for g in inputs.groups:
        d = decided.get(g.node_class)
        put("Desired", d.desired if d else g.desired, "NodeClass", g.node_class)
        put("Needed", d.needed if d else 0, "NodeClass", g.node_class)
        put("InService", g.in_service, "NodeClass", g.node_class)
        put("Pending", g.pending, "NodeClass", g.node_class)
        put("BusyWorkers", busy.get(g.node_class, 0), "NodeClass", g.node_class)
        failed = decision.memory.failed.get(g.node_class, [])
        recent = sum(1 for t in failed if inputs.now - t < FAILURE_WINDOW)
        put(FAILED_BOOTS, recent, "NodeClass", g.node_class)
    return data


def fleet_data(
    inputs: PolicyInput, busy: dict[str, int], oldest_age: float, new_errors: int
) -> list[dict[str, Any]]:
    """The fleet-wide metrics (infra/monitoring.py charts them and alarms on them)."""
    values = {
        WAITING_JOBS: (sum(s.backlog for s in inputs.streams), "Count"),
        OLDEST_WAITING_AGE: (oldest_age, "Seconds"),
        BUSY_WORKERS: (sum(busy.values()), "Count"),
        JOB_ERRORS: (new_errors, "Count"),
    }
    return [
        {"MetricName": name, "Value": float(value), "Unit": unit}
        for name, (value, unit) in values.items()
    ]


@dataclass
class MinuteBuffer:
    """Each tick's values, aggregated into statistic sets until the minute's publish."""

    every: float = PUBLISH_EVERY
    published_at: float = float("-inf")
    stats: dict[tuple, dict[str, Any]] = field(default_factory=dict)

    def add(self, data: list[dict[str, Any]]) -> None:
        for datum in data:
            dims = tuple((d["Name"], d["Value"]) for d in datum.get("Dimensions", ()))
            key = (datum["MetricName"], dims, datum.get("Unit", "None"))
            value = float(datum["Value"])
            old = self.stats.get(key)
            if old is None:
                self.stats[key] = {
                    "SampleCount": 1.0,
                    "Sum": value,
                    "Minimum": value,
                    "Maximum": value,
                }
            else:
                old["SampleCount"] += 1
                old["Sum"] += value
                old["Minimum"] = min(old["Minimum"], value)
                old["Maximum"] = max(old["Maximum"], value)

    def due(self, now: float) -> bool:
        """A tick in a later minute than the last publish (the once-a-minute schedule
        lands a few ms either side of a minute: 'later minute' still publishes each)."""
        if not self.stats:
            return False
        if self.published_at == float("-inf"):
            return True  # a fresh process publishes its first tick's values at once
        return math.floor(now / self.every) > math.floor(self.published_at / self.every)

    def drain(self) -> list[dict[str, Any]]:
        out = [
            {
                "MetricName": name,
                **({"Dimensions": [{"Name": k, "Value": v} for k, v in dims]} if dims else {}),
                "StatisticValues": dict(stats),
                "Unit": unit,
            }
            for (name, dims, unit), stats in self.stats.items()
        ]
        self.stats = {}
        return out

    def publish_if_due(self, cloudwatch: Any, now: float) -> int:
        """Publish the minute's statistics if due; returns the PutMetricData calls made."""
        if not self.due(now):
            return 0
        data, self.published_at = self.drain(), now
        return publish(cloudwatch, data)


def publish(cloudwatch: Any, data: list[dict[str, Any]]) -> int:
    calls = 0
    for start in range(0, len(data), BATCH):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + BATCH])
        calls += 1
    return calls
