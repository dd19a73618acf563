"""The policies the simulator compares, each acting on a :class:`Fleet`.

- ``impetus``: impetus.scaler.policy.decide, fed the way the DFS Lambda feeds it: a tick on
  the API's nudge (a job arrives at an empty stream), then after the delay the Lambda
  itself computes (impetus.scaler.tick.follow_up: 10 s while active, 2 s while a drain is
  in flight, right when an idle node reaches the idle threshold), else every 60 s (the
  schedule). Job duration from the same Little's-law estimator as the Lambda. Nodes are
  seen through heartbeat items written every 5 s from boot, as node agents write them
  (node_agent/scaling.py): ``idle_since`` is the first beat that saw the node idle, and
  a drain request is answered with ``drained`` on the node's next beat. A terminated
  instance waits in the termination lifecycle hook until its agent completes the action
  (billed meanwhile, and no longer in the policy's view): a retired idle node
  ``LEAVE_SECONDS`` after the tick (it learns of its drain mark from the head record it
  reads every second, then stops), a drained one at its next lifecycle check (every
  ``LIFECYCLE_POLL`` seconds); a job it claimed meanwhile finishes first.
- ``target-tracking``: AWS target tracking on "backlog per instance" (the metric math
  AWS documents for queue workers, with 0 instances counted as 1), target = acceptable
  latency / job duration x workers per instance. One datapoint a minute; scale out when
  3 consecutive datapoints are above target, scale in when 15 are below 90 % of it.
  Capacity is proportional (``ceil(instances x metric / target)``); Auto Scaling picks
  the scale-in victims itself (default termination policy: here at random).
- ``dask-adaptive``: distributed's ``Adaptive`` with ``target_duration=5s``,
  ``wait_count=3``, ``interval=1s``: target = ceil(occupancy / 5 s), occupancy being
  expected seconds of processing and queued tasks (0.5 s per task until one finished),
  capped by the number of runnable tasks, in cores, divided by threads per worker once
  workers exist (distributed 2026.8 ``Scheduler.adaptive_target``); idle workers are
  closed after they are recommended for closing 3 ticks in a row; workers not yet
  arrived are cancelled first.
- ``static``: a fixed fleet sized for the trace's peak minute, on for the whole run.
"""

from __future__ import annotations

import math
from collections import defaultdict

from impetus.core import properties
from impetus.scaler import collect, estimate, tick
from impetus.scaler.model import GroupState, Memory, PolicyInput, StreamState
from impetus.scaler.params import PolicyParams
from impetus.scaler.policy import decide
from impetus.scaler.sim.fleet import Action, Fleet, SimNode

POLICIES = ("impetus", "target-tracking", "dask-adaptive", "static")
IN_AUTO_SCALING_GROUP = ("impetus", "target-tracking", "static")  # Dask's workers are not
TARGET_LATENCY = properties.PROPERTIES["target_latency"].default


