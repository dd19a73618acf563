"""What the local moto server spends its time on: requests and seconds per operation.

Set ``IMPETUS_MOTO_STATS=<path>`` before ``impetus local up`` (or the moto server) and
the server writes ``{"<Operation> <table>": [requests, seconds], ...}`` to that file
every second (seconds inside moto, under its lock). ``bench/profile_local.py`` reads it
to show where a workload's requests go; off by default, it costs nothing then.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

ENV_MOTO_STATS = "IMPETUS_MOTO_STATS"
WRITE_EVERY = 1.0


def operation(environ: dict[str, Any]) -> str:
    """``<Operation> <table>`` for DynamoDB (the table's name after its prefix), else the
    HTTP method and the first path segment (S3 bucket, ...)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if not target:
        first = environ.get("PATH_INFO", "/").lstrip("/").split("/")[0]
        return f"{environ.get('REQUEST_METHOD', '?')} /{first}"
    op = target.rsplit(".", 1)[-1]
    body = environ["wsgi.input"]
    try:
        request = json.loads(body.getvalue() or b"{}")
    except (AttributeError, ValueError):
        return op
    tables = (
        [request["TableName"]] if "TableName" in request else list(request.get("RequestItems", {}))
    )
    return f"{op} {','.join(t.rsplit('-', 1)[-1] for t in tables)}".strip()


class RequestStats:
    """Thread-safe counters, written to ``path`` every ``WRITE_EVERY`` seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._totals: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> RequestStats | None:
        path = os.environ.get(ENV_MOTO_STATS)
        return cls(Path(path)) if path else None

    def record(self, environ: dict[str, Any], seconds: float) -> None:
        key = operation(environ)
        with self._lock:
            entry = self._totals[key]
            entry[0] += 1
            entry[1] += seconds

    def write(self) -> None:
        with self._lock:
            data = {k: [int(v[0]), round(v[1], 6)] for k, v in self._totals.items()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.path)  # readers never see half a file

    def start(self) -> None:
        def loop() -> None:
            stop = threading.Event()
            while not stop.wait(WRITE_EVERY):
                self.write()

        threading.Thread(target=loop, name="moto-stats", daemon=True).start()
