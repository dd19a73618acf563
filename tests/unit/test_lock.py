"""The lock (uv.lock) is the one source of versions: for the venv, the Lambda, the nodes."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra import lock
from infra.build import LAMBDA_MACHINE, LAMBDA_PYTHON, pinned_requirements

ROOT = Path(__file__).resolve().parents[2]


def uv_lock_check(project: Path) -> subprocess.CompletedProcess:
    """``uv lock --check``, offline when uv's cache has what the resolution reads.

    A changed pyproject makes uv resolve again, which needs the index pages of every
    package; ``make venv`` installs from the lock's URLs and caches none of them. On a
    cold cache the offline check fails for that reason, not for the mismatch, so the
    check then asks PyPI (which ``make venv`` needs anyway)."""
    args = [lock.uv_bin(), "lock", "--check", "--quiet"]
    run = dict(cwd=project, capture_output=True, text=True, timeout=120)
    check = subprocess.run([*args, "--offline"], **run)
    if check.returncode and "network was disabled" in check.stderr:
        check = subprocess.run(args, **run)
    return check


def test_the_lock_is_in_step_with_pyproject():
    check = uv_lock_check(ROOT)
    assert check.returncode == 0, f"run `make lock`:\n{check.stderr}"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"boto3>=1.34"', '"boto3>=1.30"'),  # a changed bound
        ('"cloudpickle>=3.0",', '"cloudpickle>=3.0",\n    "six>=1.16",'),  # a new dependency
    ],
)
def test_a_pyproject_the_lock_does_not_match_fails_the_check(tmp_path, old, new):
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text()
    assert old in text
    pyproject.write_text(text.replace(old, new))
    check = uv_lock_check(tmp_path)
    assert check.returncode != 0
    assert "needs to be updated" in check.stderr
    assert (tmp_path / "uv.lock").read_bytes() == (ROOT / "uv.lock").read_bytes()  # untouched


@pytest.mark.skipif(
    os.environ.get("IMPETUS_UNLOCKED") == "1",
    reason="make test-latest runs on the newest allowed versions, not the lock's, by design",
)
def test_this_venv_runs_the_locked_versions():
    pins = dict(pin.split("==") for pin in lock.pins(("dev",), "3.11", "x86_64"))
    for name in ("boto3", "cloudpickle", "moto", "aws-cdk-lib"):
        assert importlib.metadata.version(name) == pins[name], name


def test_the_lambda_bundle_installs_the_locked_versions():
    lambda_pins = dict(pin.split("==") for pin in pinned_requirements())
    locked = dict(pin.split("==") for pin in lock.pins(("lambda",), LAMBDA_PYTHON, LAMBDA_MACHINE))
    assert lambda_pins == locked
    assert {"aws-lambda-powertools", "pydantic", "cloudpickle", "boto3"} <= set(lambda_pins)
    assert "moto" not in lambda_pins and "pytest" not in lambda_pins


def test_markers_are_evaluated_for_the_target_not_this_machine():
    lines = [
        "tomli==2.2.1 ; python_full_version < '3.11'",
        "colorama==0.4.6 ; sys_platform == 'win32'",
        "numpy==2.3.0 ; platform_machine == 'aarch64'",
        "cloudpickle==3.1.3",
    ]
    assert lock.for_target(lines, "3.10", "x86_64") == ["tomli==2.2.1", "cloudpickle==3.1.3"]
    assert lock.for_target(lines, "3.12", "aarch64") == ["numpy==2.3.0", "cloudpickle==3.1.3"]
