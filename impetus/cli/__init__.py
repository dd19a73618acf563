"""The ``impetus`` command line (entry point :func:`main`); one module per command group."""

from impetus.cli.main import main

__all__ = ["main"]
