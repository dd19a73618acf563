"""The capacity model: a measured mix (:mod:`impetus.capacity.mix`) scaled to N nodes, S
streams and R jobs/s, checked against the published limits (:mod:`impetus.capacity.limits`).

Assumptions, stated where they are made:

* jobs come in runs (a stream created, its jobs, the stream deleted) of ``jobs_per_run``
  jobs (``DEFAULT_JOBS_PER_RUN``, 100,000, unless said otherwise: ``impetus capacity
  --jobs-per-run``): the busy mix's per-job units x ``rate``, its per-run units (the
  stream's creation and counter items, the code item, the collector's lease, the
  delete: measured as what a run costs whatever its size) x ``rate / jobs_per_run``
  runs/s, and a busy stream's hottest keys take its share of both (a conservative
  figure: consecutive runs are new streams, their items other keys);
* jobs arrive at ``rate`` jobs/s spread evenly over ``busy_streams`` streams, each with
  ``shards`` queue partitions: by default what the shard rule gives that rate
  (:func:`impetus.storage.shardrule.shards_for`, at most ``MAX_SHARDS``: DFS grows a
  stream's shards to it from the arrival rate), and as many counter items; the other
  streams are idle;
* every node polls as the measured idle agent did (the active-streams record's head
  only, whatever S); while work flows, every node polls as the measured busy agent did
  (the head, the marked stream's item, a claim's properties: per node-second), and the
  busy run's other per-job units include what a busy agent adds per job (claims,
  completions, counter writes); a node reads every marked stream's item each poll
  (measured with one: scaled by ``busy_streams``);
* a key kind spread per stream (the stream item, a shard partition, a code item) takes
  all of that stream's load on one partition key (a shard partition, its claim index
  partition and a counter item: 1/``shards``; a GSI partition has a table partition's
  limits, https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html);
  a kind shared by the fleet (``fleet``, or ``stream`` in the idle mix)
  is read by every node, a replica of the active-streams record (``replica``) by
  1/``REPLICAS`` of them; a node's own item only by it; job records and the store
  spread by split-for-heat (random sort keys), so only their table's limits bind;
* DFS ticks every ``DFS_ACTIVE_TICK`` seconds while work flows, once a minute otherwise;
  one tick a minute is a sweep (``SWEEP_EVERY``: every stream, a Scan), the others read
  the marked streams;
* the API Lambda's duration is the one measured against moto (see the mix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from impetus.capacity import fleet, keys, limits
from impetus.capacity.mix import POLLED, Key, Mix, Units
from impetus.core.properties import MAX_SHARDS
from impetus.scaler.activity import SWEEP_EVERY
from impetus.storage.activestreams import REPLICAS
from impetus.storage.shardrule import shards_for
from impetus.storage.streamcounters import counters_for

try:  # the DFS tick's requests in flight at once (a later change); before it, one by one
    from impetus.scaler.budget import REQUEST_CONCURRENCY
except ImportError:
    REQUEST_CONCURRENCY = 1

DFS_ACTIVE_TICK = 10.0  # impetus.scaler.tick.FOLLOW_UP
DFS_IDLE_TICK = 60.0  # the schedule (infra/functions.py DFS_RATE)
FLOWING = 1e-6  # jobs/s: work flows (nodes poll at their busy pace), next to no jobs
DEFAULT_JOBS_PER_RUN = 100_000.0  # a run (one stream's life) of 100,000 jobs
# Kinds with one partition key per queue shard: a stream's load on them spreads 1/shards.
PER_SHARD = ("shard partition", "claim index")
TARGET_USE = 0.5  # issue 19: no item or partition above 50 % of its limit at the target


@dataclass(frozen=True)
class Scenario:
    nodes: int
    streams: int
    rate: float  # jobs/s
    shards: int | None = None  # per busy stream; None: the shard rule's for its rate
    busy_streams: int = 1
    jobs_per_run: float = DEFAULT_JOBS_PER_RUN  # jobs of one run (a stream's life)

    def __post_init__(self) -> None:
        if self.nodes < 0 or self.streams < 1 or self.rate < 0:
            raise ValueError("nodes >= 0, streams >= 1, rate >= 0")
        if not 1 <= self.jobs_per_run < math.inf:
            raise ValueError("jobs per run >= 1")
        if self.shards is not None and self.shards < 1:
            raise ValueError("shards >= 1")
        if not 1 <= self.busy_streams <= self.streams:
            raise ValueError("busy streams must be between 1 and the number of streams")

    @property
    def queue_shards(self) -> int:
        """A busy stream's queue shards (and counter items)."""
        if self.shards is not None:
            return self.shards
        return shards_for(self.rate / self.busy_streams, MAX_SHARDS)

    @property
    def runs_per_second(self) -> float:
        """Runs started (and ended) per second, all busy streams together."""
        return self.rate / self.jobs_per_run


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


