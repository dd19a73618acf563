"""The chaos benchmark's short form: node agents killed with -9 every two seconds and the
client killed once, mid-run; every job is written exactly once to the task files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_job_lost_or_written_twice_under_kill_minus_nine(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "chaos.py"),
            "--jobs",
            "150",
            "--nodes",
            "3",
            "--kill-every",
            "2",
            "--client-kill-at",
            "0.3",
            "--timeout",
            "400",
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=500,
    )
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, (report, run.stderr[-3000:])
    assert report["lost"] == 0 and report["duplicates"] == 0
    assert report["completed"] == report["forked"] == 150
    assert report["client_kills"] == 1 and report["client_exit"] == 0
    assert report["node_kills"] >= 3  # the run really was under fire
