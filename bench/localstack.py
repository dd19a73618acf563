"""A private local stack for a bench script: ``with private_stack(nodes=2, mpps=2):``.

Starts ``impetus local up`` under a temporary IMPETUS_HOME (so it cannot meet the
user's own stack), points this process's ``impetus.Executor()`` at it (IMPETUS_HOME in
``os.environ``, which child processes inherit too) and takes it down at the end, also
when the body raises.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator


def impetus_cli(*args: str) -> str:
    """Run ``impetus ARGS`` with this process's environment; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "impetus.cli", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"impetus {' '.join(args)}: {done.stderr.strip() or done.stdout}")
    return done.stdout


@contextlib.contextmanager
def private_stack(nodes: int = 2, mpps: int = 2) -> Iterator[str]:
    """A fresh local stack for the body; yields its IMPETUS_HOME."""
    previous = os.environ.get("IMPETUS_HOME")
    with tempfile.TemporaryDirectory(prefix="impetus-bench-") as home:
        os.environ["IMPETUS_HOME"] = home
        os.environ.pop("IMPETUS_TABLE_PREFIX", None)
        try:
            impetus_cli("local", "up", "--nodes", str(nodes), "--mpps", str(mpps))
            try:
                yield home
            finally:
                impetus_cli("local", "down")
        finally:
            if previous is None:
                os.environ.pop("IMPETUS_HOME", None)
            else:
                os.environ["IMPETUS_HOME"] = previous