def _dfs_tick_rate(s: Scenario) -> float:
    return 1 / (DFS_ACTIVE_TICK if s.rate > 0 else DFS_IDLE_TICK)


def _dfs_rates(s: Scenario) -> tuple[float, float]:
    """(plain ticks, sweeps) per second: a sweep at most every SWEEP_EVERY seconds."""
    ticks = _dfs_tick_rate(s)
    sweeps = min(ticks, 1 / SWEEP_EVERY)
    return ticks - sweeps, sweeps


def _node_polls(mix: Mix, s: Scenario) -> dict[Key, Units]:
    """A node's units per second: idle, or (work flowing) its busy polls instead of the
    idle ones on the streams table."""
    idle = fleet.pace(mix, mix.idle_per_node_second(s.streams, s.nodes), s.nodes, s.rate > 0)
    if s.rate <= 0:
        return idle
    kept = {k: v for k, v in idle.items() if not (k[0] == "streams" and k[1] in POLLED)}
    # measured with one marked stream: a node's listing reads every marked stream's item
    polls = {
        k: v * (s.busy_streams if k == ("streams", "stream item") else 1)
        for k, v in mix.busy_node_reads().items()
    }
    return _add(kept, polls)


def _add(*parts: dict[Key, Units]) -> dict[Key, Units]:
    out: dict[Key, Units] = {}
    for part in parts:
        for key, units in part.items():
            out[key] = out.get(key, Units()) + units
    return out


def dfs_loads(mix: Mix, s: Scenario) -> dict[Key, Units]:
    """DFS's units per second: plain ticks and sweeps."""
    busy_streams = s.busy_streams if s.rate > 0 else 0
    plain, sweeps = _dfs_rates(s)
    tick = mix.dfs_tick(s.nodes, s.streams, busy_streams, shards=s.queue_shards)
    sweep = mix.dfs_tick(s.nodes, s.streams, busy_streams, sweep=True, shards=s.queue_shards)
    return _add({k: v * plain for k, v in tick.items()}, {k: v * sweeps for k, v in sweep.items()})


def table_loads(mix: Mix, s: Scenario) -> dict[Key, Units]:
    """Units per second per (table, key kind), the whole fleet."""
    busy = _add(
        {k: v * s.rate for k, v in mix.busy.items()},
        {k: v * s.runs_per_second for k, v in mix.busy_per_run.items()},
    )
    nodes = {k: v * s.nodes for k, v in _node_polls(mix, s).items()}
    return _add(busy, nodes, dfs_loads(mix, s))


def _hot_share(key: Key, s: Scenario, rate: float) -> float | None:
    """What one key of ``key``'s kind takes of ``rate`` (jobs/s or runs/s, the busy
    streams together); None: a kind no one key bounds."""
    spread = keys.spread(*key)
    per_stream = rate / s.busy_streams
    if spread == "stream":
        return per_stream / (s.queue_shards if key[1] in PER_SHARD else 1)
    if spread == "counter":
        return per_stream / counters_for(s.queue_shards)
    if spread == "fleet":
        return rate
    if spread == "node":
        return rate / max(1, s.nodes)
    return None  # split, table; replica: marks come with a stream's idle -> busy, not jobs


