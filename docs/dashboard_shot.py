"""docs/dashboard.png: the dashboard of a run on a fresh local stack, as a user sees it.

``python -m docs.dashboard_shot [PATH]`` (``make screenshot``): starts a local stack with
no nodes under a temporary IMPETUS_HOME (DFS brings nodes up), runs a two-stage stream
of 80 short jobs of which one raises, serves ``impetus dashboard``, keeps polling it as
an open page would (its fleet chart is the dashboard's own samples), and once DFS has
decided and jobs are under way, saves a headless Chromium screenshot. Fails when the page
misses any of it. The stack is stopped whatever happens.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
JOBS = 80


def step(x):
    import time as _time

    _time.sleep(1.0 + (x % 5) * 0.3)
    print(f"step {x}")
    if x == 13:
        raise ValueError(f"sensor {x} returned no reading")
    return x * x


def _cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "impetus.cli", *args], env=env, check=True)


def _enqueue() -> str:
    from impetus.core import codec
    from impetus.session import StreamSession

    session = StreamSession.open(None, None, properties={"name": "nightly-etl", "keep": True})
    code = codec.dump_function(step)
    digest = codec.digest(code)
    specs = [
        {"id": f"job-{i:02d}", "name": "step", "code": digest, "args": codec.dumps(i),
         "stage": "load" if i < JOBS // 2 else "transform"}
        for i in range(JOBS)
    ]  # fmt: skip
    session.api.enqueue(
        session.id, specs, {digest: code}, codec.PYTHON_VERSION, codec.CLOUDPICKLE_VERSION
    )
    session.close()
    return session.id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _watch(url: str, timeout: float = 180) -> dict:
    """Poll the snapshot until DFS decided, an error shows and jobs are under way (some
    done, some still waiting)."""
    deadline, snap = time.time() + timeout, {}
    while time.time() < deadline:
        try:
            snap = json.loads(urlopen(url + "api/snapshot", timeout=10).read())
        except OSError:
            time.sleep(0.5)
            continue
        t = snap["totals"]
        if snap["dfs"]["decisions"] and t["errors"] and t["done"] >= JOBS * 0.4 and t["waiting"]:
            return snap
        time.sleep(2)
    raise SystemExit(f"the run did not get far enough in {timeout:g} s: {snap.get('totals')}")


def main(path: str = "docs/dashboard.png") -> int:
    home = tempfile.mkdtemp(prefix="impetus-shot-")
    env = dict(os.environ, IMPETUS_HOME=home)
    os.environ["IMPETUS_HOME"] = home
    _cli("local", "up", env=env)
    dashboard = None
    try:
        _enqueue()
        port = _free_port()
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "impetus.cli", "dashboard", "--port", str(port),
             "--no-browser"], env=env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/"
        _watch(url)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=6000",
                 "--window-size=1280,1500", f"--screenshot={Path(path).resolve()}", url],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        print(f"screenshot: {path}")
    finally:
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(timeout=10)
        _cli("local", "down", env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
