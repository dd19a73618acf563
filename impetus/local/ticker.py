"""The local stack's DFS ticker: runs one DFS tick (what the DFS Lambda's handler runs
per call without a Lambda context) every ``interval`` seconds (moto runs no Lambda and
fires no EventBridge schedule).

The tick runs in this process with the server-side environment (the moto endpoint,
IMPETUS_NODE_GROUPS, the shortened local idle thresholds) and its own clients, made
from the DFS identity's session: the supervisor's environment is the API's.
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


def dfs_tick(session: Any) -> Callable[[dict[str, Any], Any], Any]:
    """A handler-shaped function: one DFS tick with clients from ``session``."""
    from impetus.core.aws import RETRY_CONFIG
    from impetus.scaler import tick
    from impetus.scaler.config import DfsSettings

    settings = DfsSettings.from_env()

    def client(service: str) -> Any:
        aws = settings.aws
        return session.client(
            service, region_name=aws.region, endpoint_url=aws.endpoint_url, config=RETRY_CONFIG
        )

    clients = tick.Clients(
        ddb=client("dynamodb"), asg=client("autoscaling"), cloudwatch=client("cloudwatch")
    )
    return lambda event, context: tick.run(settings, clients).to_json()


class Ticker:
    def __init__(
        self,
        handler: str | Callable[[dict[str, Any], Any], Any] = DEFAULT_HANDLER,
        interval: float = INTERVAL,
    ) -> None:
        self.handler = load_handler(handler) if isinstance(handler, str) else handler
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
