"""A job's output: captured in the worker (bounded), shown by the client with its job id."""

from __future__ import annotations

import logging
import sys

from impetus.core import joboutput
from node_agent import capture
from tests.nodeharness import make_job, run_jobs


def test_stdout_stderr_and_logging_are_captured_and_restored():
    before = sys.stdout, sys.stderr
    with capture.capture() as captured:
        print("hello")
        print("oops", file=sys.stderr)
        logging.getLogger("job").warning("careful %d", 3)
        logging.getLogger("job").debug("not shown: below the default WARNING")
    assert (sys.stdout, sys.stderr) == before
    assert captured.output() == {
        "stdout": "hello\n",
        "stderr": "oops\n",
        "log": "WARNING job: careful 3\n",
    }
    assert not any(isinstance(h, capture._TailHandler) for h in logging.getLogger().handlers)


def test_nothing_written_is_none():
    with capture.capture() as captured:
        pass
    assert captured.output() is None


def test_only_the_last_bytes_are_kept():
    with capture.capture(limit=100) as captured:
        for i in range(1000):
            print(f"line {i}")
        sys.stderr.write("é" * 500)  # two bytes each: cut at a character boundary
    out = captured.output()
    assert out["stdout"].endswith("line 999\n") and len(out["stdout"].encode()) <= 100
    assert "line 0\n" not in out["stdout"]
    assert out["stderr"] == "é" * 50
    assert out["truncated"] == ["stdout", "stderr"]


def test_one_huge_write_keeps_memory_bounded():
    buffer = capture.TailBuffer(limit=10)
    buffer.write("x" * 1_000_000 + "END")
    assert sum(len(p) for p in buffer._parts) <= 20
    assert buffer.value().endswith("END") and buffer.truncated


def test_a_worker_process_returns_the_output_with_the_outcome():
    def chatty(n):
        print("working on", n)
        logging.getLogger("chatty").error("bad thing %s", n)
        return n

    outcomes = run_jobs([make_job(chatty, 7, job_id="a"), make_job(abs, -1, job_id="b")])
    assert outcomes["a"].output == {
        "stdout": "working on 7\n",
        "log": "ERROR chatty: bad thing 7\n",
    }
    assert outcomes["b"].output is None  # quiet jobs carry nothing


def test_client_lines_are_prefixed_with_the_job_id():
    output = {"stdout": "a\nb\n", "stderr": "warn\n", "log": "", "truncated": ["stderr"]}
    assert joboutput.lines("j1", output) == [
        "[j1] a",
        "[j1] b",
        "[j1 stderr] ... (earlier output cut: the last 64 KiB are kept)",
        "[j1 stderr] warn",
    ]
    assert joboutput.lines("j1", None) == []
