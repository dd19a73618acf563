"""The dashboard's HTTP server: the static page, its JSON snapshot, job records.

Bound to 127.0.0.1 only. The authkey and the stream keys stay in this process: the page
gets snapshots and job records, never a key, and no key goes in a URL. Requests whose
Host header is not this server's own address are refused, so that a web page that
rebinds its DNS name to 127.0.0.1 cannot read the dashboard from the browser.
"""

from __future__ import annotations

import html
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from impetus.core.exceptions import ApiError
from impetus.dashboard.gather import Gatherer

HOST = "127.0.0.1"
DEFAULT_PORT = 8787  # Dask's dashboard port: what its users type
SNAPSHOT_MAX_AGE = 1.0  # seconds a snapshot is served again (several tabs, one API load)
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
# Everything the page loads comes from this server (no CDN, nothing inline).
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"


def static_file(name: str) -> bytes:
    return resources.files("impetus.dashboard").joinpath("static", name).read_bytes()


class Snapshots:
    """The gatherer behind a lock, its last snapshot reused for ``SNAPSHOT_MAX_AGE``."""

    def __init__(self, gatherer: Gatherer) -> None:
        self.gatherer = gatherer
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, Any]] | None = None

    def current(self) -> dict[str, Any]:
        with self._lock:
            if self._last and time.monotonic() - self._last[0] < SNAPSHOT_MAX_AGE:
                return self._last[1]
            snapshot = self.gatherer.snapshot()
            self._last = (time.monotonic(), snapshot)
            return snapshot

    def job(self, stream_id: str, job_id: str) -> dict[str, Any]:
        with self._lock:
            return self.gatherer.job_record(stream_id, job_id)


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a poll every 2 s would fill the terminal

    def do_GET(self) -> None:
        if not self._host_allowed():
            self._json(HTTPStatus.FORBIDDEN, {"error": "forbidden", "message": "bad Host"})
            return
        path = urlsplit(self.path).path
        try:
            self._route(path)
        except ApiError as exc:
            status = exc.status if 400 <= exc.status < 500 else HTTPStatus.BAD_GATEWAY
            self._json(status, {"error": exc.code, "message": exc.message or str(exc)})

    def _route(self, path: str) -> None:
        if path in STATIC:
            name, kind = STATIC[path]
            self._send(HTTPStatus.OK, static_file(name), kind)
        elif path == "/api/snapshot":
            self._json(HTTPStatus.OK, self.server.snapshots.current())
        elif path.startswith(("/job/", "/api/job/")):
            self._job(path)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": path})

    def _job(self, path: str) -> None:
        parts = path.split("/")[1:]
        raw = parts[1:] if parts[0] == "job" else parts[2:]
        if len(raw) != 2 or not all(raw):
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": path})
            return
        stream_id, job_id = (unquote(p) for p in raw)
        record = self.server.snapshots.job(stream_id, job_id)
        if parts[0] == "api":
            self._json(HTTPStatus.OK, record)
        else:
            self._send(HTTPStatus.OK, job_page(stream_id, job_id, record).encode(), STATIC["/"][1])

    def _host_allowed(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host") in {f"{HOST}:{port}", f"localhost:{port}"}

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value, default=str).encode()
        self._send(status, body, "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)


def job_page(stream_id: str, job_id: str, record: dict[str, Any]) -> str:
    """A job's record as a page: the JSON ``impetus job --json`` prints, escaped."""
    text = html.escape(json.dumps(record, indent=2, sort_keys=True, default=str))
    title = html.escape(f"job {job_id} of {stream_id}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><link rel='stylesheet' href='/static/style.css'></head>"
        f"<body><p><a href='/'>&larr; dashboard</a></p><h1>{title}</h1>"
        f"<pre id='record'>{text}</pre></body></html>"
    )


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, gatherer: Gatherer, port: int = DEFAULT_PORT) -> None:
        super().__init__((HOST, port), Handler)
        self.snapshots = Snapshots(gatherer)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def start(self) -> DashboardServer:
        """Serve on a background thread (tests); ``serve_forever`` serves in this one."""
        threading.Thread(target=self.serve_forever, name="dashboard", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
