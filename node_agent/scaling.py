"""The node's side of autoscaling: scale-in protection, drain on request, drain on a
termination lifecycle hook.

- **Idle since**: the heartbeat item carries ``idle_since``, the heartbeat time at which
  the node was first seen holding nothing (absent while it holds jobs), so DFS measures
  idleness from the node's own clock, at most one heartbeat late, whenever it ticks.
- **Protection** is on while the node holds jobs (set right after a claim) and off once
  it holds none (checked on each heartbeat): Auto Scaling never picks a busy node.
- **Drain on request**: DFS sets ``drain`` on this node's item in the nodes table. The
  heartbeat's put is conditional on ``drain`` being absent, so the request can never be
  overwritten: the put fails, the node learns it must drain, stops claiming, finishes
  what it holds and reports ``drained`` (staying up until DFS terminates it).
- **Leave on request**: an idle node DFS retires is terminated first, then marked
  ``drain = "leave"``. The node drains the same way, stops, and completes the lifecycle
  action itself as soon as its instance is in ``Terminating:Wait``, rather than at its
  next lifecycle check, up to ``LIFECYCLE_POLL`` seconds later (billed all along).
- **Lifecycle hook**: when the instance enters ``Terminating:Wait`` the node drains the
  same way, then stops (the agent's normal stop: release what is left) and completes
  the lifecycle action with ``CONTINUE``; while it drains it records lifecycle
  heartbeats so the hook's timeout does not cut a long job short.

The instance id comes from ``IMPETUS_INSTANCE_ID`` or a node id starting with ``i-``
(the local stack and EC2 user data pass it); without one only drain on request applies.
The nodes table itself (its item layout, the conditional put) is impetus.storage.nodes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from impetus.core import aws
from impetus.core.config import ENV_INSTANCE_ID, AwsSettings
from impetus.storage.nodes import DRAINED, DRAINING, LEAVE, RUNNING, NodeBeat, Nodes

log = logging.getLogger(__name__)

# The states are the nodes table's; exported here too, as the states a node goes through.
__all__ = ["DRAINED", "DRAINING", "RUNNING", "Scaling", "instance_id_for"]

TERMINATING_WAIT = "Terminating:Wait"
TERMINATING_HOOK = "autoscaling:EC2_INSTANCE_TERMINATING"
TERMINATING_PAST = ("Terminating:Proceed", "Terminated")  # no lifecycle action to complete
LIFECYCLE_POLL = 15.0  # seconds between lifecycle-state checks (DescribeAutoScalingInstances)
# A node told to leave waits this long, checking every LEAVE_POLL seconds, for Auto
# Scaling to put its instance in Terminating:Wait (normally within a second or two).
LEAVE_WAIT, LEAVE_POLL = 30.0, 0.5


def instance_id_for(node_id: str) -> str | None:
    """The EC2 instance this node runs on, when it can know (None: not in a group)."""
    given = os.environ.get(ENV_INSTANCE_ID)
    if given:
        return given
    return node_id if node_id.startswith("i-") else None


class Scaling:
    """This node's autoscaling state; ``on_terminate`` is called (from the heartbeat
    thread) when a termination lifecycle hook asks the node to stop."""

    def __init__(
        self,
        node_id: str,
        aws_settings: AwsSettings,
        nodes: Nodes,
        on_terminate: Callable[[], None],
        asg: Any = None,
    ) -> None:
        self.node_id = node_id
        self.instance_id = instance_id_for(node_id)
        self._nodes = nodes
        self._asg = asg
        self._aws = aws_settings
        self._on_terminate = on_terminate
        self._drain = threading.Event()
        self._protected: bool | None = None
        self._group: str | None = None
        self._hook: str | None = None  # set once the instance is Terminating:Wait
        self._next_poll = 0.0
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._idle_since: float | None = None  # heartbeat time first seen holding nothing
        self._idle_done: int | None = None  # jobs_done at that heartbeat
        self._leaving = False  # DFS terminated this instance: complete the hook at once

    def _warn(self, what: str, exc: Exception) -> None:
        """Warn once per kind of failure (a missing permission would repeat forever)."""
        level = logging.DEBUG if what in self._warned else logging.WARNING
        self._warned.add(what)
        log.log(level, "%s failed: %s", what, exc)

    # --- state --------------------------------------------------------------------------
    @property
    def draining(self) -> bool:
        """Stop claiming: DFS or a lifecycle hook asked this node to drain."""
        return self._drain.is_set()

    def request_drain(self, why: str) -> None:
        """Drain on this node's own account (a Spot rebalance recommendation or
        interruption notice): no more claims; the heartbeat reports draining."""
        if not self._drain.is_set():
            log.info("node %s: %s: no more claims", self.node_id, why)
        self._drain.set()

    def state(self, stopping: bool, holds_jobs: bool) -> str:
        """What the heartbeat reports: running, or draining until nothing is held."""
        if not (stopping or self.draining):
            return RUNNING
        return DRAINING if holds_jobs else DRAINED

    # --- the node item --------------------------------------------------------------------
    def _with_idle_since(self, beat: NodeBeat) -> NodeBeat:
        """The beat with ``idle_since`` when the node holds nothing: the first heartbeat
        that saw it idle with this ``jobs_done`` (work in between starts a new idle spell).
        Never earlier than the true moment, so DFS never drains a node too soon."""
        if beat.stats.busy:
            self._idle_since = self._idle_done = None
            return beat
        done = beat.stats.jobs_done
        if self._idle_since is None or self._idle_done != done:
            self._idle_since, self._idle_done = beat.at, done
        return replace(beat, idle_since=self._idle_since)

    def write_item(self, beat: NodeBeat) -> None:
        """Report a heartbeat (with ``idle_since`` when idle) without ever erasing a
        drain request; a request found there starts the drain."""
        beat = self._with_idle_since(beat)
        if not self.draining:
            if self._nodes.heartbeat(beat):
                return
            log.info("node %s: drain requested: no more claims", self.node_id)
            self._drain.set()
            beat = replace(beat, state=DRAINING if beat.stats.claims else DRAINED)
            if self._nodes.drain_requested(self.node_id) == LEAVE:
                log.info("node %s: instance terminated by DFS: stopping", self.node_id)
                self._leaving = True
                self._on_terminate()
        self._nodes.heartbeat(beat, draining=True)

    # --- Auto Scaling -----------------------------------------------------------------------
    def _client(self) -> Any:
        if self._asg is None:
            self._asg = aws.client("autoscaling", self._aws)
        return self._asg

    def _group_name(self) -> str | None:
        if self._group is None and self.instance_id:
            found = self._client().describe_auto_scaling_instances(InstanceIds=[self.instance_id])
            instances = found.get("AutoScalingInstances", [])
            self._group = instances[0]["AutoScalingGroupName"] if instances else None
        return self._group

    def _protect(self, on: bool) -> None:
        with self._lock:
            if self._protected is on or not self.instance_id:
                return
            try:
                group = self._group_name()
                if group is None:
                    return
                self._client().set_instance_protection(
                    InstanceIds=[self.instance_id],
                    AutoScalingGroupName=group,
                    ProtectedFromScaleIn=on,
                )
            except Exception as exc:  # retried on the next change or heartbeat
                self._warn(f"scale-in protection {'on' if on else 'off'}", exc)
                return
            self._protected = on
            log.info("node %s: scale-in protection %s", self.node_id, "on" if on else "off")

    def holding(self) -> None:
        """Called after a successful claim: protection on (no-op when already on)."""
        self._idle_since = self._idle_done = None
        self._protect(True)

    def on_beat(self, holds_jobs: bool) -> None:
        """Heartbeat: protection off when idle, lifecycle state check now and then."""
        if not holds_jobs:
            self._protect(False)
        now = time.monotonic()
        if self.instance_id and now >= self._next_poll:
            self._next_poll = now + LIFECYCLE_POLL
            try:
                self._poll_lifecycle()
            except Exception as exc:
                self._warn("lifecycle check", exc)

    def _poll_lifecycle(self) -> None:
        if self._hook is not None:
            self._client().record_lifecycle_action_heartbeat(
                LifecycleHookName=self._hook,
                AutoScalingGroupName=self._group_name(),
                InstanceId=self.instance_id,
            )
            return
        if self._lifecycle_state() != TERMINATING_WAIT:
            return
        self._take_hook()
        log.info("node %s: instance terminating (hook %r): draining", self.node_id, self._hook)
        self._drain.set()
        self._on_terminate()

    def _lifecycle_state(self) -> str | None:
        """The instance's lifecycle state in its group (None: no longer in one)."""
        found = self._client().describe_auto_scaling_instances(InstanceIds=[self.instance_id])
        instances = found.get("AutoScalingInstances", [])
        if not instances:
            return None
        self._group = instances[0]["AutoScalingGroupName"]
        return instances[0]["LifecycleState"]

    def _take_hook(self) -> None:
        """Remember the group's termination hook ("" when it has none)."""
        hooks = self._client().describe_lifecycle_hooks(AutoScalingGroupName=self._group)
        names = [
            h["LifecycleHookName"]
            for h in hooks.get("LifecycleHooks", [])
            if h["LifecycleTransition"] == TERMINATING_HOOK
        ]
        self._hook = names[0] if names else ""

    def _await_hook(self) -> None:
        """A node told to leave: wait for Terminating:Wait and take the hook (none when
        the instance is already past it, gone, or the group has no hook)."""
        deadline = time.monotonic() + LEAVE_WAIT
        while time.monotonic() < deadline:
            try:
                state = self._lifecycle_state()
            except Exception as exc:
                self._warn("lifecycle check", exc)
                state = "unknown"
            if state == TERMINATING_WAIT:
                self._take_hook()
                return
            if state is None or state in TERMINATING_PAST:
                return
            time.sleep(LEAVE_POLL)
        log.warning(
            "node %s: told to leave, but its instance never reached %s",
            self.node_id,
            TERMINATING_WAIT,
        )

    def finish(self) -> None:
        """After the agent stopped: let a pending termination proceed."""
        if not self.instance_id:
            return
        if self._leaving and self._hook is None:
            self._await_hook()
        if not self._hook:
            return
        try:
            self._client().complete_lifecycle_action(
                LifecycleHookName=self._hook,
                AutoScalingGroupName=self._group_name(),
                LifecycleActionResult="CONTINUE",
                InstanceId=self.instance_id,
            )
            log.info("node %s: lifecycle action completed", self.node_id)
        except Exception as exc:
            log.warning("completing the lifecycle action failed: %s", exc)
