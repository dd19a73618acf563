"""One DFS tick: reap, look, decide, act, record, report.

This is everything the DFS Lambda does per invocation (and the local ticker every
second or two). Failures in one part are logged and do not stop the others: a failed
reap must not stop scaling, a failed metric must not lose a decision.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from impetus.core import aws
from impetus.scaler import (
    activity,
    actuate,
    audit,
    budget,
    collect,
    expire,
    fleetsize,
    growth,
    metrics,
    reaping,
)
from impetus.scaler.config import DfsSettings
from impetus.scaler.idle import leave_at, spare
from impetus.scaler.model import NODE_RUNNING, Decision, PolicyInput, StreamState
from impetus.scaler.params import PolicyParams
from impetus.scaler.policy import decide
from impetus.scaler.warm import warming_ends
from impetus.storage.decisions import DecisionLog
from impetus.storage.queue import Queue
from impetus.storage.tables import DECISIONS, NODES, table_names_for

log = logging.getLogger(__name__)


@dataclass
class Clients:
    ddb: Any
    asg: Any
    cloudwatch: Any

    @classmethod
    def create(cls, settings: DfsSettings) -> Clients:
        return cls(
            ddb=aws.client("dynamodb", settings.aws),
            asg=aws.client("autoscaling", settings.aws),
            cloudwatch=aws.client("cloudwatch", settings.aws),
        )


@dataclass
class TickResult:
    reaped: int = 0
    corrected: int = 0  # streams whose drifted counters were set to the queue's count
    expired: list[str] = field(default_factory=list)  # streams past their ttl, deleted
    groups: list[dict[str, Any]] = field(default_factory=list)
    active: bool = False  # work waits, runs, or nodes boot/drain: worth ticking again soon
    next_in: float | None = None  # seconds until the next tick is worth running (if active)

    def to_json(self) -> dict[str, Any]:
        return {
            "reaped": self.reaped,
            "corrected": self.corrected,
            "expired": self.expired,
            "groups": self.groups,
            "active": self.active,
            "next_in": self.next_in,
        }


FOLLOW_UP = 10.0  # seconds between ticks while work waits or runs, or nodes boot
DRAIN_POLL = 2.0  # while a drain is in flight: its node reports drained within a heartbeat
# while ticks agree on a scale-in and idle nodes wait for it: its 3 ticks take 4 s, not 20
# (a second of 20 idle nodes is 20 node-seconds)
AGREE_POLL = 1.0
MIN_FOLLOW_UP = 1.0


def is_active(inputs: PolicyInput, decision: Decision) -> bool:
    """Work waits or runs, nodes boot, a drain is in flight, or nodes stay up: worth
    ticking again soon (else the schedule and the API's nudge are enough)."""
    return any(s.backlog or s.running for s in inputs.streams) or any(
        g.pending or g.desired > g.in_service or d.drain or decision.memory.draining
        for g, d in zip(inputs.groups, decision.groups, strict=True)
    )


def follow_up(
    inputs: PolicyInput, decision: Decision, params: PolicyParams, active: bool
) -> float | None:
    """Seconds until the next tick (None: leave it to the schedule and the nudge).

    Every ``FOLLOW_UP`` seconds while active, sooner when the next event is known: every
    ``DRAIN_POLL`` seconds while a drain is in flight (a drained node is terminated
    promptly instead of being billed while it waits for a tick), and right when the next
    idle node of a group with a surplus reaches the idle threshold (it may be drained
    then, not up to a tick later; those beyond the group's warm ones once billed), every
    ``AGREE_POLL`` seconds while the scale-in agreement builds up, and when the group's
    quiet streams let the nodes beyond the warm ones leave. Idle nodes with nobody else
    active are followed too: the fleet must get back to zero without waiting for the
    once-a-minute schedule."""
    now, wait = inputs.now, FOLLOW_UP
    draining = decision.memory.draining
    if draining:
        wait = DRAIN_POLL
    for group, chosen in zip(inputs.groups, decision.groups, strict=True):
        mine = [n for n in inputs.nodes if n.node_class == group.node_class]
        staying = chosen.desired - sum(1 for n in mine if n.id in draining)
        if staying <= max(group.min, chosen.needed):
            continue  # no surplus: nothing to scale in
        early = spare([n for n in mine if n.id not in draining], chosen.warm) > 0
        agreed = decision.memory.agree.get(group.node_class, 0) >= params.scale_in_ticks
        quiet_at = warming_ends(decision.memory, group.node_class)
        if quiet_at is not None and quiet_at > now:
            wait = min(wait, max(MIN_FOLLOW_UP, quiet_at - now))  # the warm count applies then
        for node in mine:
            if (
                node.state == NODE_RUNNING
                and not node.busy
                and node.idle_since is not None
                and node.id not in draining
            ):
                active = True  # an idle node to scale in: follow it, not the schedule
                at = leave_at(node, group, params)
                if early:  # beyond the warm nodes: once billed
                    at = min(at, node.started + params.min_billed)
                soon = at - now if agreed else AGREE_POLL  # agreement first, then the node
                wait = min(wait, max(MIN_FOLLOW_UP, soon))
    return wait if active else None


_errors_seen: dict[str, int] = {}  # stream -> its errors counter at the previous tick
_reaping = reaping.Reaping()  # per process: warm Lambda containers, the local ticker
_auditor = audit.Auditor()  # per process, like the one above
_arrivals = growth.Arrivals()  # per process: each stream's arrival-rate window
_metrics = metrics.MinuteBuffer()  # per process: published once a minute at most
_activity = activity.Activity()  # per process: the last sweep, streams seen idle
_fleet = fleetsize.FleetNotice()  # per process: the fleet size last told the nodes
_delayed_slice = budget.Rotation(budget.DELAYED_STREAMS_PER_TICK)  # per process
_expiry = expire.ExpiryCheck()  # per process: when each stream may next be past its ttl


def reap(
    queue: Queue,
    listing: list[dict[str, Any]],
    now: float,
    items: dict[str, dict[str, Any]] | None = None,
) -> int:
    """Return the jobs of expired leases to the queue: the streams of nodes found dead
    and a rotating slice of the busy ones (impetus.scaler.reaping)."""
    return _reaping.reap(queue, listing, now, items)


def _expire(
    settings: DfsSettings,
    clients: Clients,
    listing: list[dict[str, Any]],
    now: float,
    full: bool,
) -> list[str]:
    """Delete streams past their ttl (impetus.scaler.expire). DFS may not touch payload
    objects: those of a deleted stream expire by the bucket's lifecycle rule."""
    tables_only = Queue(replace(settings.aws, bucket=None), client=clients.ddb)
    try:
        if full:
            _expiry.forget({s["id"] for s in listing})
        return expire.expire_streams(tables_only, listing, now, _expiry)
    except Exception:
        log.exception("expiring streams failed")
        return []


def _tell_fleet(queue: Queue, items: dict[str, dict[str, Any]], now: float) -> None:
    """Publish the live node count for idle nodes' poll (impetus.scaler.fleetsize)."""
    try:
        _fleet.publish(queue.streams.active, fleetsize.live_count(items.values(), now), now)
    except Exception:
        log.exception("publishing the fleet size failed")


def _due_delayed(queue: Queue, listing: list[dict[str, Any]], now: float) -> dict[str, int]:
    """Delayed jobs already due, of a rotating slice of the streams holding delayed jobs
    (``budget.DELAYED_STREAMS_PER_TICK``; the others count 0 this tick)."""
    chosen = _delayed_slice.take(s["id"] for s in listing if s["counts"].get("delayed"))

    def one(sid: str) -> int:
        try:
            return queue.due_delayed(sid, now)
        except Exception:
            log.exception("counting due delayed jobs of %s failed", sid)
            return 0

    return dict(zip(chosen, budget.fan_out(one, chosen), strict=True))


def _oldest_wait(queue: Queue, streams: list[StreamState], now: float) -> float:
    """Seconds the longest-waiting job has waited, sampled at the heads of the
    ``budget.OLDEST_STREAMS_PER_TICK`` streams with the largest backlog (a metric: past
    that many streams with a backlog, an estimate)."""
    waiting = sorted((s for s in streams if s.backlog), key=lambda s: (-s.backlog, s.id))
    chosen = [s.id for s in waiting[: budget.OLDEST_STREAMS_PER_TICK]]
    ages = budget.fan_out(lambda sid: queue.oldest_waiting_age([sid], now), chosen)
    return max(ages, default=0.0)


def _new_errors(listing: list[dict[str, Any]]) -> int:
    """Jobs that ended in an error since this container's previous tick (the stream
    counter only grows; a stream seen for the first time counts from now)."""
    new = 0
    for stream in listing:
        total = int(stream["counts"].get("errors", 0))
        new += max(0, total - _errors_seen.get(stream["id"], total))
        _errors_seen[stream["id"]] = total
    return new


def run(
    settings: DfsSettings, clients: Clients | None = None, now: float | None = None
) -> TickResult:
    clients = clients or Clients.create(settings)
    now = time.time() if now is None else now
    tables = table_names_for(settings.aws)
    queue = Queue(settings.aws, client=clients.ddb)
    result = TickResult()
    # The marked streams (impetus.scaler.activity); every stream once a minute.
    # Idle streams are audited at sweeps; a suspect's confirmation comes at a later tick.
    listing, full = _activity.listing(queue, now, extra=_auditor.suspects)
    items = collect.node_items(clients.ddb, tables[NODES])  # dead nodes' streams are reaped
    result.reaped = reap(queue, listing, now, items)
    # Idle streams expire at sweeps (their ttl is hours), active ones at any tick.
    result.expired = _expire(settings, clients, listing, now, full)
    listing = [s for s in listing if s["id"] not in result.expired]
    result.corrected = audit.audit(queue, listing, now, _auditor, full)
    if result.corrected:  # a stream whose work the counters hid wants its mark now
        marks = queue.streams.active.every_replica()
        activity.Activity.repair(queue, marks, queue.list_streams())
    growth.grow(queue, listing, now, _arrivals)
    decisions = DecisionLog(clients.ddb, tables[DECISIONS])
    memory = decisions.load_memory()
    due = _due_delayed(queue, listing, now)
    streams = collect.stream_states(listing, memory, now, due, full)
    described = collect.describe_groups(clients.asg, settings.node_groups)
    _tell_fleet(queue, items, now)
    inputs = collect.policy_input(
        now, streams, described, settings.node_groups, items, memory, settings.boot_seconds
    )
    decision = decide(inputs, memory, settings.params)
    by_class = {g.node_class: g for g in inputs.groups}
    for group_decision in decision.groups:
        group = by_class[group_decision.node_class]
        try:
            done = actuate.apply(group_decision, group, clients.asg, clients.ddb, tables[NODES])
        except Exception:
            log.exception("applying the decision for %s failed", group.name)
            done = ["failed"]
        if done:
            log.info("%s: %s (%s)", group.name, "; ".join(done), group_decision.reason)
        fleetsize.signal_drains(queue.streams.active, group_decision.drain + group_decision.retire)
        decisions.record(group_decision, inputs)
        result.groups.append({**group_decision.to_json(), "done": done})
    decisions.save_memory(decision.memory)
    busy: dict[str, int] = {}
    for node in inputs.nodes:
        workers = int(items.get(node.id, {}).get("workers_busy", 0))
        busy[node.node_class] = busy.get(node.node_class, 0) + workers
    try:
        oldest = _oldest_wait(queue, streams, now)
        data = metrics.metric_data(inputs, decision, busy, settings.stream_metrics)
        data += metrics.fleet_data(inputs, busy, oldest, _new_errors(listing))
        _metrics.add(data)
        _metrics.publish_if_due(clients.cloudwatch, now)
    except Exception:
        log.exception("publishing metrics failed")
    result.active = is_active(inputs, decision)
    result.next_in = follow_up(inputs, decision, settings.params, result.active)
    return result
