"""The capacity model's arithmetic on a hand-made mix, its limits' sources, its CLI."""

from __future__ import annotations

import json
import math

import pytest

from impetus.capacity import limits
from impetus.capacity.mix import Mix, Units, scan_units
from impetus.capacity.model import (
    Scenario,
    checks,
    cost_per_hour,
    first_limit,
    launch_minutes,
    max_rate,
    ramp_minutes,
)
from impetus.cli.main import main
from impetus.core.properties import MAX_SHARDS
from impetus.scaler.audit import AUDIT_PARTITIONS
from impetus.storage.activestreams import (
    FULL_REFRESH_EVERY,
    IDLE_READS_PER_SECOND,
    REPLICAS,
    SHARDS,
)
from node_agent.config import DEFAULT_IDLE_HEARTBEAT_INTERVAL


def row(table, kind, requests=0.0, rcu=0.0, wcu=0.0, actor="api", op="UpdateItem"):
    return {"actor": actor, "table": table, "kind": kind, "op": op,
            "requests": requests, "rcu": rcu, "wcu": wcu}  # fmt: skip


def hot(table, kind, requests=0.0, rcu=0.0, wcu=0.0, keys=1):
    return {"table": table, "kind": kind, "keys": keys,
            "requests": requests, "rcu": rcu, "wcu": wcu}  # fmt: skip


def mix_data(stream_wcu=0.1, heartbeat_wcu=0.2):
    """Per job: 0.1 WCU on the stream item (10,000 jobs/s fill its 1,000 WCU/s), 1 WCU
    spread over job records; idle: a heartbeat and a Scan per node-second."""
    idle = [
        row("nodes", "node item", 0.2, 0, heartbeat_wcu, "node", "PutItem"),
        row("streams", "scan", 1.0, 1.0, 0, "node", "Scan"),
    ]
    dfs = {
        "per_tick": [row("decisions", "memory item", 2, 1, 1, "dfs")],
        "per_node": [],
        "per_stream": [row("streams", "stream item", 1, 1, 0, "dfs", "GetItem")],
        "per_busy_stream": [],
        "seconds": {"base": 0.1},
    }
    return {
        "schema": 2,
        "busy": {
            "jobs": 100,
            "seconds": 10.0,
            "per_job": [
                row("streams", "stream item", 0.1, 0, stream_wcu),
                row("jobs", "job record", 1, 0, 1.0),
            ],
            "hot_per_job": [
                hot("streams", "stream item", 0.1, 0, stream_wcu),
                hot("jobs", "job record", 1, 0, 1.0),
            ],
            "lambda_invocations_per_job": 0.01,
            "lambda_ms": 20.0,
        },
        "idle": [
            {"streams": 1, "per_node_second": idle, "hot_per_node_second": []},
            {"streams": 10, "per_node_second": idle, "hot_per_node_second": []},
        ],
        "dfs": {
            "extra": 10,
            **dfs,
            "sweep": dict(dfs),
            "item_bytes": {"stream": 400.0, "node": 200.0},
        },
    }


@pytest.fixture
def mix():
    return Mix(mix_data(), "hand-made")


def test_the_limit_that_binds_first_is_reported_with_its_place(mix):
    found = checks(mix, Scenario(nodes=4, streams=1, rate=20000, shards=1))
    worst = first_limit(found)
    assert worst.limit == "partition_wcu" and worst.where == "streams: hottest stream item"
    assert worst.load == pytest.approx(2000) and worst.use == pytest.approx(2.0)
    rate, binding = max_rate(mix, Scenario(nodes=4, streams=1, rate=1, shards=1))
    assert rate == pytest.approx(10000, rel=1e-3) and binding.limit == "partition_wcu"


def test_spreading_the_rate_over_streams_relieves_the_stream_item(mix):
    one = first_limit(checks(mix, Scenario(4, 10, 20000, busy_streams=1)))
    ten = [c for c in checks(mix, Scenario(4, 10, 20000, busy_streams=10))
           if c.where == "streams: hottest stream item" and c.limit == "partition_wcu"]  # fmt: skip
    assert one.use == pytest.approx(2.0) and ten[0].use == pytest.approx(0.2)


