"""Jobs/s for 2000 individually forked trivial jobs on the local stack.

    python bench/throughput.py [--jobs 2000] [--nodes 1] [--mpps 2]

Starts its own local stack (private IMPETUS_HOME), runs the workload, stops the stack.
Throughput = jobs / (first fork -> last result collected). Prints one line per run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from impetus import Impetus


def square(x):
    return x * x


class Trivial(Impetus):
    n = 2000

    @Impetus.startup
    def start(self):
        self.t0 = time.perf_counter()
        for i in range(self.n):
            self.fork(square, args=i)

    @Impetus.process
    def collect(self, ready, errors):
        self.total = getattr(self, "total", 0) + sum(j["result"] for j in ready)
        self.errors = getattr(self, "errors", 0) + len(errors)
        self.t1 = time.perf_counter()


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "impetus.cli", *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--mpps", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["IMPETUS_HOME"] = home
        cli("local", "up", "--nodes", str(args.nodes), "--mpps", str(args.mpps))
        try:
            for _ in range(args.runs):
                app = Trivial(taskdir=os.path.join(home, "tasks"))
                app.n = args.jobs
                app.run()
                assert app.total == sum(i * i for i in range(args.jobs)) and app.errors == 0
                elapsed = app.t1 - app.t0
                print(
                    f"impetus local stack: {args.jobs} trivial forks in {elapsed:.2f} s = "
                    f"{args.jobs / elapsed:.0f} jobs/s ({args.nodes} node(s) x {args.mpps} workers)"
                )
        finally:
            cli("local", "down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
