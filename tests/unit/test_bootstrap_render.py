"""The user-data renderer: quoting, the agent's arguments, and what it refuses."""

from __future__ import annotations

import subprocess

import pytest

from impetus.core.config import ENV_AUTHKEY, ENV_AUTHKEY_SECRET
from node_agent.bootstrap.render import BootConfig, render, unit_text


def config(**overrides) -> BootConfig:
    base = {
        "python_version": "3.11",
        "package_source": "s3://bucket/abc.zip",
        "region": "eu-west-1",
        "environment": {"IMPETUS_TABLE_PREFIX": "impetus"},
    }
    return BootConfig(**{**base, **overrides})


def settings_of(script: str) -> dict[str, str]:
    """Evaluate the rendered settings block in bash and read the variables back."""
    block = script.split("# --- layout")[0]
    names = ["ROOT", "PACKAGE_SOURCE", "AGENT_ARGS", "NODE_ENV", "LOG_GROUP", "GRACE"]
    probe = block + "".join(f'printf "%s\\0" "${n}"\n' for n in names)
    out = subprocess.run(["bash", "-c", probe], capture_output=True, check=True).stdout
    return dict(zip(names, out.decode().split("\0")[:-1], strict=True))


def test_values_reach_the_script_intact_however_odd():
    odd = "/tmp/a dir/it's $HOME `x`"
    script = render(config(root=odd, log_group="/impetus/nodes", grace=45, package_source=odd))
    values = settings_of(script)
    assert values["ROOT"] == odd and values["PACKAGE_SOURCE"] == odd
    assert values["LOG_GROUP"] == "/impetus/nodes" and values["GRACE"] == "45"
    assert values["NODE_ENV"] == "IMPETUS_TABLE_PREFIX=impetus"


def test_agent_arguments_carry_mpps_and_properties():
    script = render(config(mpps=6, properties={"node_class": "gpu", "zone": "a:b"}))
    assert settings_of(script)["AGENT_ARGS"] == "--mpps 6 --properties node_class:gpu,zone:a:b"
    assert unit_text() in script


@pytest.mark.parametrize("name", [ENV_AUTHKEY, ENV_AUTHKEY_SECRET])
def test_refuses_the_authkey_in_user_data(name):
    with pytest.raises(ValueError, match="never reach"):
        render(config(environment={name: "whatever"}))


@pytest.mark.parametrize(
    "overrides",
    [
        {"python_version": "3"},
        {"python_version": "3.11; rm -rf /"},
        {"package_source": ""},
        {"mpps": 0},
        {"grace": -1},
        {"service": "init"},
        {"properties": {"bad key": "v"}},
        {"properties": {"k": "a,b"}},
        {"environment": {"lower": "x"}},
        {"environment": {"OK": "two\nlines"}},
    ],
)
def test_rejects_bad_configuration(overrides):
    with pytest.raises(ValueError):
        render(config(**overrides))