def test_headroom_falls_as_nodes_grow(mix):
    def nodes_table(n):
        return next(c for c in checks(mix, Scenario(n, 1, 0)) if c.where == "nodes table"
                    and c.limit == "table_wru")  # fmt: skip

    small, large = nodes_table(100), nodes_table(100000)
    # an idle node beats every idle_heartbeat_interval (its 200-byte item: 1 WCU), not
    # at the rate a few seconds' window caught
    beat = 1 / DEFAULT_IDLE_HEARTBEAT_INTERVAL
    assert small.load == pytest.approx(100 * beat) and large.load == pytest.approx(100000 * beat)
    assert large.headroom < small.headroom
    # 400,000 nodes: each one's Scan (1 RCU/s) passes the table's 40,000 before the
    # heartbeats do
    worst = first_limit(checks(mix, Scenario(400000, 1, 0)))
    assert (worst.where, worst.limit) == ("streams table", "table_rru")


def test_scans_are_recomputed_from_the_table_size(mix):
    assert scan_units(10, 400) == scan_units(1, 1)  # 4 KB: one page, one unit
    big = scan_units(10000, 400)  # 4,000,000 bytes: 4 pages, 977 units
    assert big.requests == 4 and big.rcu == math.ceil(10000 * 400 / 4096)
    loads = {c.where: c.load for c in checks(mix, Scenario(10, 10000, 0)) if c.limit == "table_rru"}
    # 10 nodes' Scans a second (and their shards' re-read every 10 min), and DFS's tick a
    # minute: its Scan and, its audit's, a GetItem per stream of at most AUDIT_PARTITIONS
    # / 2 (an idle stream's 2 partitions)
    nodes = 10 * (big.rcu + SHARDS / FULL_REFRESH_EVERY)
    dfs = (big.rcu + AUDIT_PARTITIONS / 2 * 1.0) / 60
    assert loads["streams table"] == pytest.approx(nodes + dfs, rel=1e-6)


def test_costs_add_up_from_units_and_prices(mix):
    cost = cost_per_hour(mix, Scenario(nodes=1000, streams=1, rate=0))
    heartbeats = 1000 / DEFAULT_IDLE_HEARTBEAT_INTERVAL * limits.PRICE_WRITE_UNIT * 3600
    # the Scan a node-second of the hand-made mix, and the shards' re-read every 10 min
    reads = 1000 * (1.0 + SHARDS / FULL_REFRESH_EVERY) * limits.PRICE_READ_UNIT * 3600
    assert cost["dynamodb"] == pytest.approx(heartbeats + reads, rel=0.01)
    assert cost["api_gateway"] == 0
    assert cost["total"] == pytest.approx(sum(v for k, v in cost.items() if k != "total"))


def test_growth_of_tables_and_fleets():
    assert ramp_minutes(4000, 4000) == 0 and ramp_minutes(16000, 4000) == 60
    assert launch_minutes(1000) == 0 and launch_minutes(1120) == pytest.approx(1.0)


def test_every_limit_carries_a_source():
    assert len(limits.LIMITS) >= 15
    for lim in limits.LIMITS.values():
        assert lim.source.startswith("https://"), lim.key
        assert lim.name and lim.unit and lim.scope


def test_a_bad_mix_is_one_clear_error(tmp_path):
    from impetus.core.exceptions import ConfigError

    with pytest.raises(ConfigError, match="schema"):
        Mix({"schema": 99})
    with pytest.raises(ConfigError, match="malformed"):
        Mix({"schema": 2, "busy": {}})


