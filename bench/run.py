"""Impetus side by side with the peers, in one run: W1, W1-map, W2, W3, cold start, costs.

    python bench/run.py [--peers "celery huey ..."] [--reps 3] [--out DIR] [--no-costs]

1. the peers, with their own drivers and harness (``../shared/bench/peers/run_all.sh``:
   private redis-server for Celery, RQ and Huey, the pinned peers venv);
2. Impetus through the same harness (``bench/bench_impetus.py``);
3. the AWS cost model (``bench/costs.py``);

then prints one table (medians of the repetitions, min-max) with Impetus's ratio to each
peer, the cost figures, and each target met or missed. Everything also goes to
``<out>/impetus-vs-peers.md`` and ``<out>/results/*.json``. Nothing is tuned: the peers
run exactly as their README describes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT.parent / "shared" / "bench" / "peers"
DEFAULT_PEERS = "multiprocessing concurrent.futures dask celery rq huey"
DEFAULT_OUT = "/tmp/impetus-bench"

# metric, label, format, higher is better
METRICS = [
    ("cold_start_s", "cold start (s)", "{:.2f}", False),
    ("w1_jobs_per_s", "W1 jobs/s", "{:,.0f}", True),
    ("w1map_jobs_per_s", "W1-map jobs/s", "{:,.0f}", True),
    ("w2_efficiency", "W2 efficiency", "{:.3f}", True),
    ("w3_p50_ms", "W3 p50 (ms)", "{:.1f}", False),
    ("w3_p95_ms", "W3 p95 (ms)", "{:.1f}", False),
]


def run_peers(peers: str, env: dict[str, str], peers_dir: Path) -> None:
    if not peers.strip():
        return
    subprocess.run(["bash", str(peers_dir / "run_all.sh"), *peers.split()], env=env, check=True)


def run_impetus(env: dict[str, str], peers_dir: Path) -> None:
    script = ROOT / "bench" / "bench_impetus.py"
    subprocess.run(
        [sys.executable, str(script), "--peers-dir", str(peers_dir)], env=env, check=True
    )


def run_costs(out: Path, jobs: int) -> dict[str, Any]:
    path = out / "costs.json"
    script = ROOT / "bench" / "costs.py"
    subprocess.run(
        [sys.executable, str(script), "--jobs", str(jobs), "--json", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(path.read_text())


def load(out: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for name in names:
        path = out / "results" / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def cell(stat: dict[str, float] | None, fmt: str) -> str:
    if not stat:
        return "—"
    return f"{fmt.format(stat['median'])} ({fmt.format(stat['min'])}-{fmt.format(stat['max'])})"


def ratio(ours: float, theirs: float, higher_better: bool) -> float:
    """How many times better Impetus is (>1 = better), whatever the metric's direction."""
    if not ours or not theirs:
        return float("nan")
    return ours / theirs if higher_better else theirs / ours


def table(runs: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| framework | reps | " + " | ".join(m[1] for m in METRICS) + " | max foreign cores |",
        "|---|---:|" + "---:|" * (len(METRICS) + 1),
    ]
    for name, run in runs.items():
        worst = max(max(r["foreign_cores"].values()) for r in run["reps"])
        cells = [cell(run["summary"].get(k), fmt) for k, _, fmt, _ in METRICS]
        lines.append(f"| {name} | {len(run['reps'])} | " + " | ".join(cells) + f" | {worst:.2f} |")
    return lines


