"""CloudWatch metrics of every tick, namespace ``Impetus``: per stream Backlog and
Running; per group (dimension NodeClass) Desired, Needed, InService, Pending and
BusyWorkers; fleet-wide (no dimension, what the deployed dashboard and alarms read)
WaitingJobs, OldestWaitingJobAge, BusyWorkers and JobErrors."""

from __future__ import annotations

from typing import Any

from impetus.scaler.config import NAMESPACE
from impetus.scaler.model import Decision, PolicyInput

BATCH = 500  # PutMetricData takes up to 1000 values per call
# Fleet-wide metric names: the deployed dashboard and alarms (infra/monitoring.py) use these.
WAITING_JOBS = "WaitingJobs"
OLDEST_WAITING_AGE = "OldestWaitingJobAge"
BUSY_WORKERS = "BusyWorkers"
JOB_ERRORS = "JobErrors"


def metric_data(inputs: PolicyInput, decision: Decision, busy: dict[str, int]) -> list[dict]:
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


def publish(cloudwatch: Any, data: list[dict[str, Any]]) -> None:
    for start in range(0, len(data), BATCH):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + BATCH])
