"""The simulator: traces, metrics, the bursty targets, the CLI and its plot."""

from __future__ import annotations

import json

import pytest

from impetus.cli import main
from impetus.scaler import estimate
from impetus.scaler.sim import simulate, traces
from impetus.scaler.sim.fleet import Action


@pytest.fixture(scope="module")
def bursty():
    trace = traces.make("bursty")
    return {p: simulate.run(trace, p) for p in ("impetus", "target-tracking", "dask-adaptive")}


def test_traces_are_seeded_and_sorted():
    a, b = traces.make("diurnal", seed=3), traces.make("diurnal", seed=3)
    assert a.jobs == b.jobs and list(a.jobs) == sorted(a.jobs)
    with pytest.raises(ValueError):
        traces.make("nope")


def test_every_job_runs_and_impetus_never_interrupts_one(bursty):
    for result in bursty.values():
        assert result.unfinished == 0
    assert bursty["impetus"].interrupted == 0


def test_impetus_reverses_at_most_once_per_burst(bursty):
    result = bursty["impetus"]
    assert result.reversals <= result.bursts


def test_impetus_beats_target_tracking_on_wait_and_cost(bursty):
    impetus, tt = bursty["impetus"], bursty["target-tracking"]
    assert impetus.p95_wait < tt.p95_wait and impetus.node_seconds <= tt.node_seconds


def test_reversals_count_a_scale_in_soon_after_a_scale_out_once():
    acts = [Action(0, "up", 2), Action(100, "down", 1), Action(110, "down", 1)]
    assert simulate.reversals(acts) == 1
    assert simulate.reversals([Action(0, "up", 1), Action(400, "down", 1)]) == 0


def test_percentile():
    assert simulate.percentile(list(range(1, 101)), 95) == 95
    assert simulate.percentile([], 50) == 0.0


def test_duration_estimate_follows_littles_law():
    sample = estimate.update(None, 0.0, completed=0, running=4)
    for t in range(10, 200, 10):  # 4 jobs always running, 2 finishing per second: d = 2 s
        sample = estimate.update(sample, float(t), completed=2 * t, running=4)
    assert estimate.job_seconds(sample) == pytest.approx(2.0, rel=0.05)


def test_throughput_estimate_measures_jobs_per_second_while_there_is_work():
    sample = estimate.update(None, 0.0, completed=0, running=4)
    for t in range(1, 200):
        sample = estimate.update(sample, float(t), completed=3 * t, running=4)
    assert estimate.throughput(sample) == pytest.approx(3.0, rel=0.05)
    # Idle time does not dilute it: the window closes when the stream runs dry (its last
    # window, cut at a tick, reads a little low) and restarts when work comes back.
    for t in range(200, 400):
        sample = estimate.update(sample, float(t), completed=597, running=0)
    assert estimate.throughput(sample) == pytest.approx(3.0, rel=0.1)
    for t in range(400, 600):
        sample = estimate.update(sample, float(t), completed=597 + 3 * (t - 400), running=4)
    assert estimate.throughput(sample) == pytest.approx(3.0, rel=0.05)
    assert estimate.throughput(None) == 0.0


def test_duration_estimate_waits_for_enough_completions_then_replaces_the_default():
    sample = estimate.update(None, 0.0, completed=0, running=0)
    sample = estimate.update(sample, 10.0, completed=0, running=8)  # nodes just came up
    sample = estimate.update(sample, 13.0, completed=12, running=8)
    assert estimate.job_seconds(sample) == estimate.DEFAULT_JOB_SECONDS  # 12: too few
    sample = estimate.update(sample, 20.0, completed=40, running=8)  # 8 running, 4/s: 2 s
    first = estimate.job_seconds(sample)
    assert first > 2.0  # replaced, not blended with the placeholder (ramp-up bias: high)
    for t in range(30, 90, 10):
        sample = estimate.update(sample, float(t), completed=4 * (t - 10), running=8)
    assert estimate.job_seconds(sample) == pytest.approx(2.0, rel=0.1)


