"""``impetus local up|down|status``: start, stop and inspect the supervisor from outside.

``up`` starts the supervisor (impetus.local.stack) detached in its own session and
returns once it has written ``local.json``; ``down`` signals it and waits until it and
every process group it ran are gone.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from impetus.core.exceptions import ImpetusError
from impetus.local import state
from impetus.local.stack import STARTUP_TIMEOUT, StackOptions

UP_TIMEOUT = STARTUP_TIMEOUT * 2 + 10


class LocalStackError(ImpetusError):
    """The local stack could not be started or stopped."""


@contextmanager
def exclusive() -> Iterator[None]:
    """One ``up``/``down`` at a time per home."""
    with open(state.ensure_state_dir() / "control.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def running_settings() -> dict[str, Any]:
    """local.json of a live stack, or {} (a stale file from a killed stack counts as none)."""
    settings = state.read_json(state.settings_path())
    return settings if state.pid_alive(settings.get("supervisor_pid")) else {}


def _supervisor_command(options: StackOptions) -> list[str]:
    nodes = [] if options.nodes is None else ["--nodes", str(options.nodes)]
    return [
        sys.executable, "-m", "impetus.local.stack", *nodes,
        "--max-nodes", str(options.max_nodes),
        "--idle-seconds", str(options.idle_seconds),
        "--mpps", str(options.mpps),
        "--api-port", str(options.api_port),
        "--node-command", options.node_command,
        "--handler", options.handler,
        "--node-grace", str(options.node_grace),
    ]  # fmt: skip


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    log_path = state.state_dir() / "supervisor.log"
    while time.monotonic() < deadline:
        settings = state.read_json(state.settings_path())
        if settings.get("supervisor_pid") == proc.pid:
            return settings
        if proc.poll() is not None:
            raise LocalStackError(f"local stack failed to start; see {log_path}")
        time.sleep(0.05)
    _stop_supervisor(proc.pid, timeout=15)
    raise LocalStackError(f"local stack not ready after {timeout:.0f}s; see {log_path}")


def differences(given: dict[str, Any], running: dict[str, Any]) -> list[str]:
    """The options given to ``up`` that the running stack was not started with, as
    ``--nodes 2 (running: 1)``; ``given`` holds only the options on the command line.
    A stack that recorded no options (started by an older version) differs in none."""
    recorded = running.get("options")
    if not isinstance(recorded, dict):
        return []
    said = []
    for name, value in sorted(given.items()):
        if name == "api_port" and value == 0:  # 0: any free port, whichever it got
            continue
        if name in recorded and recorded[name] != value:
            flag = "--" + name.replace("_", "-")
            shown = "DFS autoscaling" if recorded[name] is None else recorded[name]
            said.append(f"{flag} {value} (running: {shown})")
    return said


def check_can_start() -> dict[str, Any]:
    """The running stack's settings, {} if none runs; raises if one is half up or down."""
    current = running_settings()
    if current:
        return current
    pid = state.read_pid()
    if state.pid_alive(pid):
        raise LocalStackError(
            f"a local stack supervisor (pid {pid}) is starting or stopping; "
            "retry, or run `impetus local down`"
        )
    _clear_stale_files()
    return {}


def up(options: StackOptions, timeout: float = UP_TIMEOUT) -> dict[str, Any]:
    """Start a stack in the background unless one runs.

    Returns its client settings plus ``already_up`` (True when it was running before).
    """
    with exclusive():
        current = check_can_start()
        if current:
            return {**current, "already_up": True}
        logdir = state.ensure_state_dir()
        with open(logdir / "supervisor.log", "ab") as out:
            proc = subprocess.Popen(
                _supervisor_command(options),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        return {**_wait_ready(proc, timeout), "already_up": False}


def _clear_stale_files() -> None:
    _sweep(_recorded_pgids())
    for path in (state.settings_path(), state.pid_file(), state.processes_file()):
        state.remove(path)


def _recorded_pgids() -> set[int]:
    procs = state.read_json(state.processes_file())
    pgids = {procs.get("supervisor", {}).get("pgid")}
    pgids.add((procs.get("moto") or {}).get("pgid"))
    pgids.update(n.get("pgid") for n in procs.get("nodes", []))
    pgids.update(procs.get("node_pgids", []))
    return {p for p in pgids if isinstance(p, int) and p > 1}


def _sweep(pgids: set[int]) -> None:
    """SIGKILL whatever still lives in these process groups, and wait until it is gone."""
    pgids.discard(os.getpgid(0))  # never our own group
    if not pgids or not state.group_members(pgids):
        return
    state.kill_groups(pgids, signal.SIGKILL)
    if not state.wait_until(lambda: not state.group_members(pgids), 10):
        raise LocalStackError(f"processes survive in groups {sorted(pgids)}")


def _stop_supervisor(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not state.wait_until(lambda: not state.pid_alive(pid), timeout):
        state.kill_groups({pid}, signal.SIGKILL)
        state.wait_until(lambda: not state.pid_alive(pid), 5)


def down(timeout: float | None = None) -> bool:
    """Stop the stack; True if one was running. Leaves no process of it behind.

    ``timeout`` (default: the nodes' drain grace plus 30 s) bounds the graceful stop;
    after it the supervisor's group is killed.
    """
    with exclusive():
        procs = state.read_json(state.processes_file())
        if timeout is None:
            timeout = float(procs.get("node_grace", 10.0)) + 30.0
        pgids = _recorded_pgids()
        pid = state.read_pid() or state.read_json(state.settings_path()).get("supervisor_pid")
        was_running = state.pid_alive(pid)
        if was_running:
            pgids.add(pid)
            _stop_supervisor(pid, timeout)
        _clear_stale_files()
        _sweep(pgids)
        return was_running


def status() -> dict[str, Any] | None:
    """What runs, without the authkey; None when no stack is up."""
    settings = running_settings()
    if not settings:
        return None
    procs = state.read_json(state.processes_file())
    nodes = [{**n, "alive": state.pid_alive(n.get("pid"))} for n in procs.get("nodes", [])]
    moto = procs.get("moto") or {}
    return {
        "up": True,
        "home": str(state.settings_path().parent),
        "api_url": settings["api_url"],
        "endpoint_url": settings["endpoint_url"],
        "region": settings["region"],
        "table_prefix": settings["table_prefix"],
        "bucket": settings.get("bucket"),
        "supervisor_pid": settings["supervisor_pid"],
        "moto_pid": moto.get("pid"),
        "moto_alive": state.pid_alive(moto.get("pid")),
        "nodes": nodes,
        "nodes_alive": sum(1 for n in nodes if n["alive"]),
        "autoscaling": bool(settings.get("autoscaling")),
        "logs": str(state.state_dir()),
    }