def hot_loads(mix: Mix, s: Scenario) -> dict[Key, Units]:
    """Units per second on the hottest partition key of each kind that one key bounds."""
    out: dict[Key, Units] = {}
    for units_per, rate in ((mix.busy_hot, s.rate), (mix.busy_hot_per_run, s.runs_per_second)):
        for key, units in units_per.items():
            share = _hot_share(key, s, rate)
            if share is not None:
                out[key] = out.get(key, Units()) + units * share
    polled = fleet.pace(mix, mix.idle_hot_per_node_second(), s.nodes, s.rate > 0, one_key=True)
    if s.rate > 0:  # while work flows, the busy polls instead (the marked stream's item)
        polled = {k: v for k, v in polled.items() if k[1] not in POLLED}
        polled = _add(polled, mix.busy_node_reads())
    for key, units in polled.items():
        spread = keys.spread(*key)
        if spread in ("stream", "fleet"):  # one key every node reads (a shared record)
            out[key] = out.get(key, Units()) + units * s.nodes
        elif spread == "replica":  # each node reads one of REPLICAS copies
            out[key] = out.get(key, Units()) + units * math.ceil(s.nodes / REPLICAS)
        elif spread == "node":
            out[key] = out.get(key, Units()) + units
    return out


def api_rps(mix: Mix, s: Scenario) -> float:
    return s.rate * mix.lambda_per_job + s.runs_per_second * mix.lambda_per_run


def lambda_concurrency(mix: Mix, s: Scenario) -> float:
    """Little's law: invocations/s x seconds each, plus DFS's one."""
    return api_rps(mix, s) * mix.lambda_seconds + 1


def dfs_tick_seconds(
    mix: Mix,
    nodes: int,
    streams: int,
    busy_streams: int,
    sweep: bool = True,
    shards: int = 1,
    concurrency: int = REQUEST_CONCURRENCY,
) -> float:
    """Requests of one tick x ``limits.DDB_REQUEST_SECONDS`` / ``concurrency`` (the
    requests DFS has in flight at once); by default a sweep's, the longest tick."""
    tick = mix.dfs_tick(nodes, streams, busy_streams, sweep, shards)
    requests = sum(u.requests for u in tick.values())
    return requests * limits.DDB_REQUEST_SECONDS / max(1, concurrency)


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
    seconds = dfs_tick_seconds(mix, s.nodes, s.streams, busy, shards=s.queue_shards)
    out.append(Check("dfs_timeout", "DFS tick", seconds, limits.limit("dfs_timeout").value))
    return out


def first_limit(found: list[Check]) -> Check:
    """The check closest to (or furthest past) its limit."""
    return max(found, key=lambda c: c.use)


def is_quota(c: Check) -> bool:
    """A raisable account or table quota (table throughput, Lambda concurrency, the API
    Gateway throttle): a value to request, not a wall like an item's or a partition's."""
    return limits.limit(c.limit).raisable


def hard_checks(mix: Mix, s: Scenario) -> list[Check]:
    return [c for c in checks(mix, s) if not is_quota(c)]


def max_rate(mix: Mix, s: Scenario, use: float = 1.0, quotas: bool = True) -> tuple[float, Check]:
    """The highest rate at which every check stays at or below ``use``, and the check that
    binds there (loads grow linearly with the rate: bisection on a log scale);
    ``quotas`` False: the hard limits only (raisable quotas are requested, not walls).
    A rate of 0 when a check is past ``use`` as soon as work flows, before any job counts
    (a per-node term: every node polls at its busy pace)."""
    found = checks if quotas else hard_checks
    lo, hi = 0.0, 1e9
    flowing = first_limit(found(mix, replace(s, rate=FLOWING)))
    if flowing.use > use:
        return 0.0, flowing
    for _ in range(80):
        mid = math.sqrt(max(lo, 1e-3) * hi)
        if first_limit(found(mix, replace(s, rate=mid))).use <= use:
            lo = mid
        else:
            hi = mid
    return lo, first_limit(found(mix, replace(s, rate=hi)))


def cost_per_hour(mix: Mix, s: Scenario) -> dict[str, float]:
    """USD per hour of DynamoDB (on-demand), API Gateway (HTTP API) and Lambda."""
    loads = table_loads(mix, s)
    rcu = sum(u.rcu for u in loads.values())
    wcu = sum(u.wcu for u in loads.values())
    rps = api_rps(mix, s)
    busy = s.busy_streams if s.rate > 0 else 0
    plain, sweeps = _dfs_rates(s)
    k = s.queue_shards
    dfs_seconds = plain * dfs_tick_seconds(
        mix, s.nodes, s.streams, busy, sweep=False, shards=k
    ) + sweeps * dfs_tick_seconds(mix, s.nodes, s.streams, busy, shards=k)
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
