"""DFS as ``impetus dfs log`` and ``impetus dfs watch`` read it: the decision log
(DynamoDB) and the node groups' desired and in-service capacity (Auto Scaling), found
where the CLI finds them (the environment, ``impetus config from-stack``, the local
stack)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from impetus.core.exceptions import ImpetusError

DECISIONS_SHOWN = 50


class DfsUnavailable(ImpetusError):
    """The decision log or the node groups could not be read (shown on the page)."""


class DfsReader:
    """Reads the newest decisions and each node group's capacity now."""

    def __init__(self, limit: int = DECISIONS_SHOWN) -> None:
        from impetus.cli.dfs import _target  # the CLI's one resolution of where DFS lives
        from impetus.core import aws
        from impetus.storage.decisions import DecisionLog

        settings, self.groups = _target()
        self.limit = limit
        self.log = DecisionLog.from_settings(settings)
        self.asg = aws.client("autoscaling", settings) if self.groups else None

    def __call__(self) -> dict[str, Any]:
        try:
            return {"decisions": self.log.recent(self.limit), "groups": self._groups()}
        except (BotoCoreError, ClientError) as exc:
            raise DfsUnavailable(f"cannot read DFS: {exc}") from exc

    def _groups(self) -> list[dict[str, Any]]:
        if self.asg is None:
            return []
        names = sorted(set(self.groups.values()))
        described = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=names)
        return [
            {
                "group": g["AutoScalingGroupName"],
                "desired": g["DesiredCapacity"],
                "in_service": sum(1 for i in g["Instances"] if i["LifecycleState"] == "InService"),
            }
            for g in described["AutoScalingGroups"]
        ]
