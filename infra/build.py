"""Build the deployable artefacts without Docker (no CDK import: tests use it directly).

- Lambda bundle: ``impetus/`` and ``lambdas/`` from this repository, plus the runtime
  and ``lambda`` extra's dependencies at the versions ``uv.lock`` pins (what the tests
  ran is what deploys), installed for the Lambda platform (CPython 3.12, manylinux
  x86_64, wheels only) by ``uv pip install --target``. One bundle serves both functions.
- Node wheel: ``pip wheel --no-deps`` of this repository; :mod:`infra.nodepackage` puts
  it beside a wheelhouse of its locked dependencies (nodes install with no index).

All are cached under ``.cache/`` keyed by a hash of their inputs, so a repeated synth
(or the test suite's synth after ``make synth``) reuses them instead of running pip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from infra import lock

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"
LAMBDA_PYTHON = "3.12"
LAMBDA_MACHINE = "x86_64"
LAMBDA_PLATFORM = "x86_64-manylinux_2_17"  # uv's name for manylinux2014 (Lambda's glibc)
# What the Lambdas import, and nothing else: no client SDK, CLI, local stack, simulator
# or tools (tests/infra/test_lambda_bundle.py checks both the imports and the bundle).
LAMBDA_SOURCES = (
    "lambdas",
    "impetus/__init__.py",
    "impetus/core",
    "impetus/storage",
    "impetus/scaler",
)
LAMBDA_LEFT_OUT = ("impetus/scaler/sim",)  # the simulator: a development tool
LAMBDA_EXTRAS = ("lambda",)
WHEEL_SOURCES = ("impetus", "node_agent", "lambdas", "pyproject.toml")
KEEP_BUILDS = 3  # cached builds kept per kind (older ones are pruned)
_SKIP = ("__pycache__", ".pyc", ".pyo")


def source_files(roots: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        files += [p for p in candidates if p.is_file() and not any(s in str(p) for s in _SKIP)]
    return files


def digest_of(files: Iterable[Path], extra: Iterable[str]) -> str:
    sha = hashlib.sha256()
    for item in extra:
        sha.update(item.encode() + b"\0")
    for path in files:
        sha.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()[:32]


def pinned_requirements() -> list[str]:
    """The Lambda's dependencies at the versions uv.lock pins, for the Lambda's platform."""
    return lock.pins(LAMBDA_EXTRAS, LAMBDA_PYTHON, LAMBDA_MACHINE)


def cached(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """``.cache/<kind>/<key>``, built once by ``build(tmpdir)`` and renamed into place."""
    target = CACHE / kind / key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        build(tmp)
        os.replace(tmp, target)
    except OSError:
        if not target.is_dir():  # not a lost race with a concurrent build
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(target.parent)
    return target


def _prune(kind_dir: Path) -> None:
    """Keep the newest builds of a kind; each Lambda bundle is ~13 MB."""
    builds = sorted(
        (p for p in kind_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in builds[KEEP_BUILDS:]:
        shutil.rmtree(old, ignore_errors=True)


def run_quietly(args: list[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run a build tool; its output is shown only when it fails. Returns its stdout."""
    run = subprocess.run(args, capture_output=True, text=True, env=env)
    if run.returncode:
        raise RuntimeError(f"{what} failed:\n{run.stdout}{run.stderr}")
    return run.stdout


def _pip(*args: str) -> None:
    run_quietly([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], "pip")


def lambda_source_files() -> list[Path]:
    left_out = tuple(REPO / p for p in LAMBDA_LEFT_OUT)
    files = source_files(REPO / p for p in LAMBDA_SOURCES)
    return [f for f in files if not any(f.is_relative_to(d) for d in left_out)]


def lambda_bundle_key() -> str:
    files = lambda_source_files()
    return digest_of(files, [LAMBDA_PYTHON, LAMBDA_PLATFORM, *pinned_requirements()])


def build_lambda_bundle() -> Path:
    """The bundle directory (cached): our packages plus the pinned dependencies."""

    def build(out: Path) -> None:
        run_quietly(
            [
                lock.uv_bin(), "pip", "install", "--quiet",
                "--target", str(out),
                "--python-platform", LAMBDA_PLATFORM,
                "--python-version", LAMBDA_PYTHON,
                "--only-binary", ":all:",
                "--no-deps",  # the pins are the whole closure already
                *pinned_requirements(),
            ],
            "uv pip install (Lambda bundle)",
        )  # fmt: skip
        shutil.rmtree(out / "bin", ignore_errors=True)
        for source in lambda_source_files():
            target = out / source.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)

    return cached("lambda-bundle", lambda_bundle_key(), build)


def build_node_wheel() -> Path:
    """The node package wheel (cached by the hash of its sources)."""
    key = digest_of(source_files(REPO / p for p in WHEEL_SOURCES), [])

    def build(out: Path) -> None:
        _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(REPO))

    wheels = sorted(cached("node-wheel", key, build).glob("impetus-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one impetus wheel, found {wheels}")
    return wheels[0]
