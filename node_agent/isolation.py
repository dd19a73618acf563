"""What keeps a job away from the node: the worker's environment, its OS user, and the
sweep of every process it started.

- **Environment.** A worker starts from an empty environment plus a short list of
  harmless variables (locale, PATH, proxies, ...) and any the operator names
  (``--worker-env``): no AWS credentials, no ``IMPETUS_*`` settings, nothing the agent
  was given. A job that wants AWS brings its own access (see docs/guarantees.md).
- **User.** With ``--worker-user`` (the AWS user-data sets ``impetus-job``), workers run
  as that unprivileged user, so a job cannot read the agent's files or its credentials;
  the user-data also blocks that user from the instance metadata service (the node
  role's credentials). The switch is ``setpriv`` (util-linux): it needs root or, as the
  systemd unit grants the unprivileged agent, the ambient capabilities CAP_SETUID and
  CAP_SETGID, and it clears every capability and sets no_new_privs before Python
  starts, so a worker holds none.
- **Processes.** A worker is a child subreaper, so whatever a job starts stays below it,
  even after a double fork or ``setsid``: after each job the worker kills what is left
  (:func:`kill_descendants`), and the agent kills the whole tree when a job overruns its
  ``time_limit`` or its lease is lost (:func:`kill_tree`). Workers stay in the agent's
  process group (whoever stops the agent's group stops them too) and die with the agent
  (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Never secrets, and what Python, locales and HTTP clients need to behave as usual.
PASSED_THROUGH = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TERM",
    "PYTHONHASHSEED",
    "PYTHONUNBUFFERED",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class WorkerIdentity:
    """Who a worker runs as and with what: handed to ``subprocess.Popen``."""

    env: dict[str, str]
    user: str | None = None  # None: the agent's own user
    gid: int | None = None  # the user's primary group
    cwd: str | None = None  # None: the agent's working directory
    python: str = sys.executable  # the interpreter workers run (the agent's by default)

    def command(self, program: list[str]) -> list[str]:
        """``program``, run as the worker user when there is one."""
        if not self.user:
            return program
        return [
            "setpriv",
            f"--reuid={self.user}",
            f"--regid={self.gid}",
            "--init-groups",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--no-new-privs",
            "--",
            *program,
        ]


def worker_environment(
    base: Mapping[str, str], extra: Iterable[str] = (), home: str | None = None
) -> dict[str, str]:
    """The variables a worker gets: the harmless ones and the operator's ``extra`` names."""
    names = set(PASSED_THROUGH) | set(extra)
    env = {name: base[name] for name in names if name in base}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if home:
        env["HOME"] = home
    return env


def identity(
    base: Mapping[str, str], user: str | None, extra: Iterable[str] = ()
) -> WorkerIdentity:
    """The identity of every worker of this agent (checked once, at start)."""
    if not user:
        return WorkerIdentity(worker_environment(base, extra, base.get("HOME")))
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise ValueError(f"worker user {user!r} does not exist") from exc
    home = entry.pw_dir if Path(entry.pw_dir).is_dir() else "/"
    env = worker_environment(base, extra, home)
    chosen = WorkerIdentity(env, user=user, gid=entry.pw_gid, cwd=home)
    _check_switch(chosen)
    return chosen


def _check_switch(chosen: WorkerIdentity) -> None:
    """Fail at start, not at the first job, when workers cannot become their user."""
    try:
        done = subprocess.run(
            chosen.command(["true"]), env=chosen.env, cwd=chosen.cwd, capture_output=True
        )
    except OSError as exc:
        raise ValueError(f"cannot run workers as {chosen.user!r}: {exc}") from exc
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
        raise ValueError(
            f"cannot run workers as {chosen.user!r} (needs root or CAP_SETUID/CAP_SETGID): {why[0]}"
        )


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to set
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def become_subreaper() -> None:
    """Orphans of this process's descendants re-parent to it (Linux), not to init."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent (the agent) dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before we asked
        os._exit(1)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's), from /proc."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found += [int(word) for word in text.split()]
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    found: list[int] = []
    frontier = children(pid)
    while frontier:
        found += frontier
        frontier = [child for parent in frontier for child in children(parent)]
    return found


def kill_descendants(pid: int | None = None) -> int:
    """SIGKILL every process below ``pid`` (default: this one) and reap this one's
    zombies; returns how many were killed."""
    pid = pid or os.getpid()
    victims = descendants(pid)
    for victim in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)
    if pid == os.getpid():
        reap()
    return len(victims)


def reap() -> None:
    """Collect every exited child of this process (a subreaper inherits orphans)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and every process below it. The tree is frozen top-down first
    (SIGSTOP: a stopped process cannot fork), so that nothing starts while it is
    walked and no orphan scatters to init before it is found."""
    tree: list[int] = []
    frontier = [pid]
    while frontier:
        for member in frontier:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member, signal.SIGSTOP)
        tree += frontier
        frontier = [child for member in frontier for child in children(member)]
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)