class Impetus:
    name = "impetus"
    IDLE_TICK = 60.0  # the EventBridge schedule
    HEARTBEAT = 5.0  # node_agent.config.DEFAULT_HEARTBEAT_INTERVAL
    LEAVE_SECONDS = 2.0  # a 1 s head-record poll, a read, a beat, two Auto Scaling calls
    LIFECYCLE_POLL = 15.0  # node_agent.scaling.LIFECYCLE_POLL

    def __init__(self, fleet: Fleet, params: PolicyParams | None = None) -> None:
        self.params = params or PolicyParams()
        self.memory = Memory()
        self.sample: list[float] | None = None
        self.next_tick = 0.0
        self.drain_asked: dict[str, float] = {}
        self.leaving: dict[str, float] = {}  # terminated, in the lifecycle hook: -> its end

    def act(self, fleet: Fleet) -> None:
        self._complete_lifecycle_actions(fleet)
        if not (fleet.nudged or fleet.t >= self.next_tick):
            return
        self.sample = estimate.update(self.sample, fleet.t, fleet.completed, fleet.running_jobs())
        inputs = self.inputs(fleet)
        decision = decide(inputs, self.memory, self.params)
        self.memory = decision.memory
        self.apply(fleet, decision.groups[0])
        for node_id in decision.groups[0].drain:
            self.drain_asked[node_id] = fleet.t
        wait = tick.follow_up(inputs, decision, self.params, tick.is_active(inputs, decision))
        self.next_tick = fleet.t + (self.IDLE_TICK if wait is None else math.ceil(wait))

    def _complete_lifecycle_actions(self, fleet: Fleet) -> None:
        gone = [
            n
            for n in fleet.alive()
            if n.id in self.leaving and fleet.t >= self.leaving[n.id] and not n.busy
        ]
        for node in gone:
            del self.leaving[node.id]
        fleet.terminate(gone, by_policy=False)

    def _in_group(self, fleet: Fleet) -> list[SimNode]:
        """Instances the policy sees: not those waiting in the termination hook."""
        return [n for n in fleet.alive() if n.id not in self.leaving]

    def _beat(self, node: SimNode, t: float, after: float) -> float:
        """The first heartbeat of ``node`` at or after ``after`` (beats every 5 s from boot)."""
        return node.ready_at + self.HEARTBEAT * math.ceil(
            max(0.0, after - node.ready_at) / self.HEARTBEAT
        )

    def _item(self, node: SimNode, t: float) -> dict:
        """The node's heartbeat item as its agent last wrote it."""
        last = self._beat(node, t, t)
        if last > t:
            last -= self.HEARTBEAT
        idle_since = None if node.busy else self._beat(node, t, node.idle_since)
        busy = node.busy or idle_since > last  # no beat has seen it idle yet
        held = max(int(busy), sum(1 for j in node.slots if j is not None))
        state = node.state
        asked = self.drain_asked.get(node.id)
        if asked is not None and state == "drained" and self._beat(node, t, asked) > last:
            state = "draining"  # drained, but its next beat has not said so yet
        item = {
            "node": node.id,
            "heartbeat": last,
            "started": node.launched,
            "claims": held,
            "workers_busy": held,
            "jobs_done": node.jobs_done,
            "state": state,
        }
        if not busy:
            item["idle_since"] = idle_since
        return item

    def inputs(self, fleet: Fleet) -> PolicyInput:
        t = fleet.t
        stream = StreamState(
            id="s",
            backlog=len(fleet.queue),
            running=fleet.running_jobs(),
            mpps=fleet.mpps,
            job_seconds=estimate.job_seconds(self.sample),
            throughput=estimate.throughput(self.sample),
            target_latency=fleet.target_latency,
        )
        # Nodes as the Lambda sees them: through their heartbeat items and the same
        # collector code (idle since the first tick that saw the node idle).
        nodes = tuple(
            collect.node_state(
                "default",
                {
                    "InstanceId": n.id,
                    "ProtectedFromScaleIn": n.busy,  # held while busy
                    "LifecycleState": "InService" if t >= n.in_service_at else "Pending",
                },
                self._item(n, t) if n.ready(t) else None,
                self.memory,
                t,
            )
            for n in self._in_group(fleet)
        )
        alive = self._in_group(fleet)
        in_service = sum(1 for n in alive if t >= n.in_service_at)
        live = {n.id for n in alive}
        for node_id in [k for k in self.memory.seen if k not in live]:
            del self.memory.seen[node_id]  # as collect.policy_input forgets them
        group = GroupState(
            node_class="default",
            name="sim",
            min=0,
            max=fleet.max_nodes,
            desired=len(alive),
            in_service=in_service,
            pending=len(alive) - in_service,
            boot_seconds=fleet.boot_seconds,
        )
        return PolicyInput(now=t, streams=(stream,), nodes=nodes, groups=(group,))

    def apply(self, fleet: Fleet, decision) -> None:
        by_id = {n.id: n for n in fleet.alive()}
        t = fleet.t
        now, hooked = [], []
        for node in (by_id[i] for i in decision.terminate + decision.replace):
            (hooked if node.state == "drained" else now).append(node)
        fleet.terminate(now, by_policy=False)
        for node in hooked:  # its agent completes the hook at its next lifecycle check
            polls = math.ceil((t - node.ready_at) / self.LIFECYCLE_POLL)
            self.leaving[node.id] = node.ready_at + self.LIFECYCLE_POLL * polls
        for node_id in decision.drain:
            fleet.drain(by_id[node_id])
        for node_id in decision.retire:
            fleet.drain(by_id[node_id])  # it claims nothing more; a job held finishes
            self.leaving[node_id] = t + self.LEAVE_SECONDS
        # A noticed node DFS terminates once drained would have gone at the notice's end
        # anyway: not a scale action (as when EC2 takes it), so not a reversal either.
        noticed = sum(1 for i in decision.terminate if by_id[i].notice_at is not None)
        down = len(decision.terminate) + len(decision.replace) + len(decision.retire) - noticed
        if down:
            fleet.actions.append(Action(t, "down", down))
        fleet.launch(decision.desired - len(self._in_group(fleet)))


