"""Where the local stack keeps its state, and how to tell which of its processes live.

Files under ``impetus_home()``:

- ``local.json`` (0600): connection settings for clients, written once the stack is
  ready, removed when it stops. ``impetus.core.config`` reads it.
- ``local/supervisor.pid``: the supervisor's pid, for the whole supervisor lifetime.
- ``local/processes.json``: pids and process groups of the supervisor's children.
- ``local/*.log``: logs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from pathlib import Path
from typing import Any

from impetus.core.config import impetus_home, local_settings_path


def state_dir() -> Path:
    return impetus_home() / "local"


def ensure_state_dir() -> Path:
    home = impetus_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir()
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def pid_file() -> Path:
    return state_dir() / "supervisor.pid"


def processes_file() -> Path:
    return state_dir() / "processes.json"


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write JSON readable by the owner only (it may hold the authkey)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def read_pid() -> int | None:
    try:
        return int(pid_file().read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def settings_path() -> Path:
    return local_settings_path()


# --- processes ---------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], pgid is [2])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def pid_alive(pid: int | None) -> bool:
    """True for a running process; a zombie counts as gone (and is reaped if ours)."""
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def group_members(pgids: set[int]) -> list[int]:
    """Live (non-zombie) pids whose process group is in ``pgids``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) in pgids:
            members.append(int(entry.name))
    return members


def kill_groups(pgids: set[int], sig: int) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