def test_cli_prints_the_tables_and_exits_0(tmp_path, capsys):
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(mix_data()))
    plot = tmp_path / "capacity.png"
    assert main(["capacity", "--mix", str(path), "--nodes", "100", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "| limit | where | load | limit value | use |" in out
    assert "## Issue 19's targets" in out and "first limit reached" in out
    assert plot.stat().st_size > 10000


@pytest.mark.parametrize(
    "argv",
    [["--nodes", "0"], ["--rate", "-1"], ["--rate", "inf"], ["--shards", "x"]],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["capacity", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err


def test_a_missing_mix_or_impossible_scenario_is_one_line_exit_1(tmp_path, capsys):
    assert main(["capacity", "--mix", str(tmp_path / "none.json")]) == 1
    assert main(["capacity", "--mix", str(tmp_path / "none.json")]) == 1
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(mix_data()))
    assert main(["capacity", "--mix", str(path), "--streams", "1", "--busy-streams", "2"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("impetus: error:") for line in lines)


# --- the redesign: counter items, the shard rule, the active-streams record, sweeps -------


def redesigned_data():
    """A busy run of 100 jobs in 10 s on one node: a counter write per job (0.5 WCU) and
    the node's listing (the head and the marked stream's item, 1 GetItem each a second);
    idle: the head a second."""
    data = mix_data()
    polls = [
        row("streams", "active head", 10, 5, 0, "node", "GetItem"),
        row("streams", "stream item", 10, 10, 0, "node", "BatchGetItem"),
    ]
    data["busy"]["per_job"] = [
        row("streams", "counter item", 1, 0, 0.5, "node"),
        *[{**r, "requests": r["requests"] / 100, "rcu": r["rcu"] / 100} for r in polls],
    ]
    data["busy"]["hot_per_job"] = [
        hot("streams", "counter item", 1, 0, 0.5),
        hot("streams", "stream item", 0.1, 0.1, 0),
    ]
    idle = [row("streams", "active head", 1, 0.5, 0, "node", "GetItem")]
    heads = [hot("streams", "active head", 1, 0.5, 0)]
    for window in data["idle"]:
        window["per_node_second"], window["hot_per_node_second"] = idle, heads
    return data


def hottest(found, where, limit):
    return next(c for c in found if c.where == where and c.limit == limit)


def test_keys_of_the_streams_table_are_told_apart():
    from impetus.capacity.keys import classify, spread

    assert classify("streams", {"stream": {"S": "s1"}}) == ("stream item", "s1")
    assert classify("streams", {"stream": "s1#c3"}) == ("counter item", "s1#c3")
    assert classify("streams", {"stream": "~active#2#head"})[0] == "active head"
    assert classify("streams", {"stream": "~active#2#5"})[0] == "active shard"
    assert spread("streams", "counter item") == "counter"
    assert spread("streams", "active head") == "replica"


def test_shards_come_from_the_shard_rule_for_the_rate():
    assert Scenario(10, 1, 0).queue_shards == 1
    assert Scenario(10, 1, 1000).queue_shards == 2  # ~790 jobs/s a shard
    assert Scenario(10, 1, 100000).queue_shards == min(MAX_SHARDS, 127)
    assert Scenario(10, 4, 100000, busy_streams=4).queue_shards == 32
    assert Scenario(10, 1, 100000, shards=3).queue_shards == 3


def test_counter_writes_spread_over_the_streams_counter_items():
    mix = Mix(redesigned_data(), "hand-made")
    one = hottest(checks(mix, Scenario(4, 1, 1000, shards=1)), "streams: hottest counter item",
                  "partition_wcu")  # fmt: skip
    eight = hottest(checks(mix, Scenario(4, 1, 1000, shards=8)), "streams: hottest counter item",
                    "partition_wcu")  # fmt: skip
    assert one.load == pytest.approx(500) and eight.load == pytest.approx(500 / 8)


def test_idle_nodes_read_one_replica_head_whatever_the_streams():
    mix = Mix(redesigned_data(), "hand-made")
    few, many = (checks(mix, Scenario(10000, s, 0)) for s in (1, 10000))
    head = hottest(few, "streams: hottest active head", "partition_rcu")
    # 10,000 idle nodes share 1,000 head reads/s: each reads every 10 s
    share = IDLE_READS_PER_SECOND / 10000
    assert head.load == pytest.approx(0.5 * share * math.ceil(10000 / REPLICAS))
    assert hottest(many, "streams: hottest active head", "partition_rcu").load == head.load
    table = {s: hottest(c, "streams table", "table_rru").load for s, c in ((1, few), (10000, many))}
    # what grows with S is DFS's sweep a minute (its Scan and its audit's GetItem per
    # stream, of at most AUDIT_PARTITIONS / 2 streams)
    audited = AUDIT_PARTITIONS / 2
    sweep = (scan_units(10000, 400).rcu + audited * 1.0 - scan_units(1, 400).rcu - 1.0) / 60
    assert table[10000] - table[1] == pytest.approx(sweep)


def test_busy_nodes_polls_go_with_the_nodes_not_the_jobs():
    mix = Mix(redesigned_data(), "hand-made")
    # 100 jobs in 10 s: the node's 10 head and 10 item reads a job are 1 a second each
    assert mix.busy_node_reads()[("streams", "stream item")].rcu == pytest.approx(1.0)
    assert ("streams", "stream item") not in mix.busy
    item = [hottest(checks(mix, Scenario(n, 1, 10, shards=1)), "streams: hottest stream item",
                    "partition_rcu").load for n in (1000, 2000)]  # fmt: skip
    # every node reads the marked stream's item a second; its other reads go with the jobs
    assert item[1] - item[0] == pytest.approx(1000 * 1.0)
    from impetus.capacity.model import table_loads

    # ... and every marked stream's item: ten busy streams, ten items a node-second
    one, ten = (table_loads(mix, Scenario(1000, 10, 10, 1, b))[("streams", "stream item")].rcu
                for b in (1, 10))  # fmt: skip
    assert ten - one == pytest.approx(9 * 1000 * 1.0)


def test_a_tick_difference_below_zero_costs_nothing():
    data = mix_data()
    data["dfs"]["sweep"]["per_node"] = [row("streams", "active shard", -0.2, 0, -0.2, "dfs")]
    tick = Mix(data, "hand-made").dfs_tick(1000, 1, 0, sweep=True)
    assert tick[("streams", "active shard")] == Units()


def test_dfs_scans_the_streams_only_at_its_sweep_once_a_minute():
    mix = Mix(mix_data(), "hand-made")
    plain = mix.dfs_tick(10, 10000, 1)
    sweep = mix.dfs_tick(10, 10000, 1, sweep=True)
    assert ("streams", "scan") not in plain and sweep[("streams", "scan")].rcu > 0
    from impetus.capacity.model import dfs_loads

    # busy: a tick every 10 s, one in six a sweep
    busy = dfs_loads(mix, Scenario(10, 10000, 100, shards=1))
    scan = busy[("streams", "scan")].rcu
    assert scan == pytest.approx(scan_units(10000, 400).rcu / 60)


# --- wave 2: the idle fleet's budget, shards past 64, DFS's bounded reads ----------------


def test_idle_head_reads_are_the_fleets_budget_not_n_times_one_agent():
    from impetus.capacity.model import table_loads

    mix = Mix(redesigned_data(), "hand-made")  # one agent: a head read (0.5 RCU) a second

    def heads(n):
        return table_loads(mix, Scenario(n, 1, 0))[("streams", "active head")]

    # up to IDLE_READS_PER_SECOND nodes each polls every poll_interval (1 s) ...
    assert heads(500).requests == pytest.approx(500)
    # ... past it the fleet shares the budget: min(N / poll_interval, budget)
    for n in (1000, 10000, 100000):
        assert heads(n).requests == pytest.approx(min(n, IDLE_READS_PER_SECOND))
        assert heads(n).rcu == pytest.approx(0.5 * min(n, IDLE_READS_PER_SECOND))


def test_idle_heartbeats_at_the_idle_cadence_busy_ones_at_the_lease_cadence():
    from impetus.capacity.model import table_loads
    from node_agent.config import DEFAULT_HEARTBEAT_INTERVAL

    mix = Mix(redesigned_data(), "hand-made")
    idle = table_loads(mix, Scenario(10000, 1, 0))[("nodes", "node item")]
    busy = table_loads(mix, Scenario(10000, 1, 10, shards=1))[("nodes", "node item")]
    assert idle.wcu == pytest.approx(10000 / DEFAULT_IDLE_HEARTBEAT_INTERVAL)  # 182 WCU/s
    assert busy.wcu == pytest.approx(10000 / DEFAULT_HEARTBEAT_INTERVAL)


def test_the_measured_idle_fleet_costs_under_a_dollar_an_hour():
    """The committed mix: 10,000 idle nodes, head reads ~500 RCU/s, beats ~182 WCU/s,
    shard re-reads ~133 RCU/s (the idle branch's arithmetic: ~$0.7/h)."""
    from pathlib import Path

    mix = Mix.load(Path(__file__).resolve().parents[2] / "docs" / "capacity-mix.json")
    cost = cost_per_hour(mix, Scenario(10000, 1, 0))
    assert 0.5 < cost["total"] <= 1.0


def test_counter_items_stop_at_64_while_shards_grow_to_256():
    from impetus.storage.streamcounters import MAX_COUNTER_SHARDS

    mix = Mix(redesigned_data(), "hand-made")

    def counter(shards):
        found = checks(mix, Scenario(4, 1, 1000, shards=shards))
        return hottest(found, "streams: hottest counter item", "partition_wcu").load

    assert counter(64) == pytest.approx(500 / 64)
    assert counter(MAX_SHARDS) == pytest.approx(500 / MAX_COUNTER_SHARDS) == counter(64)


def test_dfs_reaps_at_most_reap_shards_and_audits_at_most_its_partitions():
    from impetus.storage.jobqueue.layout import REAP_SHARDS

    data = mix_data()
    data["dfs"]["per_busy_stream"] = [row("queue", "shard partition", 2, 2, 0, "dfs", "Query")]
    data["dfs"]["sweep"]["per_stream"] = [row("queue", "shard partition", 1, 1, 0, "dfs", "Query")]
    mix = Mix(data, "hand-made")
    reaps = {k: mix.dfs_tick(1, 1, 1, shards=k)[("queue", "shard partition")].requests
             for k in (1, 4, 256)}  # fmt: skip
    assert reaps == {1: 2, 4: 8, 256: 2 * REAP_SHARDS}
    audits = mix.dfs_tick(1, 100000, 0, sweep=True)[("queue", "shard partition")].requests
    assert audits == AUDIT_PARTITIONS / 2


def test_dfs_busy_stream_work_stays_within_the_tick_budgets_caps():
    """Past the budget's caps, more busy streams add only the listing's reads: reaps take
    a slice of REAP_STREAMS_PER_TICK streams, the oldest-wait sample
    OLDEST_STREAMS_PER_TICK streams of at most OLDEST_SAMPLE shards each."""
    from impetus.scaler.budget import OLDEST_STREAMS_PER_TICK, REAP_STREAMS_PER_TICK
    from impetus.storage.jobqueue.layout import OLDEST_SAMPLE, REAP_SHARDS

    data = mix_data()
    extra = data["dfs"]["extra"]
    sampled = min(extra, OLDEST_STREAMS_PER_TICK)  # the measured tick hit the sample's cap
    data["dfs"]["per_busy_stream"] = [
        row("queue", "shard partition", 1, 1, 0, "dfs", "Query"),  # a reap
        row("streams", "stream item", 1, 1, 0, "dfs", "GetItem"),  # a reap's read
        row("queue", "claim index", sampled / extra, 0.5, 0, "dfs", "Query"),  # the sample
        row("streams", "counter item", 0.01, 0.01, 0, "dfs", "BatchGetItem"),  # listing
    ]
    mix = Mix(data, "hand-made")

    def busy_part(busy: int, shards: int) -> dict:
        """Requests by key kind that the busy streams add to a tick."""
        base, tick = mix.dfs_tick(1, 1, 0, shards=shards), mix.dfs_tick(1, 1, busy, shards=shards)
        return {k: u.requests - base.get(k, Units()).requests for k, u in tick.items()}

    many = busy_part(10_000, shards=127)
    assert many[("queue", "shard partition")] == REAP_STREAMS_PER_TICK * REAP_SHARDS
    assert many[("streams", "stream item")] == REAP_STREAMS_PER_TICK
    assert many[("queue", "claim index")] == pytest.approx(OLDEST_STREAMS_PER_TICK * OLDEST_SAMPLE)
    assert many[("streams", "counter item")] == pytest.approx(100)  # 10,000 / 100 a BatchGet
    few = busy_part(5, shards=1)  # under every cap: per stream
    assert few[("queue", "shard partition")] == 5
    assert few[("queue", "claim index")] == pytest.approx(5)


def test_dfs_tick_time_divides_by_the_requests_in_flight(mix):
    from impetus.capacity.model import dfs_tick_seconds

    one = dfs_tick_seconds(mix, 100, 1000, 10, concurrency=1)
    assert dfs_tick_seconds(mix, 100, 1000, 10, concurrency=8) == pytest.approx(one / 8)
    requests = sum(u.requests for u in mix.dfs_tick(100, 1000, 10, sweep=True).values())
    assert one == pytest.approx(requests * limits.DDB_REQUEST_SECONDS)


def verdict(found, start):
    return next(v for v in found if v.target.startswith(start))


def test_a_raisable_quota_is_a_value_to_request_not_the_wall_that_binds():
    from impetus.capacity.report import verdicts

    # 1 WCU per job on job records: the jobs table's 40,000 WRU/s quota binds at 40,000
    # jobs/s; the stream item's 0.001 WCU a job (a hard limit) at 1,000,000 jobs/s
    mix = Mix(mix_data(stream_wcu=0.001), "hand-made")
    with_quotas, _ = max_rate(mix, Scenario(4, 1, 1, shards=1))
    hard, binding = max_rate(mix, Scenario(4, 1, 1, shards=1), quotas=False)
    assert with_quotas == pytest.approx(40000, rel=1e-3)
    assert hard == pytest.approx(1e6, rel=1e-3) and binding.limit == "partition_wcu"
    one = verdict(verdicts(mix, shards=1), "one stream")
    assert one.holds and "1,000,000 jobs/s" in one.value
    (jobs,) = [q for q in one.quotas if q.where == "jobs table"]
    # 100,000 jobs/s write 100,000 WRU/s: request twice that (50 % use), the default 40,000
    assert jobs.load == pytest.approx(100000) and jobs.needed == 200000
    assert jobs.default == 40000 and jobs.source == limits.DDB_QUOTAS
    # the target "no item or partition above 50 %" is about items and partitions only
    load = verdict(verdicts(mix, shards=1), "no item or partition")
    assert load.holds and "partition" in load.value
    assert any(q.where == "jobs table" for q in load.quotas)


def test_one_stream_reports_a_per_node_term_over_its_limit_before_any_job():
    from impetus.capacity.report import render_verdicts, verdicts

    # every busy node reads the marked stream's item a second (1 RCU): 10,000 nodes are
    # 10,000 RCU/s on one item, over its partition's 3,000 before any job
    mix = Mix(redesigned_data(), "hand-made")
    rate, binding = max_rate(mix, Scenario(10000, 1, 1), quotas=False)
    assert rate == 0 and binding.where == "streams: hottest stream item"
    one = verdict(verdicts(mix), "one stream")
    assert not one.holds
    assert one.value.startswith("none: ") and "at 10,000 nodes before any job" in one.value
    assert "0 jobs/s" not in one.value and "(1 shards)" not in one.value
    # the scenario's shards are the shard rule's for the target rate, not for no rate
    assert f"{Scenario(10, 1, 100000).queue_shards} at that rate" in one.target
    assert "none: " in render_verdicts([one])