class TargetTracking:
    name = "target-tracking"
    PERIOD = 60.0
    OUT_POINTS, IN_POINTS, IN_RATIO = 3, 15, 0.9

    def __init__(self, fleet: Fleet) -> None:
        self.target = fleet.target_latency / _true_mean(fleet) * fleet.mpps
        self.points: list[float] = []
        self.next_tick = self.PERIOD

    def act(self, fleet: Fleet) -> None:
        if fleet.t < self.next_tick:
            return
        self.next_tick += self.PERIOD
        in_service = len(fleet.ready_nodes())
        metric = len(fleet.queue) / max(1, in_service)
        self.points.append(metric)
        desired = len(fleet.alive())
        proportional = math.ceil(max(1, in_service) * metric / self.target)
        if len(self.points) >= self.OUT_POINTS and all(
            p > self.target for p in self.points[-self.OUT_POINTS :]
        ):
            fleet.launch(min(fleet.max_nodes, proportional) - desired)
        elif len(self.points) >= self.IN_POINTS and all(
            p < self.IN_RATIO * self.target for p in self.points[-self.IN_POINTS :]
        ):
            new = max(0, min(desired, proportional))
            if new < desired:
                victims = fleet.rng.sample(fleet.alive(), desired - new)
                fleet.terminate(victims)


class DaskAdaptive:
    name = "dask-adaptive"
    TARGET_DURATION = 5.0
    WAIT_COUNT = 3
    UNKNOWN_TASK_DURATION = 0.5

    def __init__(self, fleet: Fleet) -> None:
        self.close_counts: dict[str, int] = defaultdict(int)

    def target(self, fleet: Fleet, workers: list[SimNode]) -> int:
        average = (
            fleet.completed_seconds / fleet.completed
            if fleet.completed
            else self.UNKNOWN_TASK_DURATION
        )
        processing = fleet.running_jobs()
        queued = len(fleet.queue)
        cpu = math.ceil((processing + queued) * average / self.TARGET_DURATION)
        cpu = min(cpu, queued + processing)  # a few long tasks must not ask for many cores
        if workers:  # cores -> workers (each of our workers has mpps threads)
            cpu = math.ceil(cpu / fleet.mpps)
        if queued and not workers:
            cpu = max(1, cpu)
        if cpu >= len(workers):
            return cpu
        idle = [w for w in workers if not w.busy]
        return len(workers) - len(idle)

    def act(self, fleet: Fleet) -> None:
        workers = fleet.ready_nodes()
        plan = fleet.alive()
        target = min(fleet.max_nodes, self.target(fleet, workers))
        if target == len(plan):
            self.close_counts.clear()
            return
        if target > len(plan):
            self.close_counts.clear()
            fleet.launch(target - len(plan))
            return
        not_arrived = [n for n in plan if not n.ready(fleet.t)]
        to_close = not_arrived[: len(plan) - target]
        if target < len(plan) - len(to_close):
            idle_first = sorted(workers, key=lambda w: w.busy)  # idle workers first
            to_close += idle_first[: len(plan) - len(to_close) - target]
        firm = []
        for node in to_close:
            self.close_counts[node.id] += 1
            if self.close_counts[node.id] >= self.WAIT_COUNT:
                firm.append(node)
        keep = {n.id for n in to_close} - {n.id for n in firm}
        for key in [k for k in self.close_counts if k not in keep]:
            del self.close_counts[key]
        fleet.terminate(firm)


class Static:
    name = "static"

    def __init__(self, fleet: Fleet) -> None:
        peak = _peak_minute_rate(fleet)
        self.size = min(fleet.max_nodes, max(1, math.ceil(peak * _true_mean(fleet) / fleet.mpps)))
        self.started = False

    def act(self, fleet: Fleet) -> None:
        if not self.started:
            self.started = True
            fleet.launch(self.size)
            for node in fleet.alive():  # up before the trace starts
                node.ready_at = node.idle_since = node.in_service_at = fleet.t


def _true_mean(fleet: Fleet) -> float:
    return sum(s for _, s in fleet.trace.jobs) / max(1, len(fleet.trace.jobs))


def _peak_minute_rate(fleet: Fleet) -> float:
    per_minute: dict[int, int] = defaultdict(int)
    for arrival, _ in fleet.trace.jobs:
        per_minute[int(arrival // 60)] += 1
    return max(per_minute.values(), default=0) / 60.0


def make(name: str, fleet: Fleet, params: PolicyParams | None = None):
    if name == "impetus":
        return Impetus(fleet, params)
    classes = {"target-tracking": TargetTracking, "dask-adaptive": DaskAdaptive, "static": Static}
    if name not in classes:
        raise ValueError(f"unknown policy {name!r}: one of {', '.join(POLICIES)}")
    return classes[name](fleet)
