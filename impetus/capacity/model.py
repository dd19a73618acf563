"""The capacity model: a measured mix (:mod:`impetus.capacity.mix`) scaled to N nodes, S
streams and R jobs/s, checked against the published limits (:mod:`impetus.capacity.limits`).

Assumptions, stated where they are made:

* jobs arrive at ``rate`` jobs/s spread evenly over ``busy_streams`` streams, each with
  ``shards`` queue partitions; the other streams are idle;
* every node polls as the measured idle agent did; the busy run's per-job units already
  include what busy agents add per job (their polls while work flows);
* a key kind spread per stream (the stream item, a shard partition, a code item) takes
  all of that stream's load on one partition key (a shard partition: 1/``shards``); a
  kind shared by the fleet (spread ``stream`` or ``fleet`` in the idle mix) is read by
  every node; a node's own item only by it; job records and the store spread by
  split-for-heat (random sort keys), so only their table's limits bind;
* DFS ticks every ``DFS_ACTIVE_TICK`` seconds while work flows, once a minute otherwise;
* the API Lambda's duration is the one measured against moto (see the mix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from impetus.capacity import keys, limits
from impetus.capacity.mix import Key, Mix, Units

DFS_ACTIVE_TICK = 10.0  # impetus.scaler.tick.FOLLOW_UP
DFS_IDLE_TICK = 60.0  # the schedule (infra/functions.py DFS_RATE)
TARGET_USE = 0.5  # issue 19: no item or partition above 50 % of its limit at the target


@dataclass(frozen=True)
class Scenario:
    nodes: int
    streams: int
    rate: float  # jobs/s
    shards: int = 1
    busy_streams: int = 1

    def __post_init__(self) -> None:
        if self.nodes < 0 or self.streams < 1 or self.rate < 0 or self.shards < 1:
            raise ValueError("nodes >= 0, streams >= 1, rate >= 0, shards >= 1")
        if not 1 <= self.busy_streams <= self.streams:
            raise ValueError("busy streams must be between 1 and the number of streams")


@dataclass(frozen=True)
class Check:
    """One limit at one place: ``load`` against ``capacity`` (same unit)."""

    limit: str  # a key of limits.LIMITS
    where: str
    load: float
    capacity: float

    @property
    def use(self) -> float:
        return self.load / self.capacity if self.capacity else math.inf

    @property
    def headroom(self) -> float:
        """How many times the load fits: capacity / load."""
        return self.capacity / self.load if self.load else math.inf


def _per_stream_rate(s: Scenario) -> float:
    return s.rate / s.busy_streams


def _dfs_tick_rate(s: Scenario) -> float:
    return 1 / (DFS_ACTIVE_TICK if s.rate > 0 else DFS_IDLE_TICK)


def table_loads(mix: Mix, s: Scenario) -> dict[Key, Units]:
    """Units per second per (table, key kind), the whole fleet."""
    busy = {k: v * s.rate for k, v in mix.busy.items()}
    idle = {k: v * s.nodes for k, v in mix.idle_per_node_second(s.streams, s.nodes).items()}
    busy_streams = s.busy_streams if s.rate > 0 else 0
    dfs = mix.dfs_tick(s.nodes, s.streams, busy_streams)
    tick = {k: v * _dfs_tick_rate(s) for k, v in dfs.items()}
    out: dict[Key, Units] = {}
    for part in (busy, idle, tick):
        for key, units in part.items():
            out[key] = out.get(key, Units()) + units
    return out


def hot_loads(mix: Mix, s: Scenario) -> dict[Key, Units]:
    """Units per second on the hottest partition key of each kind that one key bounds."""
    out: dict[Key, Units] = {}
    per_stream = _per_stream_rate(s)
    for key, units in mix.busy_hot.items():
        spread = keys.spread(*key)
        if spread == "stream":
            share = per_stream / (s.shards if key[1] == "shard partition" else 1)
        elif spread == "fleet":
            share = s.rate
        elif spread == "node":
            share = s.rate / max(1, s.nodes)
        else:
            continue
        out[key] = out.get(key, Units()) + units * share
    for key, units in mix.idle_hot_per_node_second().items():
        spread = keys.spread(*key)
        if spread in ("stream", "fleet"):  # one key every node reads (a shared record)
            out[key] = out.get(key, Units()) + units * s.nodes
        elif spread == "node":
            out[key] = out.get(key, Units()) + units
    return out


def api_rps(mix: Mix, s: Scenario) -> float:
    return s.rate * mix.lambda_per_job


def lambda_concurrency(mix: Mix, s: Scenario) -> float:
    """Little's law: invocations/s x seconds each, plus DFS's one."""
    return api_rps(mix, s) * mix.lambda_seconds + 1


def dfs_tick_seconds(mix: Mix, nodes: int, streams: int, busy_streams: int) -> float:
    """Requests of one tick x ``limits.DDB_REQUEST_SECONDS`` (made one after another)."""
    tick = mix.dfs_tick(nodes, streams, busy_streams)
    return sum(u.requests for u in tick.values()) * limits.DDB_REQUEST_SECONDS


def checks(mix: Mix, s: Scenario) -> list[Check]:
    out: list[Check] = []
    for (table, kind), u in sorted(hot_loads(mix, s).items()):
        where = f"{table}: hottest {kind}"
        out.append(Check("partition_rcu", where, u.rcu, limits.limit("partition_rcu").value))
        out.append(Check("partition_wcu", where, u.wcu, limits.limit("partition_wcu").value))
    per_table: dict[str, Units] = {}
    for (table, _), u in table_loads(mix, s).items():
        per_table[table] = per_table.get(table, Units()) + u
    for table, u in sorted(per_table.items()):
        out.append(Check("table_rru", f"{table} table", u.rcu, limits.limit("table_rru").value))
        out.append(Check("table_wru", f"{table} table", u.wcu, limits.limit("table_wru").value))
    out.append(Check("apigw_rps", "API Gateway", api_rps(mix, s), limits.limit("apigw_rps").value))
    out.append(
        Check(
            "lambda_concurrency",
            "API + DFS Lambdas",
            lambda_concurrency(mix, s),
            limits.limit("lambda_concurrency").value,
        )
    )
    busy = s.busy_streams if s.rate > 0 else 0
    seconds = dfs_tick_seconds(mix, s.nodes, s.streams, busy)
    out.append(Check("dfs_timeout", "DFS tick", seconds, limits.limit("dfs_timeout").value))
    return out


def first_limit(found: list[Check]) -> Check:
    """The check closest to (or furthest past) its limit."""
    return max(found, key=lambda c: c.use)


def max_rate(mix: Mix, s: Scenario, use: float = 1.0) -> tuple[float, Check]:
    """The highest rate at which every check stays at or below ``use``, and the check that
    binds there (loads grow linearly with the rate: bisection on a log scale)."""
    lo, hi = 0.0, 1e9
    if first_limit(checks(mix, replace(s, rate=0.0))).use > use:
        return 0.0, first_limit(checks(mix, replace(s, rate=0.0)))
    for _ in range(80):
        mid = math.sqrt(max(lo, 1e-3) * hi)
        if first_limit(checks(mix, replace(s, rate=mid))).use <= use:
            lo = mid
        else:
            hi = mid
    return lo, first_limit(checks(mix, replace(s, rate=hi)))


def cost_per_hour(mix: Mix, s: Scenario) -> dict[str, float]:
    """USD per hour of DynamoDB (on-demand), API Gateway (HTTP API) and Lambda."""
    loads = table_loads(mix, s)
    rcu = sum(u.rcu for u in loads.values())
    wcu = sum(u.wcu for u in loads.values())
    rps = api_rps(mix, s)
    busy = s.busy_streams if s.rate > 0 else 0
    dfs_seconds = dfs_tick_seconds(mix, s.nodes, s.streams, busy) * _dfs_tick_rate(s)
    per_second = {
        "dynamodb": rcu * limits.PRICE_READ_UNIT + wcu * limits.PRICE_WRITE_UNIT,
        "api_gateway": rps * limits.PRICE_API_GATEWAY_REQUEST,
        "lambda": (rps + _dfs_tick_rate(s)) * limits.PRICE_LAMBDA_REQUEST
        + (rps * mix.lambda_seconds + dfs_seconds)
        * limits.LAMBDA_MEMORY_GB
        * limits.PRICE_LAMBDA_GB_SECOND,
    }
    out = {k: v * 3600 for k, v in per_second.items()}
    out["total"] = sum(out.values())
    return out


def ramp_minutes(load: float, initial: float) -> float:
    """Minutes for a new on-demand table to reach ``load`` from ``initial``, doubling its
    previous peak every 30 minutes at most (limits.DDB_ON_DEMAND_THROTTLING)."""
    if load <= initial:
        return 0.0
    doublings = math.ceil(math.log2(load / initial))
    return doublings * limits.limit("peak_doubling").value / 60


def launch_minutes(nodes: int) -> float:
    """Minutes to launch ``nodes`` instances from none: the RunInstances resource bucket,
    then its refill (limits.EC2_THROTTLING)."""
    bucket = limits.limit("ec2_run_bucket").value
    refill = limits.limit("ec2_run_refill").value
    return max(0.0, nodes - bucket) / refill / 60
