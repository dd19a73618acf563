"""The local stack's fleet reconciler: one node-agent process per instance of the moto
Auto Scaling group, as DFS grows and shrinks it.

Every half second it lists the group's in-service instances: an instance without an
agent gets one (``--node-id <instance id>``, so DFS's node ids and instance ids agree);
an agent whose instance is gone (DFS terminated it after draining it) is stopped
gracefully with SIGTERM and swept once it exits; an agent that died while its instance
is still in service is restarted after a pause. Same process handling as the fixed
fleet (impetus.local.nodes): one process group per agent.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from impetus.local.nodes import (
    DEFAULT_NODE_COMMAND,
    NodeProcess,
    node_command,
    send_signal,
    stop_agents,
)
from impetus.local.state import kill_groups

log = logging.getLogger(__name__)

INTERVAL = 0.5
RESTART_AFTER = 2.0
LOCAL_HEARTBEAT = 1.0  # seconds: DFS sees idle nodes quickly in the demo


class FleetReconciler:
    def __init__(
        self,
        asg: Any,
        group: str,
        mpps: int,
        env: dict[str, str],
        logdir: Path,
        template: str = DEFAULT_NODE_COMMAND,
        grace: float = 10.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.asg = asg
        self.group = group
        self.mpps = mpps
        self.env = env
        self.logdir = logdir
        self.template = template + f" --heartbeat-interval {LOCAL_HEARTBEAT:g}"
        self.grace = grace
        self.nodes: dict[str, NodeProcess] = {}  # instance id -> agent
        self.stopping: dict[str, NodeProcess] = {}  # terminated instances' agents, draining
        self.retired: list[NodeProcess] = []
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            try:
                self.reconcile()
            except Exception:
                log.exception("fleet reconcile failed")

    def instances(self) -> set[str]:
        found = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
        groups = found["AutoScalingGroups"]
        if not groups:
            return set()
        return {
            i["InstanceId"] for i in groups[0]["Instances"] if i["LifecycleState"] == "InService"
        }

    def reconcile(self) -> None:
        wanted = self.instances()
        changed = False
        with self._lock:
            for instance_id in sorted(wanted - set(self.nodes)):
                self._start(instance_id)
                changed = True
            for instance_id in sorted(set(self.nodes) - wanted):
                node = self.nodes.pop(instance_id)
                log.info(
                    "instance %s terminated: stopping its agent (pid %s)", instance_id, node.pid
                )
                send_signal(node.pid, signal.SIGTERM)  # drains: finishes or releases, then exits
                self.stopping[instance_id] = node
                changed = True
            for instance_id, node in list(self.stopping.items()):
                if not node.alive():
                    kill_groups({node.pid}, signal.SIGKILL)  # workers it left behind
                    self.retired.append(self.stopping.pop(instance_id))
                    changed = True
            now = time.monotonic()
            for node in self.nodes.values():
                if not node.alive() and node.proc is not None:
                    if node.restart_at is None:
                        kill_groups({node.proc.pid}, signal.SIGKILL)
                        node.restart_at = now + RESTART_AFTER
                        log.warning("agent of %s exited (%s)", node.node_id, node.proc.returncode)
                    elif now >= node.restart_at:
                        node.restarts += 1
                        node.start()
                    changed = True
        if changed:
            self._changed()

    def _start(self, instance_id: str) -> None:
        node = NodeProcess(
            node_id=instance_id,
            command=node_command(self.template, instance_id, self.mpps, self.logdir),
            log_path=self.logdir / f"node-{instance_id}.log",
            env=self.env,
        )
        node.start()
        self.nodes[instance_id] = node

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def stop(self) -> None:
        """Stop reconciling; SIGTERM every agent, SIGKILL their groups after the grace."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            stop_agents(self._all(), self.grace)
        self._changed()

    def _all(self) -> list[NodeProcess]:
        return [*self.nodes.values(), *self.stopping.values(), *self.retired]

    def describe(self) -> list[dict[str, object]]:
        return [n.describe() for n in (*self.nodes.values(), *self.stopping.values())]

    def pgids(self) -> set[int]:
        return {pgid for n in self._all() for pgid in n.history}