def test_duration_estimate_reads_the_state_of_earlier_versions():
    sample = estimate.update([0.0, 0.0, 4.0, 3.0], 10.0, completed=20, running=4)
    assert estimate.job_seconds(sample) == pytest.approx(0.7 * 3.0 + 0.3 * 2.0)


def test_cli_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    png = tmp_path / "plot.png"
    code = main(["dfs", "simulate", "--trace", "steady", "--policy", "impetus",
                 "--policy", "static", "--plot", str(png)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "| impetus" in out and "| static" in out and "p95 wait s" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_over_two_traces_is_one_array(capsys):
    code = main(["dfs", "simulate", "--trace", "steady", "--trace", "bursty", "--policy",
                 "static", "--json", "--no-plot"])  # fmt: skip
    rows = json.loads(capsys.readouterr().out)  # one document, not one per trace
    assert code == 0 and [r["trace"] for r in rows] == ["steady", "bursty"]
    assert len({frozenset(r) for r in rows}) == 1


def test_cli_refuses_an_unknown_policy(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["dfs", "simulate", "--policy", "nope"])
    assert exc.value.code == 2


def test_bound_finds_the_cheapest_clairvoyant_fleet_at_dasks_p95(capsys):
    from impetus.scaler.sim import bound

    (row,) = bound.bound(traces.make("bursty"), floors=(30.0,), seeds=(7,))
    assert row.nodes is not None and row.p95 <= row.dask_p95
    # a shorter floor never bills more for the same fleet
    trace = traces.make("bursty")
    long, short = bound.run(trace, row.nodes, 60.0, 7), bound.run(trace, row.nodes, 3.0, 7)
    assert short.node_seconds <= long.node_seconds and short.interrupted == 0
    assert main(["dfs", "bound", "--idle-floor", "30", "--fleet-seed", "7"]) == 0
    dask = f"| {row.dask_p95:.1f} | {row.dask_node_seconds:.0f} |"
    assert f"| 30 | 7 {dask}" in capsys.readouterr().out


def test_the_per_burst_family_sizes_each_burst_by_the_jobs_it_sees(capsys):
    from impetus.scaler.sim import bound
    from impetus.scaler.sim.fleet import Fleet

    trace = traces.make("bursty")
    fleet = Fleet(trace, seed=7)
    policy = bound.PerBurst(fleet, per_node=10, floor=60.0)
    while not fleet.queue:  # the first burst's first due second
        fleet.step()
        fleet.t += 1
    fleet.t -= 1
    policy.act(fleet)
    assert len(fleet.alive()) == min(fleet.max_nodes, -(-len(fleet.queue) // 10))
    smaller = bound.run(trace, 40, 60.0, 7, "per-burst")
    larger = bound.run(trace, 10, 60.0, 7, "per-burst")
    assert larger.p95_wait < smaller.p95_wait and larger.node_seconds > smaller.node_seconds
    assert main(["dfs", "bound", "--family", "per-burst", "--idle-floor", "60"]) == 0
    assert "bound J (jobs/node)" in capsys.readouterr().out


def test_simulated_boots_depend_on_the_launch_not_on_the_dispatch_before_it():
    from impetus.scaler.sim.fleet import Fleet

    trace = traces.make("bursty")
    a, b = Fleet(trace, seed=7), Fleet(trace, seed=7)
    b.rng.random()  # a policy whose dispatch shuffled once more
    a.t = b.t = 300.0
    a.launch(3)
    b.launch(2)
    b.launch(1)  # the same second, in two calls
    assert [n.ready_at for n in a.nodes] == [n.ready_at for n in b.nodes]
    c = Fleet(trace, seed=8)
    c.t = 300.0
    c.launch(3)
    assert [n.ready_at for n in c.nodes] != [n.ready_at for n in a.nodes]  # the seed decides
