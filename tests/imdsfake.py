"""A fake EC2 instance metadata service (IMDSv2) for the Spot tests: a real HTTP server in
a thread, as the agent sees it on EC2 (node_agent/interruption.py).

``PUT /latest/api/token`` (with ``X-aws-ec2-metadata-token-ttl-seconds``) hands out a
token; every GET without a token it handed out gets 401. The Spot items answer 404 until
the test sets them (:meth:`FakeImds.notice`, :meth:`FakeImds.rebalance`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from node_agent.interruption import INSTANCE_ACTION_PATH, REBALANCE_PATH, TOKEN_PATH


def imds_time(epoch: float) -> str:
    """Epoch seconds as IMDS writes times: ``2017-09-18T08:22:00Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeImds:
    """Start with ``with FakeImds() as imds:``; ``imds.url`` is its base URL."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}
        self.tokens: set[str] = set()
        self.reads: list[tuple[str, int]] = []  # (path, status) of every GET
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeImds:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # --- what the test makes EC2 say ----------------------------------------------------
    def notice(self, seconds_ahead: float, action: str = "terminate") -> float:
        """An interruption notice for ``seconds_ahead`` from now (whole seconds, as EC2
        gives them); returns the stated time."""
        at = float(int(time.time() + seconds_ahead))
        self.items[INSTANCE_ACTION_PATH] = json.dumps({"action": action, "time": imds_time(at)})
        return at

    def rebalance(self) -> None:
        self.items[REBALANCE_PATH] = json.dumps({"noticeTime": imds_time(time.time())})

    def statuses(self, path: str) -> list[int]:
        with self._lock:
            return [status for p, status in self.reads if p == path]

    # --- the server ---------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
                if self.path != TOKEN_PATH or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                    self._answer(400)
                    return
                token = secrets.token_urlsafe(16)
                with fake._lock:
                    fake.tokens.add(token)
                self._answer(200, token)

            def do_GET(self) -> None:
                token = self.headers.get("X-aws-ec2-metadata-token", "")
                if token not in fake.tokens:
                    status, body = 401, ""
                elif self.path in fake.items:
                    status, body = 200, fake.items[self.path]
                else:
                    status, body = 404, ""
                with fake._lock:
                    fake.reads.append((self.path, status))
                self._answer(status, body)

        return Handler
