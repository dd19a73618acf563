"""End to end on the local stack: the real API handler, moto server, node agents, client."""

from __future__ import annotations

import base64
import inspect
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

from impetus import Impetus, taskfiles
from impetus.core import codec

ROOT = Path(__file__).resolve().parents[2]
JOB_FIELDS = {
    "id", "name", "args", "result", "status", "callback", "client", "created",
    "delay", "priority", "transport", "code",
}  # fmt: skip


def test_helloworld_example(local_stack, tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "helloworld.py")],
        cwd=tmp_path,
        env=local_stack["env"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    stream_id = re.search(r"^My Id: (\S+)$", run.stdout, re.M).group(1)
    assert "Total: 328350" in run.stdout
    assert "Errors: 0" in run.stdout
    assert "shutting down" in run.stdout

    assert not (tmp_path / "tasks").exists()  # nothing left in the working directory
    stream_dir = local_stack["home"] / "tasks" / stream_id  # $IMPETUS_HOME/tasks/<id>
    lines = (stream_dir / "stage1.ok").read_text().splitlines()
    assert len(lines) == 100
    first = json.loads(zlib.decompress(base64.b64decode(lines[0])))  # plain base64 + zlib
    assert set(first) >= JOB_FIELDS
    assert first["status"] == "ready" and first["client"] == stream_id
    assert first["callback"] == "stage1" and first["name"] == "pow"
    pow_fn = codec.loads(first["code"])
    assert pow_fn(first["args"]) == first["result"] == first["args"] ** 2
    jobs = taskfiles.read(stream_dir / "stage1.ok")
    assert sorted(j["args"] for j in jobs) == list(range(100))
    assert len({j["id"] for j in jobs}) == 100
    err = stream_dir / "stage1.err"
    assert not err.exists() or not err.read_text()


def _explode(x):
    if x == 3:
        raise ValueError(f"bad input {x}")  # the line the error record must point at
    return x


EXPLODE_LINE = inspect.getsourcelines(_explode)[1] + 2


class Failing(Impetus):
    @Impetus.startup
    def start(self):
        for i in range(5):
            self.fork(_explode, args=i)

    @Impetus.process
    def collect(self, ready, errors):
        self.seen = getattr(self, "seen", 0) + len(ready) + len(errors)

    @Impetus.shutdown
    def stop(self, ready, errors, progress):
        self.final = (ready, errors, progress)


def test_a_raising_job_lands_in_err_with_line_and_statement(local_stack, tmp_path):
    app = Failing(taskdir=str(tmp_path))
    app.run()
    errors = taskfiles.read(tmp_path / app.id / "collect.err")
    oks = taskfiles.read(tmp_path / app.id / "collect.ok")
    assert len(errors) == 1 and len(oks) == 4 and app.seen == 5
    (job,) = errors
    assert job["status"] == "error" and job["args"] == 3
    record = job["result"]
    assert record["error"] == "bad input 3" and record["type"] == "ValueError"
    assert record["linenumber"] == EXPLODE_LINE
    assert (
        record["statement"]
        == 'raise ValueError(f"bad input {x}")  # the line the error record must point at'
    )
    assert record["name"] == "_explode" and "Traceback" in record["traceback"]


class Closures(Impetus):
    @Impetus.startup
    def start(self):
        offset = 1000

        def add_offset(x):  # a closure over a local variable
            return helper(x) + offset

        def helper(x):  # a nested helper the closure calls
            return x * 2

        for i in range(3):
            self.fork(add_offset, args=i)
            self.fork(lambda x: ("lambda", x), args=i)

    @Impetus.process
    def gather(self, ready, errors):
        self.results = getattr(self, "results", []) + [j["result"] for j in ready]
        self.errors = getattr(self, "errors", []) + errors


def test_closures_and_lambdas_travel_by_value(local_stack, tmp_path):
    app = Closures(taskdir=str(tmp_path))
    app.run()
    assert app.errors == []
    numbers = sorted(r for r in app.results if isinstance(r, int))
    assert numbers == [1000, 1002, 1004]
    assert sorted(tuple(r) for r in app.results if not isinstance(r, int)) == [
        ("lambda", 0), ("lambda", 1), ("lambda", 2),
    ]  # fmt: skip


def _double(x):
    return 2 * x


def _label(x):
    return f"n={x}"


class Pipeline(Impetus):
    @Impetus.startup
    def start(self):
        for i in range(4):
            self.fork(_double, args=i)  # default callback: the first stage
        self.fork(_double, args=100, callback=self.last)  # explicit: skips a stage

    @Impetus.process
    def middle(self, ready, errors):
        for job in ready:
            self.fork(_label, args=job["result"])  # default callback: the next stage

    @Impetus.process
    def last(self, ready, errors):
        self.labels = getattr(self, "labels", []) + [j["result"] for j in ready]


def test_two_stages_with_default_and_explicit_callbacks(local_stack, tmp_path):
    app = Pipeline(taskdir=str(tmp_path))
    app.run()
    assert sorted(app.labels, key=str) == sorted(["n=0", "n=2", "n=4", "n=6", 200], key=str)
    assert len(taskfiles.read(tmp_path / app.id / "middle.ok")) == 4
    assert len(taskfiles.read(tmp_path / app.id / "last.ok")) == 5
