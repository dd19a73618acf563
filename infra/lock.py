"""The project's lock (``uv.lock``) as requirement lists for the artefacts built from it.

Every Python package that deploys, in the Lambda bundle or on a node, is pinned here
from the same lock the tests ran against: ``uv export --frozen`` lists the pins of the
runtime dependencies (plus an extra's), and :func:`for_target` keeps those whose
environment markers hold on the target (Linux, a given CPython and machine), since the
build machine's own markers would say nothing about the target's.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "uv.lock"


def uv_bin() -> str:
    """The uv of this venv: the lock pins it (the dev extra)."""
    from uv import find_uv_bin

    return find_uv_bin()


def digest() -> str:
    """A hash of the lock: artefacts built from it are cached under it."""
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]


@cache
def exported(extras: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``name==version[; markers]`` for the runtime dependencies and ``extras``."""
    args = [uv_bin(), "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project"]
    args += ["--no-header", "--no-annotate", "--format", "requirements-txt"]
    for extra in extras:
        args += ["--extra", extra]
    run = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"uv export failed (is uv.lock in step with pyproject?):\n{run.stderr}")
    lines = (line.strip() for line in run.stdout.splitlines())
    return tuple(line for line in lines if line and not line.startswith(("#", "-")))


def target_environment(python: str, machine: str) -> dict[str, str]:
    """PEP 508 marker values of CPython ``python`` (major.minor) on Linux ``machine``."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
    }


def for_target(lines: Iterable[str], python: str, machine: str) -> list[str]:
    """``name==version`` of each line whose markers hold on the target."""
    env = target_environment(python, machine)
    pins = []
    for line in lines:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            pins.append(f"{req.name}{req.specifier}")
    return pins


def pins(extras: tuple[str, ...], python: str, machine: str) -> list[str]:
    """The locked pins of the runtime dependencies plus ``extras`` for one target."""
    return for_target(exported(tuple(sorted(extras))), python, machine)
