"""The simulated world of the DFS simulator: a queue of jobs and a fleet of nodes.

One-second steps. Nodes boot for a random 45-75 s (billed from launch, per second with a
60 s minimum, as EC2 bills Linux instances), then run up to ``mpps`` jobs at once. A
node's boot is drawn from the seed, its launch second and its place among that second's
launches (common random numbers): policies that launch alike get the same boots, so a
comparison measures the policies, not the dice. (Drawn from the stream that also
shuffles the dispatch, a policy's tick timing changed every later boot, and with it the
p95 wait, which a burst's cold start sets, by about a second either way.) The
policies (impetus.scaler.sim.policies) act on the fleet only through ``launch``,
``drain`` and ``terminate``; a terminated node's running jobs go back to the head of
the queue and count as interrupted.

Failures (:class:`Failures`, off by default), drawn from their own random stream:

- *Spot interruptions*: each node in service gets a notice at ``spot_rate`` per
  node-hour; it stops taking work at once (the node agent's IMDS watcher drains it,
  whatever the scaling policy) and is terminated two minutes later
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html);
  a job still running then is interrupted and goes back to the queue. A fleet in an
  Auto Scaling group (``autoreplace``: impetus, target tracking) gets a replacement
  launched by the group, as Auto Scaling keeps its desired capacity; Dask's workers
  are not replaced but by Dask's own target.
- *Failed boots*: a launch fails with probability ``failed_boot``: the instance goes
  InService at its boot time but its agent never works (no heartbeat); it is billed
  until a policy terminates it (impetus: ``boot_deadline``; Auto Scaling's EC2 health
  check passes, so nothing else replaces it).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from impetus.scaler.sim.traces import Trace

MIN_BILLED = 60.0
BOOT_RANGE = (45.0, 75.0)
NOTICE_SECONDS = 120.0  # a Spot interruption notice comes two minutes ahead


@dataclass(frozen=True)
class Failures:
    spot_rate: float = 0.0  # Spot interruption notices per node-hour in service
    failed_boot: float = 0.0  # probability that a launch never boots

    def __bool__(self) -> bool:
        return self.spot_rate > 0 or self.failed_boot > 0

    def label(self) -> str:
        if not self:
            return "no failures"
        return f"Spot {self.spot_rate:.0%}/node-h, failed boots {self.failed_boot:.0%}"


@dataclass
class Event:
    t: float
    kind: str  # spot-notice | failed-boot
    node: str


@dataclass
class SimJob:
    arrival: float
    seconds: float
    start: float | None = None
    done: float | None = None
    interrupted: int = 0


@dataclass
class SimNode:
    id: str
    launched: float
    ready_at: float
    slots: list[int | None]
    terminated: float | None = None
    state: str = "running"  # running | draining | drained
    idle_since: float | None = None
    jobs_done: int = 0
    in_service_at: float = 0.0  # Auto Scaling's InService (a failed boot too, never ready)
    failed: bool = False
    notice_at: float | None = None  # Spot interruption notice

    def ready(self, t: float) -> bool:
        return self.terminated is None and t >= self.ready_at

    @property
    def busy(self) -> bool:
        return any(j is not None for j in self.slots)

    def billed(self, end: float) -> float:
        return max(
            MIN_BILLED, (self.terminated if self.terminated is not None else end) - self.launched
        )


@dataclass
class Action:
    t: float
    direction: str  # up | down
    nodes: int


@dataclass
class Fleet:
    trace: Trace
    mpps: int = 4
    max_nodes: int = 20
    boot_seconds: float = 60.0  # the estimate policies are told
    target_latency: float = 30.0  # the stream's target_latency (impetus, target tracking)
    seed: int = 7
    t: float = 0.0
    jobs: list[SimJob] = field(default_factory=list)
    nodes: list[SimNode] = field(default_factory=list)
    queue: deque[int] = field(default_factory=deque)
    actions: list[Action] = field(default_factory=list)
    completed: int = 0
    completed_seconds: float = 0.0
    nudged: bool = False  # a job arrived at an empty queue during this step
    series: list[tuple[float, int, int, int]] = field(default_factory=list)
    failures: Failures = field(default_factory=Failures)
    autoreplace: bool = False  # an Auto Scaling group replaces Spot-interrupted instances
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.fail_rng = random.Random(f"failures-{self.seed}")  # Spot notices
        self._launched_now = (-1.0, 0)  # (second, launches so far in it)
        self.jobs = [SimJob(a, s) for a, s in self.trace.jobs]
        self._next_arrival = 0

    # --- views ------------------------------------------------------------------------------
    def alive(self) -> list[SimNode]:
        return [n for n in self.nodes if n.terminated is None]

    def ready_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes if n.ready(self.t)]

    def running_jobs(self) -> int:
        return sum(1 for n in self.alive() for j in n.slots if j is not None)

    def interrupted(self) -> int:
        return sum(j.interrupted for j in self.jobs)

    # --- actions (what a policy may do) ----------------------------------------------------
    def in_service(self) -> list[SimNode]:
        """Instances Auto Scaling counts InService (failed boots too)."""
        return [n for n in self.alive() if self.t >= n.in_service_at]

    def launch(self, count: int, by_policy: bool = True) -> None:
        count = min(count, self.max_nodes - len(self.alive()))
        for _ in range(max(0, count)):
            draws = self._launch_draws()
            boot = draws.uniform(*BOOT_RANGE)
            failed = draws.random() < self.failures.failed_boot
            node = SimNode(
                id=f"i-{len(self.nodes):05d}",
                launched=self.t,
                ready_at=float("inf") if failed else self.t + boot,
                slots=[None] * self.mpps,
                idle_since=self.t + boot,
                in_service_at=self.t + boot,
                failed=failed,
            )
            self.nodes.append(node)
            if failed:
                self.events.append(Event(self.t, "failed-boot", node.id))
        if count > 0 and by_policy:
            self.actions.append(Action(self.t, "up", count))

    def _launch_draws(self) -> random.Random:
        """The random stream of the next launch: the seed, the second, the launch's place."""
        second, count = self._launched_now
        place = count if second == self.t else 0
        self._launched_now = (self.t, place + 1)
        return random.Random(f"launch-{self.seed}-{self.t:.0f}-{place}")

    def drain(self, node: SimNode) -> None:
        node.state = "draining"

    def terminate(self, nodes: list[SimNode], by_policy: bool = True) -> None:
        for node in nodes:
            for i, index in enumerate(node.slots):
                if index is not None:  # the job dies with the node: back to the queue
                    job = self.jobs[index]
                    job.interrupted += 1
                    job.start = None
                    self.queue.appendleft(index)
                    node.slots[i] = None
            node.terminated = self.t
        if nodes and by_policy:
            self.actions.append(Action(self.t, "down", len(nodes)))

    def _interruptions(self) -> None:
        """Spot notices drawn for nodes in service; noticed nodes leave 2 minutes later."""
        per_second = self.failures.spot_rate / 3600.0
        for node in self.alive():
            if node.notice_at is None:
                if per_second and node.ready(self.t) and self.fail_rng.random() < per_second:
                    node.notice_at = self.t
                    node.state = "draining" if node.busy else "drained"  # the agent drains
                    self.events.append(Event(self.t, "spot-notice", node.id))
            elif self.t >= node.notice_at + NOTICE_SECONDS:
                self.terminate([node], by_policy=False)
                if self.autoreplace:
                    self.launch(1, by_policy=False)

    # --- the clock ------------------------------------------------------------------------------
    def step(self) -> None:
        """Advance to ``t``: finish jobs, admit arrivals, hand out work."""
        t = self.t
        self._interruptions()
        for node in self.alive():
            for i, index in enumerate(node.slots):
                if index is not None and self.jobs[index].done <= t:
                    node.slots[i] = None
                    node.jobs_done += 1
                    self.completed += 1
                    self.completed_seconds += self.jobs[index].seconds
                    if not node.busy:
                        node.idle_since = self.jobs[index].done
            if node.state == "draining" and not node.busy:
                node.state = "drained"
        self.nudged = False
        while self._next_arrival < len(self.jobs) and self.jobs[self._next_arrival].arrival <= t:
            if not self.queue:
                self.nudged = True
            self.queue.append(self._next_arrival)
            self._next_arrival += 1
        self._dispatch()

    def _dispatch(self) -> None:
        free = [
            (node, i)
            for node in self.ready_nodes()
            if node.state == "running"
            for i, j in enumerate(node.slots)
            if j is None
        ]
        self.rng.shuffle(free)  # agents poll independently: work spreads over the fleet
        for node, i in free:
            if not self.queue:
                break
            index = self.queue.popleft()
            job = self.jobs[index]
            job.start, job.done = self.t, self.t + job.seconds
            node.slots[i] = index
            node.idle_since = None

    def record(self) -> None:
        self.series.append((self.t, len(self.queue), len(self.alive()), len(self.ready_nodes())))

    def finished(self) -> bool:
        return self._next_arrival >= len(self.jobs) and not self.queue and not self.running_jobs()
