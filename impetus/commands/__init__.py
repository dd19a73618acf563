"""The ``impetus`` subcommands that inspect and manage a running system, one group per
module, each exposing ``register(subparsers)`` (see impetus/cli.py)."""
