"""The node user-data, executed on this machine in a sandbox, against a local stack.

The script is the same template the stack renders for EC2, with the sandbox settings:
a private root instead of /, this machine's Python (same major.minor as the clients),
the node package (the same zip CDK uploads: wheel, wheelhouse, pins) from a local path
instead of S3, and a direct start instead of systemd. No package index is reachable
while it installs. The local stack runs no node agent of its own, so the helloworld's
100 jobs, and a job importing the node class's extra requirement, can only be run by the
agent the script installed and started.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from impetus.core.config import ENV_BUCKET, ENV_REGION, ENV_SIGNING_SECRET, ENV_TABLE_PREFIX
from infra.nodepackage import NodeTarget, build_node_package
from node_agent.bootstrap.render import BootConfig, render

ROOT = Path(__file__).resolve().parents[2]
GRACE = 5
EXTRA = "humanize"  # a node class's extra requirement: not in the lock, not on the client
# A job importing the extra; the client never imports it (it is not installed here).
USES_EXTRA = """
import impetus

def natural(n):
    import humanize
    return humanize.intcomma(n)

with impetus.Executor() as ex:
    print("extra:", ex.submit(natural, 1234567).result(timeout=120))
"""
# No package index can be reached: any pip that tries one fails at once.
OFFLINE = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "impetus.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def nodeless_stack(tmp_path):
    """A local stack with no node agent: `impetus local up --nodes 0`, `down` afterwards."""
    home = tmp_path / "home"
    env = dict(os.environ, IMPETUS_HOME=str(home))
    env.pop(ENV_TABLE_PREFIX, None)
    up = _cli("local", "up", "--nodes", "0", env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        yield env, json.loads((home / "local.json").read_text())
    finally:
        down = _cli("local", "down", env=env)
        assert down.returncode == 0, down.stderr


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_user_data_installs_and_starts_an_agent_that_runs_jobs(nodeless_stack, tmp_path):
    env, local = nodeless_stack
    root = tmp_path / "root"
    python = "{}.{}".format(*sys.version_info[:2])
    target = NodeTarget(python, platform.machine() == "aarch64", (EXTRA,))
    package = shutil.make_archive(str(tmp_path / "package"), "zip", build_node_package(target))
    script = render(
        BootConfig(
            python_version=python,
            python_bin=sys.executable,
            package_source=package,
            region=local["region"],
            environment={
                ENV_TABLE_PREFIX: local["table_prefix"],
                ENV_SIGNING_SECRET: local["signing_secret"],
                ENV_BUCKET: local["bucket"],
                ENV_REGION: local["region"],
            },
            mpps=2,
            grace=GRACE,
            log_group="sandbox-node-logs",
            root=str(root),
            node_id="sandbox-node",
            service="direct",
        )
    )
    (tmp_path / "user-data.sh").write_text(script)
    # What the instance role and the VPC give a real node: credentials and a way to AWS.
    instance_env = {
        **{k: v for k, v in env.items() if not k.startswith(("AWS_", "IMPETUS_", "PIP_"))},
        **OFFLINE,
        # the node role's grants: the local stack's node identity (impetus.local.iam)
        "AWS_SHARED_CREDENTIALS_FILE": str(Path(env["IMPETUS_HOME"]) / "local/credentials/node"),
        "AWS_PROFILE": "impetus-node",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_ENDPOINT_URL": local["endpoint_url"],
        "NO_PROXY": "127.0.0.1,localhost",
    }
    boot = subprocess.run(
        ["bash", str(tmp_path / "user-data.sh")],
        env=instance_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert boot.returncode == 0, boot.stderr
    pidfile = root / "var/lib/impetus/node/impetus-node.pid"
    venv = root / "opt/impetus/venv"
    try:
        assert pidfile.is_file(), boot.stderr
        pid = int(pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].decode() == str(venv / "bin/python")  # the installed agent
        assert b"sandbox-node" in cmdline and b"--mpps" in cmdline

        # What the script wrote: configuration without secrets, the unit, log shipping.
        node_env = (root / "etc/impetus/node.env").read_text()
        assert f"{ENV_SIGNING_SECRET}={local['signing_secret']}" in node_env
        assert local["authkey"] not in node_env and "AUTHKEY" not in node_env
        assert (
            "Restart=on-failure" in (root / "etc/systemd/system/impetus-node.service").read_text()
        )
        dropin = root / "etc/systemd/system/impetus-node.service.d/stop-timeout.conf"
        assert re.search(rf"TimeoutStopSec={GRACE + 30}\b", dropin.read_text())
        shipping = json.loads(
            (root / "opt/aws/amazon-cloudwatch-agent/etc/impetus.json").read_text()
        )
        collected, bootstrap = shipping["logs"]["logs_collected"]["files"]["collect_list"]
        assert collected["log_group_name"] == bootstrap["log_group_name"] == "sandbox-node-logs"
        assert collected["file_path"] == "/var/log/impetus/impetus-node.log"
        assert bootstrap["file_path"] == "/var/log/impetus-bootstrap.log"
        # the bootstrap's own output, for the CloudWatch agent to ship
        assert "node agent started" in (root / "var/log/impetus-bootstrap.log").read_text()
        assert local["authkey"] not in script

        run = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "helloworld.py")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr
        assert "Total: 328350" in run.stdout and "Errors: 0" in run.stdout
        # The extra requirement came from the wheelhouse, at the pin the package recorded.
        pins = (root / "opt/impetus/package/requirements.txt").read_text().split()
        assert any(pin.startswith(f"{EXTRA}==") for pin in pins)
        extra = subprocess.run(
            [sys.executable, "-c", USES_EXTRA], env=env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert extra.returncode == 0, extra.stderr
        assert "extra: 1,234,567" in extra.stdout
        log = (root / "var/log/impetus/impetus-node.log").read_text()
        assert "node sandbox-node started" in log and "started worker-1" in log
    finally:
        stop = subprocess.run(
            [str(venv / "bin/impetus-node"), "stop", "--piddir", str(pidfile.parent)],
            env=instance_env,
            capture_output=True,
            text=True,
            timeout=GRACE + 30,
        )
    assert stop.returncode == 0, stop.stderr
    assert _wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10)
