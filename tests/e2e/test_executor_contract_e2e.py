"""The Executor's futures contract on the local stack (real API, moto server, 2 nodes):
cancel, RUNNING, shutdown(cancel_futures), map(timeout), exit without shutdown, Ctrl-C."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from impetus import Executor
from impetus.api_client import ApiClient
from impetus.core.config import ClientSettings
from impetus.core.exceptions import ApiError

ROOT = Path(__file__).resolve().parents[2]


def hold(started: str, gate: str, limit: float = 60.0) -> str:
    """Occupy a worker: say so, then wait for the gate file."""
    Path(started).touch()
    end = time.monotonic() + limit
    while not Path(gate).exists() and time.monotonic() < end:
        time.sleep(0.05)
    return "held"


def mark(path: str) -> str:
    Path(path).touch()
    return "ran"


def wait_for(paths: list[Path], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < end, f"never appeared: {paths}"
        time.sleep(0.05)


def occupy(ex: Executor, tmp_path: Path, n: int = 2) -> list[cf.Future]:
    """Every worker of the stream (mpps=1 on 2 nodes) busy until tmp_path/gate exists."""
    futures = [
        ex.submit(hold, str(tmp_path / f"started-{i}"), str(tmp_path / "gate")) for i in range(n)
    ]
    wait_for([tmp_path / f"started-{i}" for i in range(n)])
    return futures


def test_a_cancelled_pending_call_never_runs_and_a_running_one_cannot_be(local_stack, tmp_path):
    with Executor(mpps=1) as ex:
        held = occupy(ex, tmp_path)
        marked = ex.submit(mark, str(tmp_path / "marker"))
        time.sleep(0.5)  # sent: the cancel goes to the queue, not the buffer
        assert marked.cancel() and marked.cancelled()
        assert not held[0].cancel() and held[0].running()
        (tmp_path / "gate").touch()
        assert [f.result(timeout=120) for f in held] == ["held", "held"]
        after = ex.submit(mark, str(tmp_path / "after"))
        assert after.result(timeout=120) == "ran"
    assert not (tmp_path / "marker").exists()


def test_shutdown_cancel_futures_cancels_the_queued_calls_only(local_stack, tmp_path):
    ex = Executor(mpps=1)
    held = occupy(ex, tmp_path)
    queued = [ex.submit(mark, str(tmp_path / f"marker-{i}")) for i in range(5)]
    time.sleep(0.5)
    # the held calls end a moment after the cancel: shutdown waits for them
    threading.Timer(1.0, (tmp_path / "gate").touch).start()
    ex.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    assert [f.result(timeout=1) for f in held] == ["held", "held"]
    assert not list(tmp_path.glob("marker-*"))


def test_map_timeout_cancels_the_rest_and_shutdown_is_prompt(local_stack, tmp_path):
    ex = Executor(mpps=1)
    occupy(ex, tmp_path)
    results = ex.map(mark, [str(tmp_path / f"m{i}") for i in range(6)], chunksize=1, timeout=1)
    with pytest.raises(cf.TimeoutError):
        next(results)
    (tmp_path / "gate").touch()
    began = time.monotonic()
    ex.shutdown(wait=True)
    assert time.monotonic() - began < 10  # the held jobs end; nothing else is waited for
    assert not list(tmp_path.glob("m*"))


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return script


def _run(script: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **kw,
    )  # fmt: skip


def test_the_interpreter_waits_for_pending_futures_without_shutdown(local_stack, tmp_path):
    script = _script(
        tmp_path,
        """
        from impetus import Executor
        ex = Executor()
        print(ex.id, flush=True)
        future = ex.submit(pow, 2, 10)
        future.add_done_callback(lambda f: print("result", f.result(), flush=True))
        """,
    )
    proc = _run(script)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    stream_id, result = out.split("\n")[:2]
    assert result == "result 1024"
    api = ApiClient(ClientSettings.resolve(None, None))
    with pytest.raises(ApiError) as info:
        api.get_stream(stream_id)
    assert info.value.status == 404  # shut down at exit: the stream is gone


def test_ctrl_c_cancels_pending_jobs_says_how_many_and_exits(local_stack, tmp_path):
    script = _script(
        tmp_path,
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_executor_contract_e2e import hold, mark
        from impetus import Executor
        with Executor(mpps=1) as ex:
            for i in range(2):
                ex.submit(hold, {str(tmp_path)!r} + f"/started-{{i}}", {str(tmp_path)!r} + "/gate")
            for i in range(5):
                ex.submit(mark, {str(tmp_path)!r} + f"/marker-{{i}}")
            print(ex.id, flush=True)
            time.sleep(300)
        """,
    )
    proc = _run(script)
    stream_id = proc.stdout.readline().strip()
    wait_for([tmp_path / "started-0", tmp_path / "started-1"])
    proc.send_signal(signal.SIGINT)
    began = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - began < 10
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert "cancelled 5 jobs; 2 were still running" in err
    (tmp_path / "gate").touch()
    time.sleep(2)
    assert not list(tmp_path.glob("marker-*"))
    api = ApiClient(ClientSettings.resolve(None, None))
    with pytest.raises(ApiError):
        api.get_stream(stream_id)
