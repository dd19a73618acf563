"""``impetus nodes``: the live node agents, from their heartbeats."""

from __future__ import annotations

import argparse
from typing import Any

from impetus.cli.common import add_json_flag, age, api, print_list, table, write


def register(subparsers: Any) -> None:
    nodes = subparsers.add_parser("nodes", help="list live node agents and their workers")
    add_json_flag(nodes)
    nodes.set_defaults(func=cmd_nodes)


def rows(nodes: list[dict[str, Any]], now: float | None = None) -> list[list[Any]]:
    return [
        [
            n["node"],
            n.get("state"),
            f"{n.get('workers_busy') or 0}/{n.get('workers_total') or 0}",
            n.get("jobs_done"),
            len(n.get("streams") or []),
            age(n.get("heartbeat"), now),
            ",".join(f"{k}:{v}" for k, v in sorted((n.get("properties") or {}).items())) or None,
        ]
        for n in nodes
    ]


HEADERS = ["NODE", "STATE", "BUSY/WORKERS", "JOBS", "STREAMS", "BEAT", "FILTER"]


def cmd_nodes(args: argparse.Namespace) -> int:
    nodes = api().list_nodes()
    if args.json:
        print_list(nodes)
    elif not nodes:
        write("no live nodes")
    else:
        write(table(HEADERS, rows(nodes)))
    return 0
