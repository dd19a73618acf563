"""The local stack, started once for the e2e tests and stopped at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def impetus_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "impetus.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """`impetus local up --nodes 2` under a private IMPETUS_HOME; `down` afterwards."""
    home = tmp_path_factory.mktemp("impetus-home")
    env = dict(os.environ, IMPETUS_HOME=str(home))
    env.pop("IMPETUS_TABLE_PREFIX", None)
    up = impetus_cli("local", "up", "--nodes", "2", "--mpps", "2", env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    settings = json.loads((Path(home) / "local.json").read_text())
    status = json.loads(impetus_cli("local", "status", "--json", env=env).stdout)
    assert status["nodes_alive"] == 2 and status["moto_alive"]
    pids = [status["supervisor_pid"], status["moto_pid"]] + [n["pid"] for n in status["nodes"]]
    previous = os.environ.get("IMPETUS_HOME")
    os.environ["IMPETUS_HOME"] = str(home)
    try:
        yield {"env": env, "home": Path(home), "settings": settings}
    finally:
        if previous is None:
            os.environ.pop("IMPETUS_HOME", None)
        else:
            os.environ["IMPETUS_HOME"] = previous
        down = impetus_cli("local", "down", env=env)
        assert down.returncode == 0, down.stderr
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        assert not [p for p in pids if _alive(p)], "local down left processes behind"
