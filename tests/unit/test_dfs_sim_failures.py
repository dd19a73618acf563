"""The simulator's failures (Spot notices, failed boots), its seeds table and its plot
(impetus/scaler/sim/fleet.py, compare.py, simulate.plot; issue 18 points 2-4)."""

from __future__ import annotations

import pytest

from impetus.cli import main
from impetus.scaler.sim import compare, simulate, traces
from impetus.scaler.sim.fleet import NOTICE_SECONDS, Failures, Fleet
from impetus.scaler.sim.traces import Trace

ONE_JOB = Trace("one", ((0.0, 500.0),), 600.0, 1)  # a single long job


def ready_fleet(failures: Failures, autoreplace: bool = False) -> Fleet:
    fleet = Fleet(ONE_JOB, seed=7, failures=failures, autoreplace=autoreplace)
    fleet.launch(1)
    for _ in range(100):
        if fleet.ready_nodes():
            break
        fleet.t += 1
    return fleet


def test_a_spot_notice_drains_the_node_and_terminates_it_two_minutes_later():
    fleet = ready_fleet(Failures(spot_rate=3600.0), autoreplace=True)  # a notice at once
    fleet.step()
    (node,) = [n for n in fleet.nodes if n.notice_at is not None]
    assert node.state in ("draining", "drained") and fleet.events[0].kind == "spot-notice"
    noticed = fleet.t
    for _ in range(int(NOTICE_SECONDS)):
        fleet.t += 1
        fleet.step()
    assert node.terminated == noticed + NOTICE_SECONDS
    assert len(fleet.alive()) == 1  # the Auto Scaling group launched a replacement
    assert not fleet.actions[1:]  # neither counts as a policy's scale action


def test_a_job_still_running_at_the_interruption_goes_back_to_the_queue():
    fleet = ready_fleet(Failures())
    for _ in range(10):  # the 500 s job (arrived at 0) starts on the node
        fleet.step()
        fleet.t += 1
    assert fleet.running_jobs() == 1
    fleet.failures = Failures(spot_rate=3600.0)  # a notice at the next step
    for _ in range(int(NOTICE_SECONDS) + 2):
        fleet.step()
        fleet.t += 1
    assert fleet.jobs[0].interrupted == 1 and list(fleet.queue) == [0]
    assert not fleet.alive()  # no group to replace it (Dask's workers)


def test_a_failed_boot_goes_in_service_but_never_works():
    fleet = Fleet(ONE_JOB, seed=7, failures=Failures(failed_boot=1.0))
    fleet.launch(1)
    (node,) = fleet.nodes
    fleet.t = node.in_service_at
    assert fleet.in_service() == [node] and not fleet.ready_nodes()
    assert fleet.events[0].kind == "failed-boot"


def test_impetus_terminates_every_failed_boot_by_its_deadline():
    from impetus.scaler.params import BOOT_DEADLINE
    from impetus.scaler.sim import policies

    fleet = Fleet(traces.make("steady"), seed=7, failures=Failures(failed_boot=1.0))
    policy = policies.make("impetus", fleet)
    for _ in range(2000):
        fleet.step()
        policy.act(fleet)
        fleet.t += 1
    gone = [n for n in fleet.nodes if n.terminated is not None]
    assert gone and all(n.failed for n in fleet.nodes)
    # terminated within a tick (60 s at most) of the deadline, never before it
    assert all(BOOT_DEADLINE < n.terminated - n.launched <= BOOT_DEADLINE + 61 for n in gone)
    assert fleet.alive()  # ... and replaced while the work still needs a node


def test_impetus_terminates_a_noticed_node_once_drained_not_when_ec2_takes_it():
    from impetus.scaler.sim import policies

    fleet = Fleet(traces.make("steady"), seed=7, autoreplace=True)
    policy = policies.make("impetus", fleet)
    while fleet.t < 600:  # the steady fleet is up and busy
        fleet.step()
        policy.act(fleet)
        fleet.t += 1
    node = fleet.ready_nodes()[0]
    noticed = fleet.t
    node.notice_at, node.state = noticed, "draining" if node.busy else "drained"
    while fleet.t < noticed + NOTICE_SECONDS + 10:
        fleet.step()
        policy.act(fleet)
        fleet.t += 1
    # DFS saw it drain on its heartbeat: gone with its jobs done, within a few ticks, and
    # with decrement, so the group launched no replacement when the notice ran out
    assert node.terminated is not None and node.terminated < noticed + 30
    assert fleet.interrupted() == 0
    assert not [n for n in fleet.nodes if n.launched == noticed + NOTICE_SECONDS]


