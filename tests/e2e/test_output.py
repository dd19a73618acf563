"""A job's output on the local stack: shown by the client with the job id, kept in the
task files, switchable."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from impetus import Impetus, taskfiles
from impetus.progress import Progress


def _talk(n):
    print(f"hello from {n}")
    print(f"warning {n}", file=sys.stderr)
    logging.getLogger("talker").warning("logged %d", n)
    return n


class Talker(Impetus):
    @Impetus.startup
    def start(self):
        for i in range(3):
            self.fork(_talk, args=i, job_id=f"talk-{i}")

    @Impetus.process
    def collect(self, ready, errors):
        pass


def test_output_is_shown_prefixed_and_kept_in_task_files(local_stack, tmp_path, monkeypatch):
    monkeypatch.delenv("IMPETUS_SHOW_OUTPUT", raising=False)
    shown = io.StringIO()
    app = Talker(taskdir=str(tmp_path), keep=True)
    app.run(progress=Progress(shown))
    lines = shown.getvalue().splitlines()
    for i in range(3):
        assert f"[talk-{i}] hello from {i}" in lines
        assert f"[talk-{i} stderr] warning {i}" in lines
        assert f"[talk-{i} log] WARNING talker: logged {i}" in lines
    (job,) = [j for j in taskfiles.read(tmp_path / app.id / "collect.ok") if j["id"] == "talk-1"]
    assert job["output"]["stdout"] == "hello from 1\n"

    cli = subprocess.run(
        [sys.executable, "-m", "impetus.cli", "stream", "delete", app.id],
        env=local_stack["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (cli.returncode, cli.stdout) == (0, f"deleted stream {app.id}\n"), cli.stderr


def test_output_display_can_be_switched_off(local_stack, tmp_path, monkeypatch):
    shown = io.StringIO()
    Talker(taskdir=str(tmp_path)).run(progress=Progress(shown), output=False)
    assert "hello from" not in shown.getvalue()
    monkeypatch.setenv("IMPETUS_SHOW_OUTPUT", "0")
    shown = io.StringIO()
    Talker(taskdir=str(tmp_path / "again")).run(progress=Progress(shown))
    assert "hello from" not in shown.getvalue()
