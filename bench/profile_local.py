"""Where the local stack's time goes, per workload: moto requests and CPU per process.

    python bench/profile_local.py [--jobs 2000] [--round-trips 50]

Starts a private local stack (1 node agent, 2 workers) with the moto server's request
statistics on (``IMPETUS_MOTO_STATS``, impetus.local.requeststats), runs the bench's
workloads through one :class:`impetus.Executor` (W1: trivial submits; W2: 100 x 50 ms
of CPU; W3: sequential round trips) and prints for each: its own figures, the DynamoDB
requests by operation and table with the seconds moto spent on them, the CPU each
process of the stack used, and the best the stand-in allows with those requests (W1:
moto's busy time alone; W2: the cores moto and the API server take from the workers;
W3: the requests a round trip waits on, in sequence, with no polling wait). These are
the measurements behind the README's "What would unblock the missed targets"; they
explain the bench's ratios, they are not the ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impetus import Executor
from impetus.api_client import ApiClient
from impetus.core.config import ClientSettings

W2_JOBS, W2_BURN = 100, 0.05
CLK = os.sysconf("SC_CLK_TCK")


def square(x: int) -> int:
    return x * x


def burn(seconds: float) -> tuple[int, float, float]:
    """Spin ``seconds`` of this thread's CPU; (worker pid, start, end) wall times."""
    start, t0 = time.time(), time.thread_time()
    while time.thread_time() - t0 < seconds:
        pass
    return os.getpid(), start, time.time()


def stamp(_: int) -> float:
    return time.time()


# --- what the stack's processes did ---------------------------------------------------------
def cpu_by_group() -> dict[int, float]:
    """CPU seconds of every live process, summed per process group."""
    totals: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pgid = int(fields[2])
        totals[pgid] = totals.get(pgid, 0.0) + (int(fields[11]) + int(fields[12])) / CLK
    return totals


