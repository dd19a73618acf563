"""10,000 ``Executor.submit`` calls: time to return to the caller, and to every result;
next to ``map`` over the same calls.

    python bench/executor_submit.py [--calls 10000] [--nodes 2] [--mpps 4]

Starts its own local stack (private IMPETUS_HOME), runs the workload, stops the stack.
Prints one line per measurement; nothing is asserted but the results' values.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from impetus import Executor


def square(x: int) -> int:
    return x * x


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "impetus.cli", *args], check=True)


def submits(calls: int) -> None:
    with Executor(output=False) as ex:
        began = time.perf_counter()
        futures = [ex.submit(square, i) for i in range(calls)]
        returned = time.perf_counter() - began
        results = [f.result() for f in futures]
        done = time.perf_counter() - began
    assert results == [i * i for i in range(calls)]
    print(
        f"submit x{calls}: returned to the caller in {returned:.3f} s; all results in {done:.2f} s"
    )


def maps(calls: int) -> None:
    with Executor(output=False) as ex:
        began = time.perf_counter()
        results = list(ex.map(square, range(calls)))
        done = time.perf_counter() - began
    assert results == [i * i for i in range(calls)]
    print(f"map x{calls} (auto chunks): all results in {done:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--mpps", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["IMPETUS_HOME"] = home
        cli("local", "up", "--nodes", str(args.nodes), "--mpps", str(args.mpps))
        try:
            submits(args.calls)
            maps(args.calls)
        finally:
            cli("local", "down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
