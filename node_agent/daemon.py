"""Classic Unix daemon plumbing for ``impetus-node start|stop``: pidfile, double fork."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
from pathlib import Path

PIDFILE_NAME = "impetus-node.pid"


def pidfile_path(piddir: Path) -> Path:
    return Path(piddir) / PIDFILE_NAME


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, owned by someone else
    return True


def running_pid(pidfile: Path) -> int | None:
    """The pid in the pidfile if that process is alive; a stale pidfile is removed."""
    pid = read_pid(pidfile)
    if pid is None:
        return None
    if is_alive(pid):
        return pid
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    return None


def write_pidfile(pidfile: Path) -> None:
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = pidfile.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(pidfile)  # atomic: `stop` never reads half a pid


def remove_pidfile(pidfile: Path) -> None:
    """Remove the pidfile if it is still ours."""
    if read_pid(pidfile) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()


def daemonize(pidfile: Path, wait: float = 10.0) -> bool:
    """Detach (fork, setsid, fork). Returns True in the daemon, False in the caller.

    The caller returns once the daemon has written its pidfile (or after ``wait``).
    Must run before any thread is started.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child > 0:
        os.waitpid(child, 0)  # the intermediate child exits at once
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and running_pid(pidfile) is None:
            time.sleep(0.05)
        return False
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    write_pidfile(pidfile)
    return True


def stop(pidfile: Path, timeout: float) -> int | None:
    """SIGTERM the daemon and wait until it exits. Returns its pid, None if not running.

    Raises TimeoutError when it is still alive after ``timeout``.
    """
    pid = running_pid(pidfile)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid} still running after {timeout:.0f}s")
        time.sleep(0.1)
    return pid
