"""CPython's own concurrent.futures tests against impetus.Executor, N runs in a row.

    python bench/cpython_futures.py [--runs 5] [--limit 150]

Each run starts a fresh local stack (2 nodes, 2 worker processes each, as the issue's
measurement did), runs the generic tests of CPython 3.11's test_concurrent_futures
(tests/cpython: ExecutorTest, WaitTests, AsCompletedTests, ExecutorShutdownTest; the
bodies unmodified, the few about the standard pools' internals skipped with their
reasons) and stops the stack. Prints each test's outcome as it ends, then the counts per
run and the tests that did not pass in some run. Exit status 1 if any test failed or
timed out in any run.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from localstack import private_stack  # noqa: E402

from tests.cpython import adapter  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--limit", type=float, default=adapter.TEST_LIMIT, help="s per test")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--mpps", type=int, default=2)
    args = parser.parse_args()
    counts, bad = [], collections.defaultdict(list)
    for run in range(1, args.runs + 1):
        print(f"--- run {run}/{args.runs}", flush=True)
        start = time.monotonic()
        with private_stack(args.nodes, args.mpps):
            outcomes = adapter.run_all(args.limit, lambda line: print(line, flush=True))
        counts.append((adapter.summary(outcomes), time.monotonic() - start))
        for outcome in outcomes:
            if outcome.status in ("failed", "timeout"):
                bad[outcome.name].append(f"run {run}: {outcome.status}")
    print("\nrun  passed  failed  timeout  skipped  seconds")
    for run, (c, seconds) in enumerate(counts, 1):
        print(
            f"{run:3}  {c['passed']:6}  {c['failed']:6}  {c['timeout']:7}  "
            f"{c['skipped']:7}  {seconds:7.0f}"
        )
    for name, runs in bad.items():
        print(f"not passed: {name}: {', '.join(runs)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
