"""The request mix, measured from the real code paths, for the capacity model.

    python bench/capacity_mix.py [--jobs 1000] [--idle 5] [--streams 50] [--extra 50]
                                 [--out docs/capacity-mix.json]

One process, as bench/costs.py: a moto server (thread), the API handler behind the local
API server (every HTTP request one Lambda invocation, its requests the ``api`` actor's),
one node agent (thread, 2 workers) and the client, every AWS client metered by
:class:`bench.costmeter.CostMeter`, which attributes requests and units per table, key
kind and partition key. It measures:

(a) idle: the agent polling with 1 and with ``--streams`` idle streams (per node-second);
(b) busy: ``--jobs`` short jobs forked through the API (enqueue, claim, complete,
    results, acknowledgement) on one stream, then twice as many on another, split
    (:func:`impetus.capacity.mix.split_runs`) into per job (what grows with the jobs) and
    per run (what a run costs once: the stream's creation, its counter items, the code
    item, the collector's lease, the delete), and the hottest partition key's share of
    each;
(c) DFS: a sweep and a plain tick (``impetus.scaler.tick.run``, actor ``dfs``; a sweep
    lists every stream, once a minute, a plain tick the marked ones) as it is, then with
    ``--extra`` more node items, ``--extra`` more idle streams and ``--extra`` more
    streams with a waiting job: per tick, per node, per stream and per busy stream.

Writes the mix as JSON (the model, ``impetus capacity``, reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import costmeter, itemsize
from bench.costs import Fork, Rig
from impetus.capacity.mix import SCHEMA, split_count, split_runs
from impetus.core import codec
from impetus.scaler import tick
from impetus.scaler.activity import Activity
from impetus.scaler.config import DfsSettings
from impetus.storage import dynamo
from impetus.storage.activestreams import is_record_key
from impetus.storage.nodes import NodeBeat, Nodes
from impetus.storage.queue import Queue
from impetus.storage.streamcounters import COUNTER_OF

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "capacity-mix.json"
SETTLE = 2.0  # seconds for the agent to notice new or deleted streams


def rows(usage: costmeter.Usage, per: float) -> list[dict[str, Any]]:
    """Requests and units per (actor, table, key kind, operation), divided by ``per``."""
    return [
        {
            "actor": actor, "table": table, "kind": kind, "op": op,
            "requests": c.requests / per, "rcu": c.rcu / per, "wcu": c.wcu / per,
        }
        for (actor, table, kind, op), c in sorted(usage.by_key.items())
    ]  # fmt: skip


def hot(usage: costmeter.Usage, per: float) -> list[dict[str, Any]]:
    """Per (table, key kind): the hottest partition key (all actors together), per ``per``."""
    merged: dict[tuple[str, str], dict[str, costmeter.OpCount]] = defaultdict(
        lambda: defaultdict(costmeter.OpCount)
    )
    for (_, table, kind), keys in usage.per_key.items():
        for pk, c in keys.items():
            total = merged[(table, kind)][pk]
            total.requests += c.requests
            total.rcu += c.rcu
            total.wcu += c.wcu
    out = []
    for (table, kind), keys in sorted(merged.items()):
        top = max(keys.values(), key=lambda c: max(c.rcu / 3000, c.wcu / 1000, c.requests * 1e-9))
        out.append(
            {
                "table": table, "kind": kind, "keys": len(keys),
                "requests": top.requests / per, "rcu": top.rcu / per, "wcu": top.wcu / per,
            }
        )  # fmt: skip
    return out


def measure_idle(rig: Rig, seconds: float, streams: int) -> dict[str, Any]:
    queue = Queue(rig.settings, client=rig.meter._probe)  # unmetered: setup is not the mix
    ids = [queue.create_stream(f"idle-{streams}-{i}")[0]["id"] for i in range(streams)]
    time.sleep(SETTLE)
    rig.meter.reset()
    time.sleep(seconds)
    usage = rig.meter.reset()
    for sid in ids:
        queue.delete_stream(sid)
    # DFS unmarks gone streams at its next tick; without it the next phase's node would
    # keep re-reading the deleted streams' items (once per ITEM_TTL each), which no fleet
    # with DFS running does.
    Activity().sweep(queue, time.monotonic())
    time.sleep(SETTLE)
    return {"streams": streams, "seconds": seconds, "per_node_second": rows(usage, seconds),
            "hot_per_node_second": hot(usage, seconds)}  # fmt: skip


def measure_busy(rig: Rig, jobs: int) -> dict[str, Any]:
    """Runs of ``jobs`` and ``2 x jobs`` jobs (each its own stream), split per job and per
    run; ``jobs`` and ``seconds``: the larger run's (a node's polls go with its pace)."""
    sizes = (jobs, 2 * jobs)
    runs = [rig.run(Fork, n) for n in sizes]
    (small, _), (large, wall) = runs
    per_job, per_run = split_runs(
        rows(small, 1), rows(large, 1), sizes, ("actor", "table", "kind", "op")
    )
    hot_per_job, hot_per_run = split_runs(hot(small, 1), hot(large, 1), sizes, ("table", "kind"))
    invocations = split_count(small.lambda_invocations, large.lambda_invocations, sizes)
    s3 = split_count(sum(small.s3.values()), sum(large.s3.values()), sizes)
    calls = small.lambda_invocations + large.lambda_invocations
    return {
        "runs": [
            {"jobs": n, "seconds": w, "lambda_invocations": u.lambda_invocations}
            for n, (u, w) in zip(sizes, runs, strict=True)
        ],
        "jobs": sizes[-1],
        "seconds": wall,
        "per_job": per_job,
        "per_run": per_run,
        "hot_per_job": hot_per_job,
        "hot_per_run": hot_per_run,
        "lambda_invocations_per_job": invocations[0],
        "lambda_invocations_per_run": invocations[1],
        "lambda_ms": 1000 * (small.lambda_seconds + large.lambda_seconds) / max(1, calls),
        "s3_requests_per_job": s3[0],
        "s3_requests_per_run": s3[1],
    }


def _beat(nodes: Nodes, node_id: str) -> None:
    now = time.time()
    nodes.heartbeat(NodeBeat(node_id, "host", 1, now, now, 5.0, {}, 2))


def _tick(rig: Rig, settings: DfsSettings, sweep: bool) -> tuple[costmeter.Usage, float]:
    """One tick, metered; ``sweep``: the once-a-minute full listing (Scan, repairs,
    idle streams' audit and expiry), else a tick over the marked streams."""
    tick._reaping.reaped_at.clear()  # every busy stream is in the slice (worst case)
    tick._activity.swept_at = float("-inf") if sweep else time.time()
    rig.meter.reset()
    t0, probes = time.perf_counter(), rig.meter.probe_seconds()
    with rig.meter.acting("dfs"):
        tick.run(settings)
    seconds = time.perf_counter() - t0 - (rig.meter.probe_seconds() - probes)
    return rig.meter.reset(), seconds


def _difference(a: costmeter.Usage, b: costmeter.Usage, per: int) -> list[dict[str, Any]]:
    """Rows of ``b - a`` per unit (what ``per`` more items cost a tick)."""
    out = {**{k: {**r, "requests": -r["requests"], "rcu": -r["rcu"], "wcu": -r["wcu"]}
              for k, r in ((_row_key(r), r) for r in rows(a, per))}}  # fmt: skip
    for r in rows(b, per):
        k = _row_key(r)
        base = out.get(k, {**r, "requests": 0.0, "rcu": 0.0, "wcu": 0.0})
        out[k] = {**r, **{f: base[f] + r[f] for f in ("requests", "rcu", "wcu")}}
    return [r for r in out.values() if any(abs(r[f]) > 1e-9 for f in ("requests", "rcu", "wcu"))]


def _row_key(r: dict[str, Any]) -> tuple[str, ...]:
    return (r["actor"], r["table"], r["kind"], r["op"])


def _fork_one(queue: Queue, stream: str) -> None:
    code = codec.dump_function(abs)
    spec = {"name": "abs", "code": codec.digest(code), "args": codec.dumps(-1), "stage": "s"}
    queue.enqueue(stream, [spec], {codec.digest(code): code}, codec.PYTHON_VERSION)


def _ticks(rig: Rig, settings: DfsSettings) -> dict[bool, tuple[costmeter.Usage, float]]:
    """A sweep, then a tick over the marked streams (what the sweep audited is not due
    again: the plain tick shows what every tick costs)."""
    return {sweep: _tick(rig, settings, sweep) for sweep in (True, False)}


def _per_item(stages: list[dict[bool, tuple[costmeter.Usage, float]]], sweep: bool, extra: int):
    """Per tick, per node, per stream and per busy stream, of sweeps or plain ticks."""
    base, nodes, streams, busy = (stage[sweep][0] for stage in stages)
    return {
        "per_tick": rows(base, 1),
        "per_node": _difference(base, nodes, extra),
        "per_stream": _difference(nodes, streams, extra),
        "per_busy_stream": _difference(streams, busy, extra),
        "seconds": dict(zip(("base", "nodes", "streams", "busy"),
                            (stage[sweep][1] for stage in stages), strict=True)),
    }  # fmt: skip


def measure_dfs(rig: Rig, extra: int) -> dict[str, Any]:
    """DFS's own requests (the agent is stopped first: its claims are not the tick's),
    of plain ticks (the marked streams) and of sweeps (every stream, once a minute)."""
    rig.agent.request_stop()
    rig.thread.join(30)
    settings = DfsSettings(aws=rig.settings)
    probe = rig.meter._probe
    queue = Queue(rig.settings, client=probe)
    nodes = Nodes.for_settings(probe, rig.settings)
    stages = [_ticks(rig, settings)]
    for i in range(extra):
        _beat(nodes, f"capacity-node-{i}")
    stages.append(_ticks(rig, settings))
    idle_ids = [queue.create_stream(f"dfs-idle-{i}")[0]["id"] for i in range(extra)]
    stages.append(_ticks(rig, settings))
    busy_ids = [queue.create_stream(f"dfs-busy-{i}")[0]["id"] for i in range(extra)]
    for sid in busy_ids:
        _fork_one(queue, sid)
    stages.append(_ticks(rig, settings))
    sizes = {
        "stream": _bytes_per_stream(probe, queue.streams.table),
        "node": _mean_size(probe, nodes.table),
    }
    for sid in idle_ids + busy_ids:
        queue.delete_stream(sid)
    for i in range(extra):
        nodes.remove(f"capacity-node-{i}")
    return {
        "extra": extra,
        **_per_item(stages, False, extra),
        "sweep": _per_item(stages, True, extra),
        "item_bytes": sizes,
    }


def _bytes_per_stream(client: Any, table: str) -> float:
    """What a Scan reads per stream: its item and its counter items (the active-streams
    record's few items are left out)."""
    raw = [dynamo.serialize(i) for i in dynamo.scan(client, TableName=table)]
    raw = [i for i in raw if not is_record_key(i["stream"]["S"])]
    streams = sum(1 for i in raw if COUNTER_OF not in i)
    return sum(itemsize.item_size(i) for i in raw) / max(1, streams)


def _mean_size(client: Any, table: str) -> float:
    items = dynamo.scan(client, TableName=table)
    raw = [dynamo.serialize(i) for i in items]
    return sum(itemsize.item_size(i) for i in raw) / max(1, len(raw))


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def measure(jobs: int, idle_seconds: float, streams: int, extra: int) -> dict[str, Any]:
    rig = Rig()
    try:
        idle = [measure_idle(rig, idle_seconds, n) for n in sorted({1, streams})]
        busy = measure_busy(rig, jobs)
        dfs = measure_dfs(rig, extra)
    finally:
        rig.close()
    return {
        "schema": SCHEMA,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "params": {
            "jobs": jobs,
            "idle_seconds": idle_seconds,
            "streams": streams,
            "extra": extra,
            "node_poll_interval": rig.agent.settings.poll_interval,
        },
        "idle": idle,
        "busy": busy,
        "dfs": dfs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # runs of 1,000 and 2,000 jobs: each spans several of the client's batches of forks
    # (impetus.forks.FLUSH_JOBS, 500), so the API calls that grow with the jobs show
    parser.add_argument("--jobs", type=int, default=1000, help="jobs of the smaller run")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds per idle window")
    parser.add_argument("--streams", type=int, default=50, help="idle streams (besides 1)")
    parser.add_argument("--extra", type=int, default=50, help="items added per DFS tick")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where the mix is written")
    args = parser.parse_args(argv)
    os.environ.setdefault("IMPETUS_LOG_LEVEL", "WARNING")
    mix = measure(args.jobs, args.idle, args.streams, args.extra)
    Path(args.out).write_text(json.dumps(mix, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
