"""``impetus dashboard``: the live page (impetus/dashboard/) on 127.0.0.1."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from typing import Any

from impetus.cli.common import api
from impetus.core.exceptions import ImpetusError


class DashboardError(ImpetusError):
    """The dashboard could not start (one line, exit 1)."""


def register(subparsers: Any) -> None:
    from impetus.dashboard.server import DEFAULT_PORT

    parser = subparsers.add_parser(
        "dashboard",
        help="serve a live page of streams, errors, nodes and DFS on 127.0.0.1",
        description="A page that updates every 2 s: streams with progress per stage, "
        "throughput and ETA; errors with traceback and output; nodes with busy and idle "
        "workers; DFS's desired and in-service capacity with each decision's reason. "
        "The server holds the authkey; the page never sees it.",
    )
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.set_defaults(func=cmd_dashboard)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, not {text!r}")
    return int(text)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from impetus.dashboard.dfsread import DfsReader
    from impetus.dashboard.gather import Gatherer
    from impetus.dashboard.server import DashboardServer

    client = api()
    try:
        server = DashboardServer(Gatherer(client, DfsReader()), args.port)
    except OSError as exc:
        raise DashboardError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from exc
    print(f"impetus dashboard on {server.url} (API {client.url}); Ctrl-C stops it", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("", file=sys.stderr)
    finally:
        server.server_close()
    return 0