def cpu_of_pid(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Probe:
    """Moto's request statistics and the stack's CPU, before and after a workload."""

    def __init__(self, status: dict[str, Any], stats: Path) -> None:
        self.stats = stats
        self.moto, self.supervisor = status["moto_pid"], status["supervisor_pid"]
        self.agents = [n["pgid"] for n in status["nodes"]]

    def snapshot(self) -> dict[str, Any]:
        time.sleep(1.2)  # the server writes its statistics every second
        groups = cpu_by_group()
        return {
            "requests": json.loads(self.stats.read_text()) if self.stats.exists() else {},
            "moto": cpu_of_pid(self.moto),
            # the supervisor runs the API server, the DFS ticker and the fleet
            "api server + ticker": cpu_of_pid(self.supervisor),
            "node agent + workers": sum(groups.get(g, 0.0) for g in self.agents),
            "client": client_cpu(),
        }

    @staticmethod
    def report(before: dict[str, Any], after: dict[str, Any], jobs: int) -> Measured:
        rows = []
        for op, (n, secs) in after["requests"].items():
            n0, s0 = before["requests"].get(op, (0, 0.0))
            if n > n0:
                rows.append((secs - s0, n - n0, op))
        total_n, total_s = sum(r[1] for r in rows), sum(r[0] for r in rows)
        print(f"  moto: {total_n} requests ({total_n / jobs:.2f} per job), {total_s:.2f} s")
        for secs, n, op in sorted(rows, reverse=True)[:8]:
            print(f"    {op:28s} {n:6d} {secs:6.2f} s  {1000 * secs / n:6.2f} ms each")
        cpu = {k: after[k] - before[k] for k in after if k != "requests"}
        print("  CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
        return Measured(total_s, {op: 1000 * secs / n for secs, n, op in rows}, cpu)


# --- what the stand-in allows at best ---------------------------------------------------------
# The requests one W3 round trip waits on, in order (the rest are polls and acks that a
# round trip does not wait for): the API's enqueue, the agent's claim and completion, the
# API's answer to the client's results poll.
ENQUEUE = ["GetItem streams", "BatchGetItem jobs", "BatchWriteItem jobs"]
ENQUEUE += ["BatchWriteItem queue", "UpdateItem streams"]
CLAIM = ["Query queue", "UpdateItem queue", "BatchGetItem jobs"]
COMPLETION = ["UpdateItem queue"]
RESULTS = ["GetItem streams", "Query queue", "BatchGetItem jobs"]
ROUND_TRIP_CHAIN = ENQUEUE + CLAIM + COMPLETION + RESULTS


@dataclass
class Measured:
    moto_seconds: float  # busy: moto serves one request at a time
    ms_by_operation: dict[str, float]
    cpu: dict[str, float]


def w1_ceiling(m: Measured, jobs: int) -> str:
    return (
        f"  ceiling: moto's busy time alone allows {jobs / m.moto_seconds:.0f} jobs/s "
        "(everything else free)"
    )


def w2_ceiling(m: Measured) -> str:
    work = W2_JOBS * W2_BURN / 2
    stolen = m.cpu["moto"] + m.cpu["api server + ticker"]
    return (
        f"  ceiling: the stand-in's CPU ({stolen:.2f} s: moto, API server) taken from the two "
        f"workers' cores allows efficiency {work / (work + stolen / 2):.3f}"
    )


def w3_floor(m: Measured, api_hop_ms: float) -> str:
    chain = sum(m.ms_by_operation.get(op, 0.0) for op in ROUND_TRIP_CHAIN)
    return (
        f"  floor: {len(ROUND_TRIP_CHAIN)} requests in sequence {chain:.1f} ms + 2 API hops "
        f"{2 * api_hop_ms:.1f} ms = {chain + 2 * api_hop_ms:.1f} ms with no polling wait"
    )


def api_hop_ms(api: ApiClient, stream_id: str, m: Measured, calls: int = 30) -> float:
    """The API server's own share of a request: GET /streams/{id} minus its GetItem."""
    spent = []
    for _ in range(calls):
        t0 = time.perf_counter()
        api.get_stream(stream_id)
        spent.append((time.perf_counter() - t0) * 1000)
    return max(0.0, sorted(spent)[calls // 2] - m.ms_by_operation.get("GetItem streams", 0.0))


# --- the workloads ------------------------------------------------------------------------
def w1(ex: Executor, n: int) -> str:
    t0 = time.perf_counter()
    assert sum(f.result(timeout=600) for f in [ex.submit(square, i) for i in range(n)]) == sum(
        i * i for i in range(n)
    )
    elapsed = time.perf_counter() - t0
    return f"W1: {n} submits in {elapsed:.2f} s = {n / elapsed:.0f} jobs/s"


def w2(ex: Executor) -> str:
    t0 = time.time()
    runs = [f.result(timeout=600) for f in [ex.submit(burn, W2_BURN) for _ in range(W2_JOBS)]]
    t1 = time.time()
    by_worker: dict[int, list[tuple[float, float]]] = {}
    for pid, start, end in runs:
        by_worker.setdefault(pid, []).append((start, end))
    gaps = [
        sum(b[0] - a[1] for a, b in itertools.pairwise(spans))
        for spans in (sorted(s) for s in by_worker.values())
    ]
    return (
        f"W2: efficiency {W2_JOBS * W2_BURN / 2 / (t1 - t0):.3f} ({t1 - t0:.2f} s); first job "
        f"started after {min(r[1] for r in runs) - t0:.3f} s; last result "
        f"{t1 - max(r[2] for r in runs):.3f} s after the last job ended; idle between jobs "
        f"per worker {', '.join(f'{g:.3f}' for g in gaps)} s"
    )


def w3(ex: Executor, n: int) -> str:
    to_start, to_result = [], []
    for i in range(n):
        t0 = time.time()
        ran = ex.submit(stamp, i).result(timeout=60)
        to_start.append(ran - t0)
        to_result.append(time.time() - ran)
    p50 = sorted(to_start)[n // 2] * 1000, sorted(to_result)[n // 2] * 1000
    return (
        f"W3: {n} round trips; p50 submit -> job start {p50[0]:.1f} ms, "
        f"job -> result {p50[1]:.1f} ms"
    )


def cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "impetus.cli", *args], check=True, capture_output=True, text=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="W1 submits")
    parser.add_argument("--round-trips", type=int, default=50, help="W3 round trips")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        stats = Path(home) / "moto-stats.json"
        os.environ.update(IMPETUS_HOME=home, IMPETUS_MOTO_STATS=str(stats))
        cli("local", "up", "--nodes", "1", "--mpps", "2")
        try:
            status = json.loads(cli("local", "status", "--json"))
            settings = json.loads((Path(home) / "local.json").read_text())
            probe = Probe(status, stats)
            api = ApiClient(ClientSettings.resolve(settings["api_url"], settings["authkey"]))
            with Executor(settings["api_url"], settings["authkey"]) as ex:
                ex.submit(burn, 0.01).result(timeout=60)  # workers up, durations known
                for name, run, jobs in (
                    ("W1", lambda: w1(ex, args.jobs), args.jobs),
                    ("W2", lambda: w2(ex), W2_JOBS),
                    ("W3", lambda: w3(ex, args.round_trips), args.round_trips),
                ):
                    before = probe.snapshot()
                    # The snapshot's pause let the agent's polling back off: one job first
                    # (its few requests count with the workload), as in the bench, where
                    # workloads follow each other.
                    ex.submit(square, 0).result(timeout=60)
                    print(run())
                    measured = probe.report(before, probe.snapshot(), jobs)
                    if name == "W1":
                        print(w1_ceiling(measured, jobs))
                    elif name == "W2":
                        print(w2_ceiling(measured))
                    else:
                        print(w3_floor(measured, api_hop_ms(api, ex.id, measured)))
        finally:
            cli("local", "down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
