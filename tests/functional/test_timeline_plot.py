"""A run's timeline on moto in-process behind the local API server: the data gathered
through the API (rows = the nodes and worker slots that ran jobs), the PNG drawn by
``impetus plot`` and by the Python call."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest
from conftest_api import AUTHKEY
from test_result_pages import recorded  # noqa: F401  (the fixture)

from impetus import timeline
from impetus.cli.main import main
from impetus.core import codec
from impetus.core.jobs import ERROR, READY, Outcome, system_error
from impetus.forks import ForkSender, FunctionTable
from impetus.ledger import STARTUP, JobLedger
from impetus.session import StreamSession
from impetus.timeline import Row

pytest_plugins = ["conftest_api"]

# (node, jobs it claims at once, worker slot of each of its jobs); job 3 raises
PLAN = [("node-a", 2, [0, 1]), ("node-b", 2, [0, 0]), ("node-a", 1, [1])]
FAILING = "j3"


def double(x: int) -> int:
    return 2 * x


def _run(queue: Any, stream_id: str) -> dict[str, dict[str, Any]]:
    """Claim and complete the jobs as PLAN's nodes would; returns each job's stamps."""
    stamps = {}
    for node, count, slots in PLAN:
        claim = queue.claim(stream_id, node, max_jobs=count, lease=60)
        now = time.time()
        outcomes = {}
        for job, slot in zip(claim.jobs, slots, strict=True):
            out = Outcome(READY, result=codec.dumps(0), started=now, finished=now + 0.001)
            if job.id == FAILING:
                out = Outcome(ERROR, error=system_error("Boom", "x"), started=now, finished=now)
            out.worker = slot
            outcomes[job.id] = out
            stamps[job.id] = {"node": node, "worker": slot, "claimed": claim.claimed}
        queue.complete(claim, outcomes)
    return stamps


@pytest.fixture
def ran(recorded):  # noqa: F811
    session = StreamSession.open(recorded["url"], AUTHKEY, "s1", {"name": "demo-run"})
    sender = ForkSender(session, FunctionTable(), JobLedger(("s1",)), lambda cb: ("s1", STARTUP))
    for i in range(6):  # j5 is never claimed: no row
        sender.fork(double, codec.dumps(i), job_id=f"j{i}")
    sender.flush()
    stamps = _run(recorded["queue"], "s1")
    assert session.api.ack("s1", ["j0", "j1"]) == 2  # acked: the tombstone keeps the times
    return {"session": session, "stamps": stamps, "url": recorded["url"]}


def test_the_gathered_rows_are_the_nodes_and_workers_that_ran_jobs(ran):
    data = timeline.gather(ran["session"].api, "s1")
    assert data.title == "demo-run"
    assert data.rows == [Row("node-a", 0), Row("node-a", 1), Row("node-b", 0)]
    bars = {b.job: b for b in data.bars}
    assert sorted(bars) == ["j0", "j1", "j2", "j3", "j4"] and data.unplaced == 1
    for job_id, want in ran["stamps"].items():
        bar = bars[job_id]
        assert bar.row == Row(want["node"], want["worker"])
        assert bar.claimed == pytest.approx(want["claimed"] - data.origin)
        assert 0 <= bar.forked <= bar.claimed <= bar.started <= bar.finished
    assert [b.job for b in data.bars if b.error] == [FAILING] and data.errors == 1
    assert bars["j0"].acked >= bars["j0"].finished and bars["j2"].acked is None


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_impetus_plot_writes_a_png_with_a_row_per_worker(ran, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IMPETUS_API_URL", ran["url"])
    monkeypatch.setenv("IMPETUS_AUTHKEY", AUTHKEY)
    out = tmp_path / "run.png"
    assert main(["plot", "s1", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: 5 jobs on 3 workers, 1 errors"
    # 10 x (2.2 + 0.35 per row) inches at 100 dpi; 3 rows
    assert _png_size(out) == (1000, 325)
    assert 15_000 < out.stat().st_size < 500_000  # bars, labels and a legend: not blank


def test_the_python_call_draws_the_same_plot(ran, tmp_path):
    path = timeline.plot(ran["session"].api, "s1", tmp_path / "py.png")
    assert path == tmp_path / "py.png" and _png_size(path) == (1000, 325)
