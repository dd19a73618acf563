"""End to end: the local stack under DFS starts with 0 nodes, runs nodes while work
waits, and returns to 0 once they idle; no job is lost on the way.

Short idle threshold (--idle-seconds 3) keeps it well under a minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import impetus_cli

PROGRAM = """
import time
from impetus import Impetus


class Sleepy(Impetus):
    @Impetus.node
    def nap(i):
        import time
        time.sleep(0.3)
        return i

    @Impetus.startup
    def start(self):
        for i in range(40):
            self.fork(self.nap, args=i)

    @Impetus.process
    def stage1(self, ready, errors):
        self.seen = getattr(self, "seen", set()) | {job["result"] for job in ready}
        self.failed = getattr(self, "failed", 0) + len(errors)

    @Impetus.shutdown
    def stop(self, ready, errors, progress):
        print("results:", len(self.seen), "distinct:", sorted(self.seen) == list(range(40)))
        print("errors:", self.failed)


if __name__ == "__main__":
    Sleepy().run()
"""


def _status(env) -> dict:
    return json.loads(impetus_cli("local", "status", "--json", env=env).stdout)


def _wait_for(predicate, timeout: float, env) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(env)
        if predicate(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


@pytest.fixture
def dfs_stack(tmp_path):
    home = tmp_path / "home"
    env = dict(os.environ, IMPETUS_HOME=str(home))
    env.pop("IMPETUS_TABLE_PREFIX", None)
    up = impetus_cli("local", "up", "--idle-seconds", "3", "--max-nodes", "2", env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    assert "DFS autoscaling" in up.stdout and "shortened" in up.stdout
    try:
        yield env
    finally:
        down = impetus_cli("local", "down", env=env)
        assert down.returncode == 0, down.stderr


@pytest.mark.e2e
def test_fleet_grows_from_zero_for_work_and_returns_to_zero(dfs_stack, tmp_path):
    env = dfs_stack
    status = _status(env)
    assert status["autoscaling"] and status["nodes_alive"] == 0

    program = tmp_path / "sleepy.py"
    program.write_text(PROGRAM)
    run = subprocess.Popen(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        busy = _wait_for(lambda s: s["nodes_alive"] >= 1, 30, env)
        assert busy["nodes_alive"] >= 1, "no node came up while work waited"
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert "results: 40 distinct: True" in out and "errors: 0" in out  # no job lost

    idle = _wait_for(lambda s: s["nodes_alive"] == 0 and not s["nodes"], 45, env)
    assert idle["nodes_alive"] == 0 and not idle["nodes"], idle["nodes"]

    log = impetus_cli("dfs", "log", "--json", "--limit", "100", env=env)
    assert log.returncode == 0, log.stderr
    decisions = [entry["decision"] for entry in json.loads(log.stdout)]
    actions = [d["action"] for d in decisions]
    assert "scale-out" in actions and "scale-in" in actions
    assert any(d["retire"] for d in decisions)  # idle nodes left by terminate at once
    assert all(0 <= d["desired"] <= 2 for d in decisions)