def ratios(runs: dict[str, dict[str, Any]]) -> list[str]:
    ours = runs["impetus"]["summary"]
    lines = [
        "Impetus relative to each peer (>1 = Impetus better; times, medians):",
        "",
        "| vs | " + " | ".join(m[1] for m in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for name, run in runs.items():
        if name == "impetus":
            continue
        cells = []
        for key, _, _, higher in METRICS:
            if key in ours and key in run["summary"]:
                r = ratio(ours[key]["median"], run["summary"][key]["median"], higher)
                cells.append(f"{r:.3g}x")
            else:
                cells.append("—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def cost_lines(c: dict[str, Any]) -> list[str]:
    from costs import render  # bench/costs.py

    return ["AWS cost per job (bench/costs.py, on-demand prices):", "", render(c)]


def median(runs: dict[str, dict[str, Any]], name: str, key: str) -> float | None:
    stat = runs.get(name, {}).get("summary", {}).get(key)
    return stat["median"] if stat else None


def targets(runs: dict[str, dict[str, Any]], c: dict[str, Any] | None) -> list[str]:
    out = ["Targets:", ""]

    def check(label: str, ok: bool | None, detail: str) -> None:
        verdict = "n/a" if ok is None else ("MET" if ok else "MISSED")
        out.append(f"- {label}: **{verdict}** — {detail}")

    def vs(key: str, peer: str, factor: float, higher: bool, label: str) -> None:
        ours, theirs = median(runs, "impetus", key), median(runs, peer, key)
        if ours is None or theirs is None:
            check(label, None, f"{peer} not measured in this run")
            return
        ok = ours >= factor * theirs if higher else ours <= factor * theirs
        check(label, ok, f"Impetus {ours:.4g} vs {peer} {theirs:.4g}")

    vs("w1_jobs_per_s", "celery", 1.0, True, "W1 ≥ 1.0x Celery")
    vs("w1_jobs_per_s", "huey", 1.0, True, "W1 ≥ 1.0x Huey (stretch)")
    vs("w1map_jobs_per_s", "celery", 2.0, True, "W1-map ≥ 2x Celery's bulk API")
    eff = median(runs, "impetus", "w2_efficiency")
    if eff is None:
        check("W2 efficiency ≥ 0.95", None, "not measured")
    else:
        check("W2 efficiency ≥ 0.95", eff >= 0.95, f"{eff:.3f}")
    vs("w3_p50_ms", "celery", 3.0, False, "W3 p50 ≤ 3x Celery's")
    if c:
        f, m, sqs = c["fork"], c["map"], c["sqs_usd_per_million"]
        check("fork ≤ 4 write units per job", f["wcu"] <= 4, f"{f['wcu']:.2f} WCU/job")
        check("map ≤ 0.5 write units per job", m["wcu"] <= 0.5, f"{m['wcu']:.3f} WCU/job")
        check(
            "fork $/M jobs below SQS + Auto Scaling",
            f["usd_per_million_total"] < sqs,
            f"${f['usd_per_million_total']:.2f} vs ${sqs:.2f}",
        )
        check(
            "map $/M jobs below SQS + Auto Scaling",
            m["usd_per_million_total"] < sqs,
            f"${m['usd_per_million_total']:.2f} vs ${sqs:.2f}",
        )
    return out


def report(out: Path, peers: list[str], costs: dict[str, Any] | None) -> str:
    runs = load(out, ["impetus", *peers])
    if "impetus" not in runs:
        return "no Impetus results"
    lines = [
        f"# Impetus vs peers ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        "Median (min-max) of the repetitions; fresh workers every repetition; 2 worker "
        "processes on this 2-core machine; the peers' harness and drivers, unchanged.",
        "",
        *table(runs),
        "",
        *ratios(runs),
        "",
    ]
    if costs:
        lines += [*cost_lines(costs), ""]
    lines += targets(runs, costs)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default=DEFAULT_PEERS, help="peer frameworks to run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per framework")
    parser.add_argument("--out", default=DEFAULT_OUT, help="results, logs and the report")
    parser.add_argument("--peers-dir", type=Path, default=PEERS_DIR)
    parser.add_argument("--cost-jobs", type=int, default=2000)
    parser.add_argument("--no-costs", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="only print the report")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    # The harness's own knobs (BENCH_FOREIGN_MAX, BENCH_QUIET_WAIT_S, ...) pass through.
    env = dict(os.environ, BENCH_OUT=str(out), BENCH_REPS=str(args.reps))
    costs = None
    if not args.report_only:
        run_impetus(env, args.peers_dir)
        run_peers(args.peers, env, args.peers_dir)
        if not args.no_costs:
            costs = run_costs(out, args.cost_jobs)
    elif (out / "costs.json").exists():
        costs = json.loads((out / "costs.json").read_text())
    text = report(out, args.peers.split(), costs)
    (out / "impetus-vs-peers.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
