"""Many streams, several node agents: requests per job and per node-second, measured, next
to the capacity model's inputs (the checked-in mix).

    python bench/capacity_bench.py [--agents 3] [--streams 100] [--jobs 200] [--idle 5]

One process as bench/costs.py (moto server, the API, every client metered), with
``--agents`` node agents (threads, 2 workers each) and ``--streams`` idle streams. It
measures the agents idle (per node-second), then ``--jobs`` short jobs forked on one
more stream (per job), and prints both next to what docs/capacity-mix.json (one agent)
says for the same number of streams. Runs in well under 2 minutes.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from bench.capacity_mix import DEFAULT_OUT, SETTLE
from bench.costs import Fork, Rig
from impetus.capacity.mix import Mix, Units
from impetus.storage.queue import Queue
from node_agent.agent import Agent
from node_agent.config import NodeSettings


def _total(rows: dict[Any, Units]) -> Units:
    return sum(rows.values(), Units())


def _usage_units(usage: Any, per: float) -> Units:
    return Units(usage.dynamodb_requests / per, usage.rcu / per, usage.wcu / per)


def run(agents: int, streams: int, jobs: int, idle: float) -> tuple[dict[str, Units], float]:
    """(measured units, the busy run's seconds)."""
    rig = Rig()
    extra: list[tuple[Agent, threading.Thread]] = []
    try:
        for i in range(agents - 1):
            node = NodeSettings(node_id=f"bench-node-{i}", mpps=2, aws=rig.settings).resolved()
            agent = Agent(node)
            thread = threading.Thread(target=agent.run, name=f"agent-{i}", daemon=True)
            thread.start()
            extra.append((agent, thread))
        queue = Queue(rig.settings, client=rig.meter._probe)
        for i in range(streams):
            queue.create_stream(f"bench-idle-{i}")
        time.sleep(SETTLE)
        rig.meter.reset()
        time.sleep(idle)
        idle_usage = rig.meter.reset()
        busy_usage, wall = rig.run(Fork, jobs)
    finally:
        for agent, thread in extra:
            agent.request_stop()
            thread.join(30)
        rig.close()
    return {
        "idle per node-second": _usage_units(idle_usage, idle * agents),
        "busy per job": _usage_units(busy_usage, jobs),
    }, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--mix", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    measured, wall = run(args.agents, args.streams, args.jobs, args.idle)
    mix = Mix.load(args.mix)
    # the model's busy nodes poll per node-second: these agents, for this run's length
    polls = _total(mix.busy_node_reads()) * (args.agents * wall / args.jobs)
    # this run's fixed part (the stream's creation, code item, delete) over its jobs
    per_run = _total(mix.busy_per_run) * (1 / args.jobs)
    model = {
        "idle per node-second": _total(mix.idle_per_node_second(args.streams, args.agents)),
        "busy per job": _total(mix.busy) + per_run + polls,
    }
    print(f"{args.agents} agents, {args.streams} idle streams, {args.jobs} jobs "
          f"({time.monotonic() - t0:.0f} s); model: {args.mix}\n")  # fmt: skip
    print("| | requests measured | requests model | RCU measured | RCU model "
          "| WCU measured | WCU model |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, m in measured.items():
        p = model[name]
        print(f"| {name} | {m.requests:.3f} | {p.requests:.3f} | {m.rcu:.3f} | {p.rcu:.3f} "
              f"| {m.wcu:.3f} | {p.wcu:.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