def test_failed_boots_and_interruptions_lose_no_job():
    trace = traces.make("bursty")
    result = simulate.run(trace, "impetus", seed=7, failures=Failures(2.0, 0.3))
    kinds = {e.kind for e in result.events}
    assert kinds == {"failed-boot", "spot-notice"}
    assert result.unfinished == 0 and result.interrupted == 0


def test_without_failures_runs_are_unchanged():
    trace = traces.make("bursty")
    plain = simulate.run(trace, "impetus", seed=8)
    none = simulate.run(trace, "impetus", seed=8, failures=Failures())
    assert (plain.p95_wait, plain.node_seconds) == (none.p95_wait, none.node_seconds)


@pytest.fixture(scope="module")
def summaries():
    return compare.run(["bursty"], seeds=(7, 8), failures=(Failures(), Failures(0.05, 0.02)))


def test_summary_gives_the_median_and_the_worst_seed(summaries):
    dask = next(s for s in summaries if s.policy == "dask-adaptive" and not s.failures)
    p95s = [r.p95_wait for r in dask.results]
    assert dask.median(compare.METRICS["p95 wait s"]) == pytest.approx(sum(p95s) / 2)
    worst, seed = dask.worst(compare.METRICS["p95 wait s"])
    assert worst == max(p95s) and seed == (7, 8)[p95s.index(worst)]


def test_targets_compare_impetus_to_both_baselines_seed_by_seed(summaries):
    lines = compare.targets(summaries)
    assert len(lines) == 2 and lines[0].startswith("bursty, no failures: p95 <= both")
    impetus = next(s for s in summaries if s.policy == "impetus" and not s.failures)
    peers = [s for s in summaries if s.policy in compare.BASELINES and not s.failures]
    cheaper = sum(
        all(r.node_seconds <= p.results[i].node_seconds for p in peers)
        for i, r in enumerate(impetus.results)
    )
    assert f"node-s <= both baselines {'yes' if cheaper == 2 else 'NO'} ({cheaper}/2)" in lines[0]


def test_failure_rows_report_the_extra_cost_against_the_same_run_without(summaries):
    table = compare.table(summaries)
    row = next(x for x in table.splitlines() if "Spot 5%" in x and "| impetus |" in x)
    assert "node-s" in row.split("|")[-2]  # "+N node-s, +M s"
    plain = next(x for x in table.splitlines() if "no failures" in x and "| impetus |" in x)
    assert plain.split("|")[-2].strip() == "-"


def test_cli_seeds_prints_the_table_and_the_targets(tmp_path, capsys):
    png = tmp_path / "p.png"
    code = main(["dfs", "simulate", "--trace", "steady", "--seeds", "7,8",
                 "--failed-boots", "0.02", "--plot", str(png)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "median (worst @seed)" in out and "| steady | no failures | impetus" in out
    assert "steady, failed boots 2%" in out or "Spot 0%/node-h, failed boots 2%" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_refuses_bad_seeds_and_rates(capsys):
    assert main(["dfs", "simulate", "--seeds", "7,x", "--no-plot"]) != 0
    assert main(["dfs", "simulate", "--seeds", "7", "--failed-boots", "1.5", "--no-plot"]) != 0
    err = capsys.readouterr().err
    assert "--seeds must be comma-separated integers" in err and "--failed-boots" in err


def test_the_plot_shares_its_axes_stops_at_the_trace_and_marks_failures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = traces.make("bursty")
    failures = Failures(failed_boot=0.2)
    results = [simulate.run(trace, p, seed=7, failures=failures) for p in compare.COMPARED]
    saved = []
    real = plt.Figure.savefig
    plt.Figure.savefig = lambda fig, *a, **k: (saved.append(fig), real(fig, *a, **k))[1]
    try:
        simulate.plot(results, tmp_path / "p.png")
    finally:
        plt.Figure.savefig = real
    (fig,) = saved
    top, bottom = fig.axes
    assert bottom.get_xlim() == (0, trace.length / 60)
    assert top.get_shared_x_axes().joined(top, bottom)
    assert len(top.get_legend().get_texts()) == 3  # a legend entry per policy
    assert "failed boot" in [t.get_text() for t in bottom.get_legend().get_texts()]
    assert bottom.collections  # the failure markers
    # in service is drawn thick, one line per policy (plus its dashed launched line)
    widths = sorted({round(line.get_linewidth(), 1) for line in bottom.get_lines()})
    assert widths == [0.9, 2.2]
