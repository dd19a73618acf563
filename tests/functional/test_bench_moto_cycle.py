"""bench/moto_cycle.py runs (small) and reports both motos and the operations it timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "moto_cycle.py"


def test_moto_cycle_compares_released_and_patched_moto():
    out = subprocess.run(
        [sys.executable, str(BENCH), "--jobs", "60", "--reps", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    assert "60-job queue cycle" in out
    assert "released" in out and "motospeed" in out and "x faster" in out
    for operation in ("UpdateItem", "Query", "BatchGetItem", "BatchWriteItem"):
        assert f"  {operation} " in out, out
