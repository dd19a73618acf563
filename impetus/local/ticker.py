"""The local stack's DFS ticker: calls the DFS Lambda's handler every ``interval``
seconds (moto runs no Lambda and fires no EventBridge schedule).

The handler runs in this process with the server-side environment (the moto endpoint,
IMPETUS_NODE_GROUPS, the shortened local idle thresholds). With no Lambda context it
runs exactly one tick per call.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_HANDLER = "lambdas.dfs.handler.handler"
INTERVAL = 1.5


def load_handler(spec: str) -> Callable[[dict[str, Any], Any], Any]:
    module, _, name = spec.rpartition(".")
    return getattr(importlib.import_module(module), name)


class Ticker:
    def __init__(self, handler: str = DEFAULT_HANDLER, interval: float = INTERVAL) -> None:
        self.handler = load_handler(handler)
        self.interval = interval
        self.ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Ticker:
        self._thread = threading.Thread(target=self._run, name="dfs-ticker", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.handler({"source": "impetus.local", "detail-type": "tick"}, None)
                self.ticks += 1
            except Exception:
                log.exception("DFS tick failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