def run_functions(script: str, calls: str, tmp_path, stubs: tuple[str, ...]) -> list[str]:
    """Run the script's functions (not main) with stub commands that log their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for name in stubs:
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 1\n' if name == "id"
                        else f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')  # fmt: skip
        stub.chmod(0o755)
    body = script.rsplit("\nmain()", 1)[0].replace("set -euo pipefail", "set -eu")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(["bash", "-c", body + "\n" + calls], env=env, check=True, cwd=tmp_path)
    return log.read_text().splitlines()


def test_jobs_run_as_their_own_user_without_the_metadata_service(tmp_path):
    script = render(config(root=str(tmp_path / "root")))
    for name in ("etc/impetus", "var/lib/impetus", "var/log/impetus"):
        (tmp_path / "root" / name).mkdir(parents=True)
    calls = run_functions(
        script, "create_users; block_metadata_for_jobs", tmp_path, ("id", "useradd", "nft")
    )
    assert any(c.startswith("useradd --system --create-home") and "impetus-job" in c for c in calls)
    rules = [c for c in calls if c.startswith("nft add rule")]
    assert rules == [
        "nft add rule inet impetus jobs meta skuid impetus-job ip daddr 169.254.169.254 reject",
        "nft add rule inet impetus jobs meta skuid impetus-job ip6 daddr fd00:ec2::254 reject",
    ]
    assert (tmp_path / "root/var/lib/impetus").stat().st_mode & 0o777 == 0o700
    assert "IMPETUS_WORKER_USER=$JOB_USER" in script
    unit = unit_text()
    assert "AmbientCapabilities=CAP_SETUID CAP_SETGID" in unit
    assert "CapabilityBoundingSet=CAP_SETUID CAP_SETGID" in unit
    assert "StateDirectoryMode=0700" in unit and "LogsDirectoryMode=0700" in unit


def run_with_stubs(script: str, calls: str, tmp_path, stubs: dict[str, str]) -> tuple[int, list]:
    """The script's functions (not main) with stub commands (name -> sh body) that log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    log.touch()
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}\n')
        stub.chmod(0o755)
    body = script.rsplit("\nmain()", 1)[0]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", body + "\n" + calls], env=env, cwd=tmp_path)
    return done.returncode, log.read_text().splitlines()


def test_downloads_are_retried_before_the_bootstrap_gives_up(tmp_path):
    script = render(config())
    flaky = (
        f'n=$(cat {tmp_path}/n 2>/dev/null || echo 0); echo $((n+1)) > {tmp_path}/n; [ "$n" -ge 2 ]'
    )
    status, calls = run_with_stubs(
        script, "retry 5 aws s3 cp s3://b/k.zip x.zip", tmp_path, {"aws": flaky, "sleep": ""}
    )
    assert status == 0
    assert [c for c in calls if c.startswith("aws")] == ["aws s3 cp s3://b/k.zip x.zip"] * 3
    assert [c for c in calls if c.startswith("sleep")] == ["sleep 2", "sleep 4"]
    second = tmp_path / "second"
    second.mkdir()
    status, calls = run_with_stubs(
        script, "retry 3 dnf install -y x", second, {"dnf": "exit 1", "sleep": ""}
    )
    assert status != 0 and len([c for c in calls if c.startswith("dnf")]) == 3
    assert 'retry "$RETRIES" aws s3 cp' in script and 'retry "$RETRIES" dnf install' in script


def test_a_failed_bootstrap_ships_its_log_then_shuts_down(tmp_path):
    root = tmp_path / "root"
    script = render(config(root=str(root), log_group="/impetus/nodes", node_id="i-0abc"))
    (root / "var/log").mkdir(parents=True)
    status, calls = run_with_stubs(
        script,
        'exec > >(tee -a "$BOOT_LOG") 2>&1; trap on_exit EXIT\n'
        "echo 'curl: (22) The requested URL returned error: 503'; sleep 0.2; false",
        tmp_path,
        {"aws": 'case "$*" in *file://*) cp "${*##*file://}" events.json;; esac', "shutdown": ""},
    )
    assert status != 0
    ship = [c for c in calls if c.startswith("aws logs")]
    assert ship[0].startswith("aws logs create-log-stream --region eu-west-1")
    assert "--log-group-name /impetus/nodes --log-stream-name i-0abc/bootstrap" in ship[1]
    assert "503" not in " ".join(ship)  # the log travels in a file, never on a command line
    import json

    events = json.loads((tmp_path / "events.json").read_text())
    assert any("returned error: 503" in e["message"] for e in events)
    assert calls[-1] == "shutdown -h now"


def test_the_cloudwatch_agent_ships_the_bootstrap_log_too(tmp_path):
    script = render(config(log_group="/impetus/nodes"))
    assert '"file_path": "/var/log/impetus-bootstrap.log"' in script
    assert '"log_stream_name": "{instance_id}/bootstrap"' in script
    main = script.rsplit("\nmain()", 1)[1]
    assert 'exec > >(tee -a "$BOOT_LOG") 2>&1' in main and "trap on_exit EXIT" in main
