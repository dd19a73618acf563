"""The local stack's node agents: child processes, restarted with backoff when they die.

Each agent runs in its own process group so that stopping it can sweep the workers it
spawned, and so that a drain (SIGTERM to the agent alone) does not hit its workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from impetus.local.state import group_members, kill_groups, wait_until

log = logging.getLogger(__name__)

DEFAULT_NODE_COMMAND = (
    "{python} -m node_agent.cli foreground --mpps {mpps} --node-id {node_id} --logdir {logdir}"
)
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # a run this long resets the backoff


def node_command(template: str, node_id: str, mpps: int, logdir: Path) -> list[str]:
    """Split the template first, then fill each word: paths with spaces stay one word."""
    values = {"python": sys.executable, "mpps": mpps, "node_id": node_id, "logdir": logdir}
    return [word.format(**values) for word in shlex.split(template)]


@dataclass
class NodeProcess:
    node_id: str
    command: list[str]
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0
    history: list[int] = field(default_factory=list)  # every pgid it ever had

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self.started = time.monotonic()
        self.restart_at = None
        self.history.append(self.proc.pid)
        log.info("node %s started (pid %d)", self.node_id, self.proc.pid)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def describe(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "pid": self.pid,
            "pgid": self.pid,
            "alive": self.alive(),
            "restarts": self.restarts,
            "log": str(self.log_path),
        }


def stop_agents(nodes: list[NodeProcess], grace: float) -> None:
    """SIGTERM the live agents (they drain), SIGKILL every process group any of them ever
    had after ``grace`` seconds (workers included), and reap them."""
    running = [n for n in nodes if n.alive()]
    for node in running:
        log.info("stopping node %s (pid %s)", node.node_id, node.pid)
        send_signal(node.pid, signal.SIGTERM)
    wait_until(lambda: not any(n.alive() for n in running), grace)
    pgids = {pgid for n in nodes for pgid in n.history}
    kill_groups(pgids, signal.SIGKILL)
    wait_until(lambda: not group_members(pgids), 5)
    for node in nodes:
        if node.proc is not None:
            node.proc.wait()


def send_signal(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class NodeFleet:
    """Start, watch and stop the node agents."""

    def __init__(
        self,
        count: int,
        mpps: int,
        env: dict[str, str],
        logdir: Path,
        template: str = DEFAULT_NODE_COMMAND,
        grace: float = 10.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.grace = grace
        self.nodes = [
            NodeProcess(
                node_id=f"local-{i}",
                command=node_command(template, f"local-{i}", mpps, logdir),
                log_path=logdir / f"node-local-{i}.log",
                env=env,
            )
            for i in range(count)
        ]
        self._on_change = on_change
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self._changed()
        self._thread = threading.Thread(target=self._watch, name="node-watch", daemon=True)
        self._thread.start()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for node in self.nodes:
                self._check(node)

    def _check(self, node: NodeProcess) -> None:
        now = time.monotonic()
        if node.restart_at is not None:
            if now >= node.restart_at and not self._stopping.is_set():
                node.restarts += 1
                node.start()
                self._changed()
            return
        if node.proc is None or node.proc.poll() is None:
            return
        # Died on its own: sweep its workers, then restart after a growing pause.
        kill_groups({node.proc.pid}, signal.SIGKILL)
        node.failures = 0 if now - node.started > STABLE_AFTER else node.failures + 1
        delay = min(MAX_BACKOFF, 0.5 * 2**node.failures)
        node.restart_at = now + delay
        log.warning(
            "node %s exited with %s; restart in %.1fs", node.node_id, node.proc.returncode, delay
        )
        self._changed()

    def stop(self) -> None:
        """SIGTERM every agent (they drain), SIGKILL their groups after the grace period."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        stop_agents(self.nodes, self.grace)
        self._changed()

    def describe(self) -> list[dict[str, object]]:
        return [n.describe() for n in self.nodes]

    def pgids(self) -> set[int]:
        return {pgid for n in self.nodes for pgid in n.history}
