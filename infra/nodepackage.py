"""The node package: everything a node installs, so that no node needs PyPI at boot.

One directory per (Python, machine, extra requirements), uploaded as the node class's S3
asset (CDK zips it) and installed by the user-data with ``pip install --no-index``:

    impetus-<version>-py3-none-any.whl   the node agent and the client library
    requirements.txt                     every pin to install, one a line
    wheelhouse/                          a wheel for each pin, for the node's platform

The pins are the lock's (:mod:`infra.lock`): a node runs the cloudpickle, boto3 and the
rest that the clients and the tests ran. A node class's extra requirements (``numpy``,
``requests``, ...) are resolved by ``uv pip compile`` with the lock's pins as
constraints, so a package both need keeps the lock's version, and their wheels join the
wheelhouse. Only wheels go in (AL2023 nodes have no compiler): a requirement without a
wheel for the node's platform fails the synth with pip's message.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infra import lock
from infra.build import build_node_wheel, cached, digest_of, run_quietly

# AL2023's glibc is 2.34: manylinux wheels up to that tag run there (pip also accepts
# every older manylinux tag for this platform).
GLIBC = "2_34"
MACHINES = {False: "x86_64", True: "aarch64"}  # NodeClass.arm -> uname -m
WHEELHOUSE = "wheelhouse"
REQUIREMENTS = "requirements.txt"


@dataclass(frozen=True)
class NodeTarget:
    """What a node package is built for."""

    python: str  # major.minor of the nodes (and of the clients)
    arm: bool = False
    requirements: tuple[str, ...] = ()  # the node class's extras, PEP 508 strings

    @property
    def machine(self) -> str:
        return MACHINES[self.arm]

    @property
    def pip_platform(self) -> str:
        return f"manylinux_{GLIBC}_{self.machine}"

    @property
    def uv_platform(self) -> str:
        return f"{self.machine}-manylinux_{GLIBC}"


def locked_pins(target: NodeTarget) -> list[str]:
    """The node's own dependencies (the project's runtime ones) as the lock pins them."""
    return lock.pins((), target.python, target.machine)


def resolve(target: NodeTarget) -> list[str]:
    """Every pin a node of ``target`` installs: the lock's, plus the extras' closure."""
    pins = locked_pins(target)
    if not target.requirements:
        return pins
    with tempfile.TemporaryDirectory() as tmp:
        wanted, constraints = Path(tmp, "extras.in"), Path(tmp, "lock.txt")
        wanted.write_text("\n".join(target.requirements) + "\n")
        constraints.write_text("\n".join(pins) + "\n")
        out = run_quietly(
            [
                lock.uv_bin(), "pip", "compile", "--quiet", str(wanted),
                "--constraint", str(constraints),
                "--python-version", target.python,
                "--python-platform", target.uv_platform,
                "--only-binary", ":all:",
                "--no-header", "--no-annotate",
            ],
            f"resolving node requirements {list(target.requirements)}",
        )  # fmt: skip
    extras = [line.strip() for line in out.splitlines() if "==" in line]
    return sorted(set(pins) | set(extras), key=str.lower)


def _pip_env() -> dict[str, str]:
    """pip with no machine-wide configuration: only the index, no local wheel caches or
    constraints of this machine's own, so the wheelhouse is what any machine would get."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def _download(target: NodeTarget, pins: list[str], wheelhouse: Path) -> None:
    run_quietly(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps",  # the pins are the whole closure
            "--only-binary=:all:",
            "--platform", target.pip_platform,
            "--python-version", target.python,
            "--implementation", "cp",
            "--dest", str(wheelhouse),
            *pins,
        ],
        f"downloading the node wheelhouse for Python {target.python} {target.machine}",
        env=_pip_env(),
    )  # fmt: skip


def build_node_package(target: NodeTarget) -> Path:
    """The package directory for ``target`` (cached by its inputs and the lock)."""
    wheel = build_node_wheel()
    key = digest_of([wheel], [lock.digest(), target.python, target.machine, *target.requirements])

    def build(out: Path) -> None:
        pins = resolve(target)
        shutil.copy2(wheel, out / wheel.name)
        (out / REQUIREMENTS).write_text("\n".join(pins) + "\n")
        _download(target, pins, out / WHEELHOUSE)

    return cached("node-package", key, build)
