"""The local stack's supervisor: one process that runs everything and tears it all down.

It starts the serialised moto server as a child (IAM enforced; it writes the admin
identity's credentials file), provisions tables, secrets, bucket and one IAM user per
component in it with the admin's key, serves the API handler on a local HTTP server
(threads of this process, with the API's identity in os.environ), runs the DFS ticker
(its own clients, DFS's identity), starts the node agents (the node's identity), and
writes ``local.json`` once all of that is ready (impetus.local.credentials). SIGTERM (or
SIGINT) stops it all: node agents first (they drain against a live moto), then the
API, then moto.

``python -m impetus.local.stack`` runs it in the foreground; ``impetus local up`` starts
it detached (see impetus.local.control).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impetus.core.config import (
    ENV_BOOT_SECONDS,
    ENV_DFS_IDLE_SECONDS,
    ENV_DFS_MIN_BILLED,
    ENV_NODE_GROUPS,
    AwsSettings,
    impetus_home,
)
from impetus.core.grants import Component
from impetus.local import credentials, iam, state
from impetus.local.apiserver import DEFAULT_HANDLER, ApiServer
from impetus.local.fleet import FleetReconciler
from impetus.local.nodes import DEFAULT_NODE_COMMAND, NodeFleet
from impetus.local.provision import (
    client,
    local_settings,
    provision,
    provision_node_group,
    server_environment,
)
from impetus.local.ticker import Ticker, dfs_tick

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 30.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


LOCAL_BOOT_SECONDS = 2.0  # an agent process starts in about a second or two


@dataclass
class StackOptions:
    nodes: int | None = None  # None: DFS manages the fleet from 0; N: a fixed fleet of N
    mpps: int = 4
    node_command: str = DEFAULT_NODE_COMMAND
    api_port: int = 0
    handler: str = DEFAULT_HANDLER
    table_prefix: str = "impetus"
    node_grace: float = 10.0
    max_nodes: int = 4  # the local Auto Scaling group's MaxSize
    idle_seconds: float = 10.0  # shortened idle floor of the local DFS (30 s, half a boot, on AWS)

    @property
    def autoscaling(self) -> bool:
        return self.nodes is None


class StartupError(Exception):
    """The stack could not come up; the message says which part failed."""


def _read_port(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The first stdout line of the moto child is its port."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if not line.strip().isdigit():
        raise StartupError(f"moto server did not start (see {state.state_dir() / 'moto.log'})")
    return int(line)


def _probe(url: str, timeout: float) -> None:
    """Wait until the API server answers HTTP (any status: the handler may refuse us)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _NO_PROXY.open(f"{url}/openapi.json", timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise StartupError(f"API server at {url} does not answer: {exc}") from exc
            time.sleep(0.1)


class LocalStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.moto: subprocess.Popen[bytes] | None = None
        self.api: ApiServer | None = None
        self.fleet: NodeFleet | FleetReconciler | None = None
        self.ticker: Ticker | None = None
        self.node_groups: dict[str, str] = {}
        self.settings: AwsSettings | None = None
        self.admin: Any = None  # boto3 session of the admin identity
        self._stop = threading.Event()
        self._write_lock = threading.Lock()

    # --- start -------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Bring everything up; returns the client settings (also written to local.json)."""
        logdir = state.ensure_state_dir()
        state.pid_file().write_text(f"{os.getpid()}\n")
        credentials.remove_all()  # a crashed stack's keys are void: its moto is gone
        moto = self._start_moto(logdir)
        endpoint = f"http://127.0.0.1:{_read_port(moto, STARTUP_TIMEOUT)}"
        log.info("moto server at %s (pid %d)", endpoint, moto.pid)
        self.settings = local_settings(endpoint, self.options.table_prefix)
        self.admin = credentials.session(credentials.ADMIN, self.settings.region)
        resources = provision(self.settings, self.admin)
        if self.options.autoscaling:
            self.node_groups = provision_node_group(
                self.settings, self.options.max_nodes, self.admin
            )
        arns = iam.local_arns(self.settings, resources.secret_arns)
        iam.create_component_users(client("iam", self.settings, self.admin), arns)
        base = dict(os.environ)
        if self.options.autoscaling:
            base.update(self._dfs_environment())
        api_env = server_environment(self.settings, base, Component.API.value)
        os.environ.clear()  # the API handler runs in this process and reads os.environ
        os.environ.update(api_env)
        self.api = ApiServer(port=self.options.api_port, handler=self.options.handler).start()
        _probe(self.api.url, STARTUP_TIMEOUT)
        log.info("API server at %s", self.api.url)
        node_env = server_environment(self.settings, base, Component.NODE.value)
        self.fleet = self._make_fleet(node_env, logdir)
        self.fleet.start()
        if self.options.autoscaling:
            dfs = credentials.session(Component.DFS.value, self.settings.region)
            self.ticker = Ticker(dfs_tick(dfs)).start()
        client_settings = self._client_settings(resources.authkey)
        state.write_private_json(state.settings_path(), client_settings)
        return client_settings

    def _dfs_environment(self) -> dict[str, str]:
        return {
            ENV_NODE_GROUPS: json.dumps(self.node_groups),
            ENV_BOOT_SECONDS: f"{LOCAL_BOOT_SECONDS:g}",
            ENV_DFS_IDLE_SECONDS: f"{self.options.idle_seconds:g}",
            ENV_DFS_MIN_BILLED: "0",  # nothing is billed locally
        }

    def _make_fleet(self, env: dict[str, str], logdir: Path) -> NodeFleet | FleetReconciler:
        assert self.settings is not None
        common: dict[str, Any] = {
            "template": self.options.node_command,
            "grace": self.options.node_grace,
            "on_change": self._write_processes,
        }
        if self.options.autoscaling:
            asg = client("autoscaling", self.settings, self.admin)  # EC2's stand-in
            group = self.node_groups["default"]
            return FleetReconciler(asg, group, self.options.mpps, env, logdir, **common)
        return NodeFleet(self.options.nodes or 0, self.options.mpps, env, logdir, **common)

    def _start_moto(self, logdir: Path) -> subprocess.Popen[bytes]:
        with open(logdir / "moto.log", "ab") as err:
            self.moto = subprocess.Popen(
                [
                    *(sys.executable, "-m", "impetus.local.motoserver", "--port", "0"),
                    *("--admin-credentials", str(credentials.credentials_path(credentials.ADMIN))),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self._write_processes()
        return self.moto

    def _client_settings(self, authkey: str) -> dict[str, Any]:
        assert self.settings is not None and self.api is not None
        return {
            "api_url": self.api.url,
            "authkey": authkey,
            "endpoint_url": self.settings.endpoint_url,
            "region": self.settings.region,
            "table_prefix": self.settings.table_prefix,
            "bucket": self.settings.bucket,
            "authkey_secret": self.settings.authkey_secret,
            "signing_secret": self.settings.signing_secret,
            "autoscaling": self.options.autoscaling,
            "node_groups": self.node_groups,
            "max_nodes": self.options.max_nodes,
            "idle_seconds": self.options.idle_seconds,
            "supervisor_pid": os.getpid(),
            "started": time.time(),
            # what `local up` was given: a later `up` with other options says they differ
            "options": dataclasses.asdict(self.options),
        }

    def _write_processes(self) -> None:
        with self._write_lock:
            data = {
                "supervisor": {"pid": os.getpid(), "pgid": os.getpgid(0)},
                "moto": {"pid": self.moto.pid, "pgid": self.moto.pid} if self.moto else None,
                "api_url": self.api.url if self.api else None,
                "node_grace": self.options.node_grace,
                "nodes": self.fleet.describe() if self.fleet else [],
                # every group a node agent ever had: restarted agents may leave workers
                "node_pgids": sorted(self.fleet.pgids()) if self.fleet else [],
            }
            state.write_private_json(state.processes_file(), data)

    # --- run and stop ------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def wait(self) -> None:
        """Block until asked to stop, or until moto dies (its state is gone with it)."""
        while not self._stop.wait(1.0):
            if self.moto is not None and self.moto.poll() is not None:
                log.error("moto server exited (%s): stopping the stack", self.moto.returncode)
                return

    def stop(self) -> None:
        state.remove(state.settings_path())  # clients stop finding us first
        if self.ticker is not None:
            self.ticker.stop()  # no more scaling while the fleet stops
        if self.fleet is not None:
            self.fleet.stop()
        if self.api is not None:
            self.api.stop()
        if self.moto is not None:
            _terminate(self.moto, timeout=5)
        credentials.remove_all()
        state.remove(state.processes_file())
        state.remove(state.pid_file())
        log.info("local stack stopped")


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    state.kill_groups({proc.pid}, signal.SIGKILL)  # and anything it left in its group
    proc.wait()


def run(options: StackOptions, on_ready: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run a stack until SIGTERM/SIGINT. Returns the process exit code."""
    stack = LocalStack(options)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stack.request_stop)
    try:
        client = stack.start()
    except Exception as exc:
        log.error(
            "local stack failed to start: %s", exc, exc_info=not isinstance(exc, StartupError)
        )
        stack.stop()
        return 1
    log.info(
        "local stack up: API %s, %s, home %s",
        client["api_url"],
        "DFS manages the fleet" if options.autoscaling else f"{options.nodes} fixed node(s)",
        impetus_home(),
    )
    if on_ready is not None:
        on_ready(client)
    try:
        stack.wait()
    finally:
        stack.stop()
    return 0


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def parse_args(argv: list[str] | None) -> StackOptions:
    parser = argparse.ArgumentParser(prog="python -m impetus.local.stack")
    add_stack_arguments(parser)
    return options_from_args(parser.parse_args(argv))


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="pin a fixed fleet of N node agents (default: DFS manages the fleet from 0)",
    )
    parser.add_argument(
        "--max-nodes", type=int, default=4, help="most nodes DFS may run (default 4)"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="seconds a node idles before DFS removes it (default 10; 60 on AWS)",
    )
    parser.add_argument("--mpps", type=int, default=4, help="worker processes per stream per node")
    parser.add_argument("--api-port", type=int, default=0, help="API port (default: any free)")
    parser.add_argument(
        "--node-command",
        default=DEFAULT_NODE_COMMAND,
        help="node agent command template ({python} {mpps} {node_id} {logdir})",
    )
    parser.add_argument("--handler", default=DEFAULT_HANDLER, help="API handler (module.func)")
    parser.add_argument(
        "--node-grace", type=float, default=10.0, help="seconds a node agent gets to drain on stop"
    )


def options_from_args(args: argparse.Namespace) -> StackOptions:
    if (args.nodes is not None and args.nodes < 0) or args.mpps < 1:
        raise ValueError("--nodes must be >= 0 and --mpps >= 1")
    if args.max_nodes < 1 or args.idle_seconds < 0:
        raise ValueError("--max-nodes must be >= 1 and --idle-seconds >= 0")
    return StackOptions(
        nodes=args.nodes,
        max_nodes=args.max_nodes,
        idle_seconds=args.idle_seconds,
        mpps=args.mpps,
        node_command=args.node_command,
        api_port=args.api_port,
        handler=args.handler,
        node_grace=args.node_grace,
    )


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
