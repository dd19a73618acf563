"""The busy mix split into per-job and per-run units (two run sizes), and the model
charging per-run units per run, not per job."""

from __future__ import annotations

import json

import pytest

from impetus.capacity.mix import Mix, split_count, split_runs
from impetus.capacity.model import (
    DEFAULT_JOBS_PER_RUN,
    Scenario,
    api_rps,
    checks,
    hot_loads,
    table_loads,
)
from impetus.cli.main import main
from impetus.core.exceptions import ConfigError
from tests.unit.test_capacity_model import hot, mix_data, row

ITEM = ("streams", "stream item")
CODE = ("jobs", "code item")


def run_rows(jobs: int) -> list[dict]:
    """A run's totals: the stream item 6 WCU once (create, lease, delete) + 0.01 a job;
    job records 3 WCU a job; the code item put once; a row whose larger run measured
    less (noise: a batch more in the small run)."""
    return [
        row("streams", "stream item", 6 + 0.01 * jobs, 0, 6 + 0.01 * jobs),
        row("jobs", "job record", 0.13 * jobs, 0, 3.0 * jobs, op="BatchWriteItem"),
        row("jobs", "code item", 1, 0, 2, op="BatchWriteItem"),
        row("queue", "delayed partition", 5 if jobs == 300 else 4, 5 if jobs == 300 else 4, 0),
    ]


def by_key(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(r["table"], r["kind"], r["op"]): r for r in rows}


def test_two_run_sizes_recover_a_fixed_and_a_linear_cost():
    per_job, per_run = split_runs(
        run_rows(300), run_rows(600), (300, 600), ("actor", "table", "kind", "op")
    )
    job, run = by_key(per_job), by_key(per_run)
    item = ("streams", "stream item", "UpdateItem")
    assert job[item]["wcu"] == pytest.approx(0.01) and run[item]["wcu"] == pytest.approx(6)
    records = ("jobs", "job record", "BatchWriteItem")
    assert job[records]["wcu"] == pytest.approx(3.0) and records not in run
    code = ("jobs", "code item", "BatchWriteItem")
    assert code not in job and run[code]["wcu"] == pytest.approx(2)
    # less in the larger run: nothing per job (not a negative cost), the small run's per run
    delayed = ("queue", "delayed partition", "UpdateItem")
    assert delayed not in job and run[delayed]["rcu"] == pytest.approx(5)
    assert split_count(10.0, 16.0, (100, 200)) == pytest.approx((0.06, 4.0))
    with pytest.raises(ValueError):
        split_count(1.0, 2.0, (200, 200))


def split_data(per_run_wcu: float = 6.0) -> dict:
    """Schema 3: per job 0.01 WCU on the stream item and 1 on job records; per run
    ``per_run_wcu`` on the stream item and 2 on the code item, 5 API calls."""
    data = mix_data(stream_wcu=0.01)
    data["schema"] = 3
    data["busy"].update(
        per_run=[
            row("streams", "stream item", 3, 0, per_run_wcu),
            row("jobs", "code item", 1, 0, 2),
        ],
        hot_per_run=[
            hot("streams", "stream item", 3, 0, per_run_wcu),
            hot("jobs", "code item", 1, 0, 2),
        ],
        lambda_invocations_per_run=5.0,
    )
    return data


def test_a_per_run_write_is_charged_per_run_not_per_job():
    mix = Mix(split_data(), "hand-made")
    target = Scenario(nodes=10000, streams=10000, rate=100000)
    assert target.jobs_per_run == DEFAULT_JOBS_PER_RUN and target.runs_per_second == 1.0
    # the stream item: per-job writes x rate + per-run writes x runs/s
    assert hot_loads(mix, target)[ITEM].wcu == pytest.approx(0.01 * 100000 + 6 * 1.0)
    assert hot_loads(mix, target)[CODE].wcu == pytest.approx(2 * 1.0)
    assert table_loads(mix, target)[ITEM].wcu == pytest.approx(1000 + 6)
    assert api_rps(mix, target) == pytest.approx(0.01 * 100000 + 5 * 1.0)
    short = Scenario(nodes=10000, streams=10000, rate=100000, jobs_per_run=1000)
    assert hot_loads(mix, short)[ITEM].wcu == pytest.approx(1000 + 6 * 100)
    stream_item = next(
        c for c in checks(mix, short)
        if c.limit == "partition_wcu" and c.where == "streams: hottest stream item"
    )  # fmt: skip
    assert stream_item.use == pytest.approx(1.6)
    with pytest.raises(ValueError, match="jobs per run"):
        Scenario(10, 1, 1, jobs_per_run=0)


def test_busy_polls_are_the_larger_runs_per_second():
    data = split_data()
    poll = {"actor": "node", "op": "GetItem"}
    data["busy"]["per_job"].append(row("streams", "active head", 0.1, 0.1, 0, **poll))
    data["busy"]["per_run"].append(row("streams", "active head", 10, 10, 0, **poll))
    mix = Mix(data, "hand-made")
    # 100 jobs in 10 s: (0.1 x 100 + 10) reads / 10 s
    assert mix.busy_node_reads()[("streams", "active head")].rcu == pytest.approx(2.0)
    assert ("streams", "active head") not in mix.busy_per_run


def test_a_schema_3_mix_without_its_per_run_part_is_malformed():
    data = split_data()
    del data["busy"]["per_run"]
    with pytest.raises(ConfigError, match="malformed"):
        Mix(data)
    with pytest.raises(ConfigError, match="re-measure"):
        Mix({"schema": 1})


def test_cli_jobs_per_run(tmp_path, capsys):
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(split_data()))
    assert main(["capacity", "--mix", str(path), "--jobs-per-run", "500"]) == 0
    assert "runs of 500 jobs" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["capacity", "--mix", str(path), "--jobs-per-run", "0"])
    assert exc.value.code == 2
