"""Cost per job on AWS, measured: DynamoDB requests and units, S3, Lambda, for fork and map.

    python bench/costs.py [--jobs 2000] [--idle 10] [--json out.json]

Runs the real code paths in one process so that one :class:`bench.costmeter.CostMeter`
sees every AWS request: a serialised moto server (thread), the API handler behind the
local API server (thread; every HTTP request is one Lambda invocation), one node agent
(thread, 2 spawned workers) and the client. Each workload is one client run from
creating its stream to deleting it (so the per-job figure includes stream creation,
collection, acknowledgement and purge). ``--idle`` also measures what an idle node costs
per second (agent polling and heartbeats with no stream, then with an idle stream).
Prints a table; ``--json`` writes the numbers for bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from typing import Any

from bench import costmeter as costs
from impetus import Impetus
from impetus.core import aws
from impetus.core.config import AwsSettings
from impetus.local.apiserver import ApiServer
from impetus.local.motoserver import MotoServer
from impetus.local.provision import client as local_client
from impetus.local.provision import local_settings, provision, server_environment
from impetus.session import StreamSession

SECONDS_PER_MONTH = 30 * 86400


def square(x):
    return x * x


class Fork(Impetus):
    n = 2000

    @Impetus.startup
    def start(self):
        for i in range(self.n):
            self.fork(square, args=i)

    @Impetus.process
    def collect(self, ready, errors):
        self.total = getattr(self, "total", 0) + sum(j["result"] for j in ready)


class Map(Fork):
    @Impetus.startup
    def start(self):
        self.map(square, range(self.n))


class MeteredApi(ApiServer):
    """The local API server, counting each request as one Lambda invocation."""

    meter: costs.CostMeter

    def invoke(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        t0, probes = time.perf_counter(), self.meter.probe_seconds()
        try:
            with self.meter.acting("api"):  # its requests are the API Lambda's
                return super().invoke(event)
        finally:
            # the meter's own probe requests are not the function's time
            probed = self.meter.probe_seconds() - probes
            self.meter.lambda_invocation(time.perf_counter() - t0 - probed)


class Rig:
    """moto + API + one node agent in this process, every AWS client metered."""

    def __init__(self) -> None:
        self.moto = MotoServer().start()
        settings = local_settings(self.moto.endpoint_url, "cost")
        os.environ.update(server_environment(settings, dict(os.environ)))
        self.settings = AwsSettings.from_env()
        self.meter = costs.CostMeter(local_client("dynamodb", settings), "cost")
        original = aws.client
        aws.client = lambda *a, **k: self.meter.instrument(original(*a, **k))  # type: ignore[assignment]
        self.authkey = provision(settings).authkey
        from lambdas.api import app as api_app

        # A fresh container: a Queue or authkey client cached by an earlier API in this
        # process points at another endpoint (a test's moto, or none: real AWS).
        api_app.reset_state()
        api_app.logger.setLevel(logging.WARNING)  # one INFO line per request otherwise
        MeteredApi.meter = self.meter
        self.api = MeteredApi(port=0).start()
        from node_agent.agent import Agent
        from node_agent.config import NodeSettings

        node = NodeSettings(node_id="cost-node", mpps=2, aws=self.settings).resolved()
        self.agent = Agent(node)
        self.thread = threading.Thread(target=self.agent.run, name="agent", daemon=True)
        self.thread.start()

    def run(self, app_class: type[Fork], n: int) -> tuple[costs.Usage, float]:
        self.meter.reset()
        t0 = time.perf_counter()
        app = app_class(self.api.url, self.authkey, taskdir=None)
        app.n = n
        app.run(progress=_Silent())
        assert app.total == sum(i * i for i in range(n)), "wrong total"
        return self.meter.reset(), time.perf_counter() - t0

    def idle(self, seconds: float, with_stream: bool) -> costs.Usage:
        stream = StreamSession.open(self.api.url, self.authkey) if with_stream else None
        time.sleep(2.0)  # let the agent notice (or forget) streams
        self.meter.reset()
        time.sleep(seconds)
        usage = self.meter.reset()
        if stream is not None:
            stream.delete()
        return usage

    def close(self) -> None:
        self.agent.request_stop()
        self.thread.join(30)
        self.api.stop()
        self.moto.stop()
        from lambdas.api import app as api_app

        api_app.reset_state()  # nothing cached here outlives this moto server


class _Silent:
    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def note(self, text: str) -> None:  # a job's output: not shown
        pass

    def close(self) -> None:
        pass


def per_job(usage: costs.Usage, n: int) -> dict[str, Any]:
    dollars = usage.dollars()
    return {
        "jobs": n,
        "dynamodb_requests": usage.dynamodb_requests / n,
        "rcu": usage.rcu / n,
        "wcu": usage.wcu / n,
        "by_operation": {
            op: {"requests": c.requests / n, "rcu": c.rcu / n, "wcu": c.wcu / n}
            for op, c in sorted(usage.dynamodb.items())
        },
        "s3_requests": sum(usage.s3.values()) / n,
        "lambda_invocations": usage.lambda_invocations / n,
        "lambda_ms": 1000 * usage.lambda_seconds / max(1, usage.lambda_invocations),
        "usd_per_million": {k: v / n * 1e6 for k, v in dollars.items()},
        "usd_per_million_total": sum(dollars.values()) / n * 1e6,
    }


def idle_rate(usage: costs.Usage, seconds: float) -> dict[str, float]:
    return {
        "dynamodb_requests_per_s": usage.dynamodb_requests / seconds,
        "rcu_per_s": usage.rcu / seconds,
        "wcu_per_s": usage.wcu / seconds,
        "usd_per_node_month": sum(usage.dollars().values()) / seconds * SECONDS_PER_MONTH,
    }


def measure(n: int, idle_seconds: float) -> dict[str, Any]:
    rig = Rig()
    try:
        fork, fork_wall = rig.run(Fork, n)
        mapped, map_wall = rig.run(Map, n)
        out: dict[str, Any] = {
            "fork": per_job(fork, n),
            "map": per_job(mapped, n),
            "sqs_usd_per_million": costs.sqs_dollars_per_million(),
            "walls_s": {"fork": fork_wall, "map": map_wall},
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "assumptions": {
                "lambda_memory_gb": costs.LAMBDA_MEMORY_GB,
                "lambda_duration": "measured here against moto, the meter's probes taken out",
                "api_gateway": "HTTP API, $1.00 per million requests",
            },
        }
        if idle_seconds > 0:
            out["idle_no_stream"] = idle_rate(rig.idle(idle_seconds, False), idle_seconds)
            out["idle_one_stream"] = idle_rate(rig.idle(idle_seconds, True), idle_seconds)
        return out
    finally:
        rig.close()


def render(result: dict[str, Any]) -> str:
    rows = [
        "| per job | fork | map |",
        "|---|---:|---:|",
    ]
    f, m = result["fork"], result["map"]
    for label, key, fmt in (
        ("DynamoDB requests", "dynamodb_requests", "{:.3f}"),
        ("write units (WCU)", "wcu", "{:.3f}"),
        ("read units (RCU)", "rcu", "{:.3f}"),
        ("S3 requests", "s3_requests", "{:.4f}"),
        ("Lambda invocations", "lambda_invocations", "{:.4f}"),
    ):
        rows.append(f"| {label} | {fmt.format(f[key])} | {fmt.format(m[key])} |")
    for part in ("dynamodb", "lambda", "api_gateway", "s3"):
        rows.append(
            f"| $ per million jobs: {part} | {f['usd_per_million'][part]:.3f} "
            f"| {m['usd_per_million'][part]:.3f} |"
        )
    rows.append(
        f"| **$ per million jobs** | **{f['usd_per_million_total']:.2f}** "
        f"| **{m['usd_per_million_total']:.2f}** |"
    )
    rows.append(
        f"| SQS + Auto Scaling (3 requests x $0.40/M) | {result['sqs_usd_per_million']:.2f} "
        f"| {result['sqs_usd_per_million']:.2f} |"
    )
    lines = ["\n".join(rows), "", "Write units per job by operation (fork / map):", ""]
    ops = sorted(set(f["by_operation"]) | set(m["by_operation"]))
    lines.append("| operation | requests/job fork | WCU/job fork | RCU/job fork "
                 "| requests/job map | WCU/job map | RCU/job map |")  # fmt: skip
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    zero = {"requests": 0.0, "wcu": 0.0, "rcu": 0.0}
    for op in ops:
        a, b = f["by_operation"].get(op, zero), m["by_operation"].get(op, zero)
        lines.append(
            f"| {op} | {a['requests']:.3f} | {a['wcu']:.3f} | {a['rcu']:.3f} "
            f"| {b['requests']:.3f} | {b['wcu']:.3f} | {b['rcu']:.3f} |"
        )
    for key, label in (("idle_no_stream", "no stream"), ("idle_one_stream", "one idle stream")):
        if key in result:
            i = result[key]
            lines.append(
                f"\nIdle node ({label}): {i['dynamodb_requests_per_s']:.2f} DynamoDB requests/s, "
                f"{i['rcu_per_s']:.2f} RCU/s, {i['wcu_per_s']:.2f} WCU/s = "
                f"${i['usd_per_node_month']:.2f} per node-month"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    result = measure(args.jobs, args.idle)
    print(render(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
