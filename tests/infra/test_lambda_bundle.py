"""The Lambdas load, and the bundle ships, only the server side: the wire contract, the
table owners and the scaler; no client SDK, CLI, local stack, simulator or tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infra.build import build_lambda_bundle

ROOT = Path(__file__).resolve().parents[2]
SERVER_SIDE = ("impetus.core", "impetus.storage", "impetus.scaler", "lambdas")
NEVER = (
    "impetus.client", "impetus.executor", "impetus.api_client", "impetus.taskfiles",
    "impetus.progress", "impetus.mapping", "impetus.session", "impetus.forks",
    "impetus.results", "impetus.ledger", "impetus.cli", "impetus.local",
    "impetus.scaler.sim", "bench", "docs", "node_agent", "infra",
)  # fmt: skip


def loaded_by(*modules: str) -> list[str]:
    """The project modules a fresh interpreter loads importing ``modules``."""
    probe = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "roots = ('impetus', 'lambdas', 'node_agent', 'infra', 'bench', 'docs')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in roots)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout)


def is_under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_lambdas_load_only_server_side_modules():
    loaded = loaded_by("lambdas.api.app", "lambdas.authorizer.handler", "lambdas.dfs.handler")
    assert "lambdas.api.app" in loaded and "impetus.storage.queue" in loaded
    assert "lambdas.authorizer.handler" in loaded
    assert [m for m in loaded if is_under(m, NEVER)] == []
    assert [m for m in loaded if m != "impetus" and not is_under(m, SERVER_SIDE)] == []


def test_the_bundle_holds_no_client_cli_local_or_tool_module():
    bundle = build_lambda_bundle()
    ours = [
        ".".join(path.relative_to(bundle).with_suffix("").parts)
        for root in ("impetus", "lambdas")
        for path in (bundle / root).rglob("*.py")
    ]
    assert "impetus.storage.queue" in ours and "lambdas.api.app" in ours
    assert "lambdas.authorizer.handler" in ours  # the edge authorizer ships in the same bundle
    assert [m for m in ours if is_under(m, NEVER)] == []
    assert not (bundle / "node_agent").exists() and not (bundle / "infra").exists()
