"""CloudWatch metrics of every tick, namespace ``Impetus``: per stream Backlog and
Running; per group (dimension NodeClass) Desired, Needed, InService, Pending and
BusyWorkers."""

from __future__ import annotations

from typing import Any

from impetus.dfs.config import NAMESPACE
from impetus.dfs.model import Decision, PolicyInput

BATCH = 500  # PutMetricData takes up to 1000 values per call


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


def publish(cloudwatch: Any, data: list[dict[str, Any]]) -> None:
    for start in range(0, len(data), BATCH):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + BATCH])
