"""``impetus-node start|stop|restart|foreground``: the node agent's command line.

Keeps the original daemon's shape: ``start`` detaches and writes a pidfile in
``--piddir`` (logs in ``--logdir``), ``stop`` sends SIGTERM to that pid and waits for
the drain, ``foreground`` runs attached (logs to stderr unless ``--logdir``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import NoReturn

from impetus.core.exceptions import ImpetusError
from node_agent import daemon
from node_agent.config import NodeSettings, default_node_dir, parse_names, parse_properties

PROG = "impetus-node"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
STOP_MARGIN = 15.0  # seconds `stop` waits beyond the drain grace


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Impetus node agent: runs the jobs of streams.")
    parser.add_argument("command", choices=["start", "stop", "restart", "foreground"])
    parser.add_argument("--mpps", type=int, help="max worker processes per stream (default 2)")
    parser.add_argument("--properties", help="serve only streams with these properties: k:v,...")
    parser.add_argument("--piddir", type=Path, help=f"pidfile dir (default {default_node_dir()})")
    parser.add_argument("--logdir", type=Path, help="log directory (start: default the piddir)")
    parser.add_argument("--node-id", help="node id (default <hostname>-<pid>)")
    parser.add_argument("--grace", type=float, help="seconds running jobs get on stop (default 30)")
    parser.add_argument("--poll-interval", type=float, help="seconds between stream listings")
    parser.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats")
    parser.add_argument(
        "--idle-heartbeat-interval",
        type=float,
        help="seconds between heartbeats while holding no job (default 55)",
    )
    parser.add_argument("--lease", type=float, help="default job lease in seconds")
    parser.add_argument("--worker-user", help="OS user workers run as (needs root)")
    parser.add_argument(
        "--worker-env", help="comma-separated variables workers get (never credentials)"
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> NodeSettings:
    return NodeSettings.from_env(
        node_id=args.node_id,
        mpps=args.mpps,
        properties=parse_properties(args.properties) if args.properties is not None else None,
        poll_interval=args.poll_interval,
        heartbeat_interval=args.heartbeat_interval,
        idle_heartbeat_interval=args.idle_heartbeat_interval,
        lease=args.lease,
        grace=args.grace,
        logdir=args.logdir,
        piddir=args.piddir,
        worker_user=args.worker_user,
        worker_env=parse_names(args.worker_env) if args.worker_env is not None else None,
    )


def setup_logging(logdir: Path | None, level: str) -> None:
    if logdir is not None:
        logdir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(logdir / "impetus-node.log")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_agent(settings: NodeSettings) -> int:
    """Run the agent in this process until SIGTERM/SIGINT; then drain and return 0."""
    from node_agent.agent import Agent  # boto3 import only where it is needed

    agent = Agent(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.request_stop())
    return agent.run()


def foreground(settings: NodeSettings, level: str) -> int:
    setup_logging(settings.logdir, level)
    return run_agent(settings)


def start(settings: NodeSettings, level: str) -> int:
    pidfile = daemon.pidfile_path(settings.piddir)
    pid = daemon.running_pid(pidfile)
    if pid is not None:
        return _fail(f"already running (pid {pid}, {pidfile})")
    settings = settings.with_overrides(logdir=settings.logdir or settings.piddir)
    if not daemon.daemonize(pidfile):
        pid = daemon.running_pid(pidfile)
        if pid is None:
            return _fail(f"did not start; see {settings.logdir}/impetus-node.log")
        print(f"{PROG}: started (pid {pid})")
        return 0
    try:
        setup_logging(settings.logdir, level)
        code = run_agent(settings)
    except Exception:
        logging.getLogger(__name__).exception("node agent crashed")
        code = 1
    finally:
        daemon.remove_pidfile(pidfile)
    sys.exit(code)


def stop(settings: NodeSettings) -> int:
    pidfile = daemon.pidfile_path(settings.piddir)
    try:
        pid = daemon.stop(pidfile, settings.grace + STOP_MARGIN)
    except TimeoutError as exc:
        return _fail(str(exc))
    if pid is None:
        return _fail(f"not running (no live pid in {pidfile})")
    print(f"{PROG}: stopped (pid {pid})")
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.command == "foreground":
            return foreground(settings, args.log_level)
        if args.command == "start":
            return start(settings, args.log_level)
        if args.command == "stop":
            return stop(settings)
        stop(settings)  # restart: "not running" is fine
        return start(settings, args.log_level)
    except ImpetusError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
