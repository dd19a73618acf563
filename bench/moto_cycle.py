"""moto's own time for a queue cycle, as released and with impetus.local.motospeed.

    python bench/moto_cycle.py [--jobs 2000] [--reps 3]

Runs the Queue in this process on moto (no servers, no HTTP): enqueue in batches of 500,
claim and complete 20-job chunks, collect and acknowledge in pages of 500, delete the
stream; once per repetition with moto as released (``motospeed.moto_original()``) and
once patched, alternating. Prints the seconds moto's DynamoDB handler spent, in all and
per operation (median over the repetitions), and the ratio. This is the measurement
behind the README's "a 2000-job queue cycle went from ... of moto time".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections import defaultdict
from typing import Any

os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="us-east-1",
    IMPETUS_TABLE_PREFIX="bench",
)
for _var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "IMPETUS_API_URL"):
    os.environ.pop(_var, None)

from moto import mock_aws  # noqa: E402
from moto.dynamodb.responses import DynamoHandler  # noqa: E402

from impetus.core import codec, jobs  # noqa: E402
from impetus.core.config import AwsSettings  # noqa: E402
from impetus.core.jobs import Outcome  # noqa: E402
from impetus.local import motospeed  # noqa: E402
from impetus.local.provision import provision  # noqa: E402
from impetus.storage.queue import Queue  # noqa: E402

PAGE = 500


def square(x: int) -> int:
    return x * x


CODE = codec.dump_function(square)
DIGEST = codec.digest(CODE)


class MotoClock:
    """Seconds and calls of moto's DynamoDB handler, per operation."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._call_action = DynamoHandler.call_action

    @contextlib.contextmanager
    def running(self) -> Any:
        clock, original = self, self._call_action

        def timed(handler: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(handler)
            finally:
                operation = handler._get_action()
                clock.seconds[operation] += time.perf_counter() - started
                clock.calls[operation] += 1

        DynamoHandler.call_action = timed  # type: ignore[method-assign]
        try:
            yield self
        finally:
            DynamoHandler.call_action = original  # type: ignore[method-assign]


def cycle(queue: Queue, n: int, stream: str) -> None:
    queue.create_stream(stream)
    for start in range(0, n, PAGE):
        specs = [
            {"name": "square", "code": DIGEST, "args": codec.dumps(i), "stage": "s1", "id": f"j{i}"}
            for i in range(start, min(n, start + PAGE))
        ]
        queue.enqueue(stream, specs, {DIGEST: CODE}, codec.PYTHON_VERSION)
    done = 0
    while claim := queue.claim(stream, "bench", 20, lease=60):
        outcome = Outcome(jobs.READY, result=codec.dumps(1))
        queue.complete(claim, {job.id: outcome for job in claim.jobs})
        done += len(claim.jobs)
        if done % (PAGE // 2) == 0:
            queue.ack(stream, [j["id"] for j in queue.results(stream, "s1", PAGE)])
    while found := queue.results(stream, "s1", PAGE):
        queue.ack(stream, [j["id"] for j in found])
    queue.delete_stream(stream)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    motospeed.install()
    runs: dict[str, list[MotoClock]] = {"released": [], "motospeed": []}
    with mock_aws():
        settings = AwsSettings.from_env()
        provision(settings)
        queue = Queue(settings)
        for rep in range(args.reps):
            for name in ("released", "motospeed"):
                released = motospeed.moto_original() if name == "released" else None
                with released or contextlib.nullcontext(), MotoClock().running() as clock:
                    cycle(queue, args.jobs, f"{name}-{rep}")
                runs[name].append(clock)
    totals = {name: [sum(c.seconds.values()) for c in clocks] for name, clocks in runs.items()}
    print(f"moto's time for a {args.jobs}-job queue cycle, median of {args.reps}:")
    for name in runs:
        print(f"  {name:9s} {statistics.median(totals[name]):6.2f} s")
    ratio = statistics.median(totals["released"]) / statistics.median(totals["motospeed"])
    print(f"  motospeed is {ratio:.1f}x faster")
    print("per operation (calls, ms each: released -> motospeed):")
    for operation in sorted(runs["released"][0].calls):
        each = {
            name: statistics.median(c.seconds[operation] / c.calls[operation] for c in clocks)
            for name, clocks in runs.items()
            if all(c.calls.get(operation) for c in clocks)
        }
        if len(each) == 2:
            calls = runs["motospeed"][0].calls[operation]
            print(
                f"  {operation:16s} {calls:5d}  {1000 * each['released']:6.2f} -> "
                f"{1000 * each['motospeed']:6.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
