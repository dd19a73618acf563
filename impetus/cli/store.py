"""``impetus store ID ls|get KEY|put KEY VALUE|del KEY``: a stream's key-value store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from impetus.cli.common import STREAM_ID_HELP, add_json_flag, print_list, stream_api, write
from impetus.core.exceptions import ImpetusError


def register(subparsers: Any) -> None:
    store = subparsers.add_parser("store", help="read and write a stream's key-value store")
    store.add_argument("id", help=STREAM_ID_HELP)
    actions = store.add_subparsers(dest="store_command", metavar="{ls,get,put,del}", required=True)

    ls = actions.add_parser("ls", help="list the keys")
    add_json_flag(ls)
    ls.set_defaults(func=cmd_ls)

    get = actions.add_parser("get", help="print a value (strings as is, others as JSON)")
    get.add_argument("key")
    add_json_flag(get)
    get.set_defaults(func=cmd_get)

    put = actions.add_parser("put", help="store a value")
    put.add_argument("key")
    put.add_argument("value", help="JSON, else taken as a string; '-' reads stdin")
    put.add_argument("--string", action="store_true", help="store VALUE as a string, never JSON")
    put.set_defaults(func=cmd_put)

    delete = actions.add_parser("del", help="delete a key")
    delete.add_argument("key")
    delete.set_defaults(func=cmd_del)


def parse_value(text: str, as_string: bool = False) -> Any:
    """'42' -> 42, '{"a": 1}' -> {"a": 1}, 'hello' -> 'hello' (not JSON: a string)."""
    if as_string:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:
        raise ImpetusError("the value is JSON nested too deeply") from None


def cmd_ls(args: argparse.Namespace) -> int:
    keys = sorted(stream_api(args.id).store_keys(args.id))
    if args.json:  # objects, as every listing (docs/cli.md, "JSON output")
        print_list([{"key": key} for key in keys])
    elif keys:
        write("\n".join(keys))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    value = stream_api(args.id).store_get(args.id, args.key)
    if args.json or not isinstance(value, str):
        print(json.dumps(value, ensure_ascii=False))
    else:
        write(value)
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.value == "-" else args.value
    value = parse_value(text, args.string)  # bad input fails before any request
    stream_api(args.id).store_put(args.id, args.key, value)
    return 0


def cmd_del(args: argparse.Namespace) -> int:
    stream_api(args.id).store_delete(args.id, args.key)
    return 0
