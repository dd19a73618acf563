"""``impetus local up|down|status``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from impetus.local import control, stack


def register(subparsers: Any) -> None:
    local = subparsers.add_parser(
        "local", help="run Impetus on this machine (moto stands in for AWS)"
    )
    commands = local.add_subparsers(dest="local_command", metavar="{up,down,status}", required=True)

    up = commands.add_parser(
        "up",
        help="start the local stack (no-op when it is up with the same options)",
        description="Start the local stack. When one is up: exit 0 if the options given "
        "match it, else say which differ and exit 1 (`impetus local down` first).",
    )
    stack.add_stack_arguments(up)
    # Defaults to None, so that cmd_up knows which options were given (compared with a
    # running stack's); the real defaults are filled in from STACK_DEFAULTS.
    up.set_defaults(**dict.fromkeys(STACK_DEFAULTS, None))
    up.add_argument("--foreground", action="store_true", help="run in this terminal until Ctrl-C")
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop the local stack and every process it ran")
    down.set_defaults(func=cmd_down)

    status = commands.add_parser("status", help="show what runs; exit 1 when not up")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)


def _stack_defaults() -> dict[str, Any]:
    parser = argparse.ArgumentParser(add_help=False)
    stack.add_stack_arguments(parser)
    return vars(parser.parse_args([]))


STACK_DEFAULTS = _stack_defaults()


def cmd_up(args: argparse.Namespace) -> int:
    given = {k: getattr(args, k) for k in STACK_DEFAULTS if getattr(args, k) is not None}
    for name, default in STACK_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    try:
        options = stack.options_from_args(args)
    except ValueError as exc:
        raise control.LocalStackError(str(exc)) from exc
    if args.foreground:
        return _up_foreground(options, given)
    settings = control.up(options)
    if settings["already_up"]:
        return _already_up(settings, given)
    print(f"local stack up: {settings['api_url']}")
    print(fleet_line(settings))
    return 0


def _already_up(settings: dict[str, Any], given: dict[str, Any]) -> int:
    """Exit 0 when the running stack has the options given, else say which differ."""
    differ = control.differences(given, settings)
    if differ:
        print(
            f"impetus: error: a local stack is up ({settings['api_url']}) with other options: "
            f"{', '.join(differ)}; run `impetus local down` first",
            file=sys.stderr,
        )
        return 1
    print(f"local stack already up: {settings['api_url']}")
    print(fleet_line(settings))
    return 0


def fleet_line(settings: dict[str, Any]) -> str:
    if not settings.get("autoscaling"):
        return "  fleet: fixed (--nodes)"
    return (
        f"  fleet: DFS autoscaling, 0 to {settings.get('max_nodes')} nodes; idle nodes leave "
        f"after {settings.get('idle_seconds'):g}s (shortened for the local stack; 30s on AWS)"
    )


def _up_foreground(options: stack.StackOptions, given: dict[str, Any]) -> int:
    with control.exclusive():
        current = control.check_can_start()
    if current:
        return _already_up(current, given)
    stack.configure_logging()

    def ready(settings: dict[str, Any]) -> None:
        print(f"local stack up: {settings['api_url']} (Ctrl-C stops it)", flush=True)

    return stack.run(options, on_ready=ready)


def cmd_down(args: argparse.Namespace) -> int:
    if control.down():
        print("local stack stopped")
    else:
        print("no local stack running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = control.status()
    if args.json:
        print(json.dumps(info or {"up": False}, indent=2))
        return 0 if info else 1
    if info is None:
        print("local stack: down")
        return 1
    nodes = info["nodes"]
    print("local stack: up")
    print(f"  api:        {info['api_url']}")
    print(f"  supervisor: pid {info['supervisor_pid']}")
    moto_state = "alive" if info["moto_alive"] else "DEAD"
    print(f"  moto:       {info['endpoint_url']} (pid {info['moto_pid']}, {moto_state})")
    mode = "DFS autoscaling" if info.get("autoscaling") else "fixed"
    print(f"  nodes:      {info['nodes_alive']}/{len(nodes)} alive ({mode})")
    for node in nodes:
        alive = "alive" if node["alive"] else "down"
        print(f"    {node['node_id']}: pid {node['pid']} {alive}, restarts {node['restarts']}")
    print(f"  logs:       {info['logs']}")
    sys.stdout.flush()
    return 0
