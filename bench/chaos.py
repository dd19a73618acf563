"""Chaos: node agents killed with -9 every few seconds and the client killed once, mid-run.

    python bench/chaos.py [--jobs 1000] [--nodes 3] [--kill-every 3] [--json]

Starts its own local stack (private IMPETUS_HOME) without nodes, then runs ``--nodes``
node agents of its own. Every ``--kill-every`` seconds one of them, chosen at random,
is killed with SIGKILL together with its workers (a machine dying) and a replacement is
started. The client (a child process forking ``--jobs`` jobs that sleep 10-100 ms) is
killed with SIGKILL once, when ``--client-kill-at`` of the jobs are in its task files,
and started again with the same stream id and task directory.

Prints forked, completed, lost (no result line), duplicates (extra result lines in the
task files), errors and re-executions (runs beyond one per job, from a run log every
job appends to). Exit status 0 only when lost == 0 and duplicates == 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from impetus import Impetus, taskfiles
from impetus.core.config import AwsSettings
from impetus.local.provision import server_environment

STAGE = "done"
LEASE = 5.0  # seconds: how long a dead node's jobs wait before they run elsewhere


# --- the client (a child process of the benchmark) --------------------------------------------
def _work(args):
    """Record this run, then sleep 10-100 ms."""
    import time

    index, run_log = args
    with open(run_log, "a") as log:  # O_APPEND: whole lines, whichever process writes
        log.write(f"{index}\n")
    time.sleep(0.01 + (index * 7919 % 91) / 1000)
    return index


class Chaos(Impetus):
    @Impetus.startup
    def start(self):
        for i in range(self.jobs):
            self.fork(_work, args=(i, self.run_log), job_id=f"job-{i:05d}")

    @Impetus.process
    def done(self, ready, errors):
        pass


def run_client(stream_id: str, jobs: int, taskdir: str, run_log: str) -> int:
    # max_attempts: a job may be on several nodes that die; it must not end as "lost".
    app = Chaos(taskdir=taskdir, id=stream_id, lease=LEASE, max_attempts=20)
    app.jobs, app.run_log = jobs, run_log
    app.run()
    return 0


# --- the benchmark ------------------------------------------------------------------------------
class Agents:
    """Node agents of our own, each in its own process group (agent + workers)."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env, self.logdir = env, logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> None:
        self.started += 1
        command = [
            sys.executable,
            "-m",
            "node_agent.cli",
            "foreground",
            "--node-id",
            f"chaos-{self.started}",
            "--mpps",
            "2",
            "--heartbeat-interval",
            "1",
            "--poll-interval",
            "0.2",
            "--grace",
            "0",
        ]
        with open(self.logdir / f"agent-{self.started}.log", "ab") as log:
            self.procs.append(
                subprocess.Popen(
                    command,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def kill_one(self, rng: random.Random) -> None:
        victim = self.procs.pop(rng.randrange(len(self.procs)))
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:  # sweep workers left in the groups
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def impetus_cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "impetus.cli", *args], check=True)


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def start_client(args: argparse.Namespace, stream_id: str, taskdir: Path, run_log: Path):
    command = [sys.executable, __file__, "client", stream_id, str(args.jobs), str(taskdir)]
    return subprocess.Popen([*command, str(run_log)], start_new_session=True)


def chaos(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    settings = json.loads((home / "local.json").read_text())
    aws = AwsSettings(
        endpoint_url=settings["endpoint_url"],
        table_prefix=settings["table_prefix"],
        bucket=settings["bucket"],
    )
    agents = Agents(server_environment(aws, dict(os.environ), "node"), home)
    for _ in range(args.nodes):
        agents.start()
    stream_id = f"chaos-{int(time.time())}"
    taskdir, run_log = home / "tasks", home / "runs.log"
    ok_file = taskdir / stream_id / f"{STAGE}.ok"
    client = start_client(args, stream_id, taskdir, run_log)
    client_kills, node_kills = 0, 0
    started = last_kill = time.monotonic()
    try:
        while client.poll() is None:
            time.sleep(0.1)
            now = time.monotonic()
            if now - started > args.timeout:
                raise TimeoutError(f"no end after {args.timeout:.0f} s")
            if now - last_kill >= args.kill_every:
                last_kill = now
                agents.kill_one(rng)
                agents.start()
                node_kills += 1
            if not client_kills and count_lines(ok_file) >= args.client_kill_at * args.jobs:
                os.killpg(client.pid, signal.SIGKILL)
                client.wait()
                client_kills += 1
                client = start_client(args, stream_id, taskdir, run_log)
        elapsed = time.monotonic() - started
    finally:
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)
        agents.stop()
    counts = {"node_kills": node_kills, "client_kills": client_kills}
    return report(args.jobs, taskdir / stream_id, run_log, elapsed, counts, client.returncode)


def report(
    jobs: int,
    stream_dir: Path,
    run_log: Path,
    elapsed: float,
    kills: dict[str, int],
    client_exit: int | None,
) -> dict[str, Any]:
    ok_path = stream_dir / f"{STAGE}.ok"
    ok = taskfiles.read(ok_path, restore=False) if ok_path.exists() else []  # ids only
    err_path = stream_dir / f"{STAGE}.err"
    err = taskfiles.read(err_path, restore=False) if err_path.exists() else []
    lines = Counter(job["id"] for job in ok + err)
    runs = Counter(run_log.read_text().split()) if run_log.exists() else Counter()
    return {
        "forked": jobs,
        "completed": len(lines),
        "lost": jobs - len(lines),
        "duplicates": sum(n - 1 for n in lines.values()),
        "errors": len({job["id"] for job in err}),
        "re_executions": sum(runs.values()) - len(runs),
        **kills,
        "client_exit": client_exit,
        "seconds": round(elapsed, 1),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        stream_id, jobs, taskdir, run_log = sys.argv[2:6]
        return run_client(stream_id, int(jobs), taskdir, run_log)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--client-kill-at", type=float, default=0.4, help="fraction collected")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="impetus-chaos-") as tmp:
        home = Path(tmp)
        os.environ["IMPETUS_HOME"] = str(home)
        impetus_cli("local", "up", "--nodes", "0")
        try:
            result = chaos(args, home)
        finally:
            impetus_cli("local", "down")
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value}")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
