"""A store outage of a few seconds, on the local stack: first requests hang (moto
paused), then every request is refused with 503 throttling (moto unavailable). Nothing
is lost, nothing runs twice into the task files, no node agent dies."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from conftest import impetus_cli

from impetus import Impetus, taskfiles

JOBS = 500


def _nap(x):
    import time

    time.sleep(0.01)
    return x


class Steady(Impetus):
    @Impetus.startup
    def start(self):
        for i in range(JOBS):
            self.fork(_nap, args=i)

    @Impetus.process
    def collect(self, ready, errors):
        self.results = getattr(self, "results", []) + [job["result"] for job in ready]
        self.errors = getattr(self, "errors", []) + errors


def _status(env):
    return json.loads(impetus_cli("local", "status", "--json", env=env).stdout)


def test_a_store_outage_loses_no_job_and_kills_no_agent(local_stack, tmp_path):
    before = _status(local_stack["env"])
    moto = before["moto_pid"]
    app = Steady(taskdir=str(tmp_path))
    run = threading.Thread(target=app.run, daemon=True)
    run.start()
    time.sleep(1.5)
    assert run.is_alive(), "the run ended before the outage: make it longer"
    os.kill(moto, signal.SIGUSR1)  # requests hang
    time.sleep(3)
    os.kill(moto, signal.SIGUSR2)
    time.sleep(0.5)
    os.kill(moto, signal.SIGRTMIN)  # requests refused: 503 throttling
    time.sleep(3)
    os.kill(moto, signal.SIGUSR2)
    run.join(240)

    assert not run.is_alive()
    assert app.errors == []
    assert sorted(app.results) == list(range(JOBS))
    written = taskfiles.read(tmp_path / app.id / "collect.ok")
    assert sorted(job["result"] for job in written) == list(range(JOBS))  # each once
    after = _status(local_stack["env"])
    assert [n["pid"] for n in after["nodes"]] == [n["pid"] for n in before["nodes"]]
    assert after["nodes_alive"] == before["nodes_alive"] and after["moto_alive"]
