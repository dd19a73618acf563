"""Result latency on the local stack: W3 round trips and wait(FIRST_COMPLETED).

    python bench/latency.py [--round-trips 50] [--reps 5] [--nodes 2] [--mpps 2]

Starts a private local stack, then through one impetus.Executor measures:

- W3, as the bench defines it (bench/bench_impetus.py, the peers' harness): sequential
  ``submit(square, i).result()`` round trips; p50 and p95 (nearest rank) in ms.
- wait(FIRST_COMPLETED): ``submit(time.sleep, 6)`` and ``submit(mul, 6, 7)`` together,
  the time until ``concurrent.futures.wait(..., return_when=FIRST_COMPLETED)`` returns
  and which future it returned; repeated ``--reps`` times, each after both jobs of the
  previous one ended (idle workers). A result that waits for its batch-mates comes back
  after the sleep, about 6 s; one reported the moment its job ends, after about a W3.

Run it before and after a change to the executor or the agent's result reporting.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from localstack import private_stack

from impetus import Executor

SLEEP = 6.0


def square(x: int) -> int:
    return x * x


def mul(x: int, y: int) -> int:
    return x * y


def percentile(samples: list[float], q: float) -> float:
    """Nearest rank, as the peers' harness computes it."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def w3(ex: Executor, n: int) -> str:
    latencies = []
    for i in range(n):
        t0 = time.perf_counter()
        assert ex.submit(square, i).result(timeout=60) == i * i
        latencies.append((time.perf_counter() - t0) * 1000)
    return (
        f"W3: {n} sequential round trips: p50 {percentile(latencies, 50):.1f} ms, "
        f"p95 {percentile(latencies, 95):.1f} ms"
    )


def first_completed(ex: Executor, reps: int) -> str:
    seconds, firsts = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        slow, fast = ex.submit(time.sleep, SLEEP), ex.submit(mul, 6, 7)
        done, _ = cf.wait([slow, fast], timeout=60, return_when=cf.FIRST_COMPLETED)
        seconds.append(time.perf_counter() - t0)
        firsts.append("mul" if done == {fast} else "sleep" if done == {slow} else "both")
        assert fast.result(timeout=60) == 42 and slow.result(timeout=60) is None
    each = ", ".join(f"{s:.2f}" for s in seconds)
    return (
        f"wait(FIRST_COMPLETED) on sleep({SLEEP:g}) + mul(6, 7), {reps} reps: "
        f"median {statistics.median(seconds):.2f} s (each: {each}); "
        f"returned: {', '.join(firsts)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--mpps", type=int, default=2)
    args = parser.parse_args()
    with private_stack(args.nodes, args.mpps), Executor() as ex:
        for i in range(5):  # workers up on every node, the client's pacing warm
            ex.submit(square, i).result(timeout=60)
        print(w3(ex, args.round_trips), flush=True)
        print(first_completed(ex, args.reps), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
