"""Impetus in the peers' harness (../shared/bench/peers/harness.py), on the local stack.

    python bench/bench_impetus.py [--peers-dir DIR]   # BENCH_OUT, BENCH_REPS, ... as the peers

The local stack's moto server and API server play the part Redis plays for Celery, RQ and
Huey: started once before the repetitions (not timed, their CPU counted as the
benchmark's own). Each repetition starts a fresh node agent with 2 worker processes and
a fresh :class:`impetus.Executor` (its own stream); cold start is timed from there to the
first result. W1/W2/W3 use ``Executor.submit`` (one buffered fork per job), W1-map uses
``Executor.map`` (chunk jobs, default chunksize).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "bench" / "peers"  # the peers' drivers and harness
WORKERS = 2


def _cli(home: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, IMPETUS_HOME=home)
    return subprocess.run(
        [sys.executable, "-m", "impetus.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


def start_stack(home: str) -> dict[str, Any]:
    """``impetus local up --nodes 0``: moto + API, no nodes (each rep starts its own)."""
    _cli(home, "local", "up", "--nodes", "0", "--mpps", str(WORKERS))
    status = json.loads(_cli(home, "local", "status", "--json").stdout)
    settings = json.loads((Path(home) / "local.json").read_text())
    return {"settings": settings, "pids": [status["supervisor_pid"], status["moto_pid"]]}


def node_environment(settings: dict[str, Any], home: str) -> dict[str, str]:
    from impetus.local.provision import local_settings, server_environment

    aws = local_settings(settings["endpoint_url"], settings["table_prefix"])
    return server_environment(aws, dict(os.environ, IMPETUS_HOME=home), "node")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-dir", type=Path, default=PEERS, help="harness.py lives here")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="impetus-bench-")
    stack = start_stack(home)
    try:
        # The harness reads these at import: the stack's processes are part of the bench.
        own = os.environ.get("BENCH_OWN_PIDS", "").split() + [str(p) for p in stack["pids"]]
        os.environ["BENCH_OWN_PIDS"] = " ".join(own)
        os.environ["IMPETUS_HOME"] = home
        sys.path.insert(0, str(args.peers_dir))
        return run_harness(home, stack["settings"])
    finally:
        _cli(home, "local", "down")


def run_harness(home: str, settings: dict[str, Any]) -> int:
    import harness  # the peers' harness, unchanged

    from impetus import Executor

    env = node_environment(settings, home)
    numbers = itertools.count(1)
    logdir = Path(harness.LOG_DIR)

    class ImpetusBench(harness.Adapter):
        def up(self) -> None:
            self.executor = Executor(settings["api_url"], settings["authkey"])
            command = [
                sys.executable,
                "-m",
                "node_agent.cli",
                "foreground",
                "--mpps",
                str(WORKERS),
                "--node-id",
                f"bench-{os.getpid()}-{next(numbers)}",
                "--logdir",
                str(logdir),
            ]
            self.node = harness.spawn(command, "impetus-node.log", env=env)

        def submit(self, fn: Any, arg: Any) -> Any:
            return self.executor.submit(fn, arg)

        def result(self, handle: Any) -> Any:
            return handle.result(timeout=300)

        def gather(self, handles: list[Any]) -> list[Any]:
            return [h.result(timeout=600) for h in handles]

        def map(self, fn: Any, args: Any) -> list[Any]:
            return list(self.executor.map(fn, args, timeout=600))

        def down(self) -> None:
            self.executor.shutdown(wait=True)
            harness.stop([self.node])

    from importlib.metadata import version

    harness.main(
        "impetus",
        ImpetusBench,
        {"impetus": version("impetus"), "moto": version("moto"), "boto3": version("boto3")},
        {
            "stack": "impetus local up --nodes 0 (moto server + local API server, started once)",
            "node": f"python -m node_agent.cli foreground --mpps {WORKERS} (fresh per rep)",
            "submit": "Executor.submit (buffered fork)",
            "gather": "Future.result per job",
            "map": "Executor.map (chunk jobs, default chunksize)",
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
