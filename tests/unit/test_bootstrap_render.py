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
