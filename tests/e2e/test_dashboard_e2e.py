"""`impetus dashboard` on the local stack, loaded in a real headless Chromium.

A stream runs five jobs on the stack's nodes, one of which raises; the dashboard runs as
the command a user types; Chromium loads the page, lets its JavaScript poll and render
(--dump-dom after a virtual-time budget), and the rendered numbers must equal the API's.
docs/dashboard.png is made by docs/dashboard_shot.py (`make screenshot`).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from urllib.request import urlopen

import pytest
from conftest import impetus_cli

from impetus.api_client import ApiClient
from impetus.core import codec
from impetus.core.config import ClientSettings
from impetus.dashboard.gather import totals
from impetus.session import StreamSession

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
JOBS = 5
FAILING = 3

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason="chromium is not installed (make browser)"
)


def work(x):
    print(f"working on {x}")
    if x == FAILING:
        raise ValueError(f"bad input {x}")
    return x * x


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium(*args: str, budget_ms: int = 8000) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _text(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, f"#{element_id} not on the page"
    return html.unescape(match.group(1))


def _settled(api: ApiClient, stream_id: str, jobs: int = JOBS, timeout: float = 120) -> dict:
    """The stream once every job ended and its counters stopped moving."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        counts = api.get_stream(stream_id)["counts"]
        ended = int(counts["finished"]) + int(counts["acked"])
        if ended == jobs and counts == last:
            return counts
        last = counts
        time.sleep(1.0)
    raise AssertionError(f"jobs did not end: {last}")


def _enqueue(name: str, fn, n: int) -> StreamSession:
    session = StreamSession.open(None, None, properties={"name": name})
    code = codec.dump_function(fn)
    digest = codec.digest(code)
    specs = [
        {"id": f"job-{i}", "name": "work", "code": digest, "args": codec.dumps(i), "stage": "s1"}
        for i in range(n)
    ]
    session.api.enqueue(
        session.id, specs, {digest: code}, codec.PYTHON_VERSION, codec.CLOUDPICKLE_VERSION
    )
    return session


@pytest.fixture
def run(local_stack):
    """A named stream whose five jobs ran (one raised); results left uncollected."""
    session = _enqueue("dash-e2e", work, JOBS)
    try:
        _settled(session.api, session.id)
        yield session
    finally:
        session.delete()
        session.close()


@pytest.fixture
def dashboard(local_stack):
    yield from _serve(local_stack["env"])


def _serve(env: dict[str, str]):
    """`impetus dashboard` as a user starts it, on a free port; its URL once it answers."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "impetus.cli", "dashboard", "--port", str(port), "--no-browser"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urlopen(url, timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.time() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_page_shows_what_the_api_says(run, dashboard):
    api = ApiClient(ClientSettings.resolve())
    dom = _chromium("--dump-dom", dashboard)
    assert 'data-ready="1"' in dom, dom[-3000:]
    expected = [totals(s["counts"]) for s in api.list_streams()]
    assert int(_text(dom, "total-done")) == sum(t["done"] for t in expected) >= JOBS - 1
    assert int(_text(dom, "total-errors")) == sum(t["errors"] for t in expected) >= 1
    nodes = api.list_nodes()
    assert int(_text(dom, "node-count")) == len(nodes) == 2
    assert int(_text(dom, "workers-busy")) + int(_text(dom, "workers-idle")) == sum(
        n["workers_total"] for n in nodes
    )
    # the stream by its name, with its own numbers
    row = re.search(rf'<tr data-stream="{run.id}">(.*?)</tr>', dom, re.S)
    assert row and ">dash-e2e<" in row.group(1)
    assert re.search(r'class="n done-n">4<', row.group(1))
    assert re.search(r'class="n errors-n">1<', row.group(1))
    # the errored job: its traceback (the job's own line) and what it printed
    block = re.search(r'<details class="error"[^>]*data-job="job-3">(.*?)</details>', dom, re.S)
    assert block, "the errored job is not shown"
    shown = html.unescape(block.group(1))
    raising_line = work.__code__.co_firstlineno + 3  # the `raise` in work()
    assert "ValueError: bad input 3" in shown and f"line {raising_line}, in work" in shown
    assert "working on 3" in shown
    # its link resolves to the job's record
    href = re.search(r'<a class="job-link" href="([^"]+)">job-3</a>', dom).group(1)
    assert href == f"/job/{run.id}/job-3"
    record = html.unescape(_chromium("--dump-dom", dashboard.rstrip("/") + href, budget_ms=2000))
    assert '"status": "error"' in record and '"id": "job-3"' in record
    # nothing secret reached the page
    assert ClientSettings.resolve().authkey not in dom
    assert run.key not in dom


def sleepy(x):
    import time

    time.sleep(0.5)
    return x


@pytest.fixture
def dfs_stack(tmp_path, monkeypatch):
    """A stack of its own that starts with no nodes, so that DFS decides (the session's
    stack pins its fleet); this process's clients use it."""
    home = tmp_path / "dfs-home"
    env = dict(os.environ, IMPETUS_HOME=str(home))
    env.pop("IMPETUS_TABLE_PREFIX", None)
    up = impetus_cli("local", "up", env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    monkeypatch.setenv("IMPETUS_HOME", str(home))
    try:
        yield env
    finally:
        down = impetus_cli("local", "down", env=env)
        assert down.returncode == 0, down.stderr


def test_the_dfs_decisions_on_the_page_are_the_decision_logs(dfs_stack):
    session = _enqueue("dash-dfs", sleepy, 8)
    try:
        _settled(session.api, session.id, jobs=8)
        served = _serve(dfs_stack)
        url = next(served)
        try:
            time.sleep(5)  # the dashboard's own fleet samples: a few polls of the page
            dom = _chromium("--dump-dom", url)
        finally:
            served.close()
    finally:
        session.delete()
        session.close()
    log = impetus_cli("dfs", "log", "--json", "--limit", "50", env=dfs_stack)
    assert log.returncode == 0, log.stderr
    logged = {
        (e["decision"]["action"], e["decision"]["desired"], e["decision"]["reason"])
        for e in json.loads(log.stdout)  # one array of decisions (docs/cli.md, JSON output)
    }
    rows = re.findall(
        r'<tr class="decision-row"><td>[^<]*</td><td>default</td><td>([^<]*)</td>'
        r'<td class="n ">(\d+)→(\d+)</td><td class="n ">(\d+)</td><td>([^<]*)</td></tr>',
        dom,
    )
    assert rows, dom[-3000:]
    shown = {(a, int(desired), html.unescape(r)) for a, _, desired, _, r in rows}
    assert shown <= logged  # every decision shown is one the log holds, reason and all
    assert any(a == "scale-out" for a, _, _ in shown)  # the jobs brought nodes up
    assert 'id="dfs-error" class="none"></p>' in dom  # DFS was readable
    assert dom.count('class="decision"') >= len(rows)  # a chart dot per decision
    assert re.search(r'<path d="M[^"]+" class="in-service"', dom)
