"""A moto server whose request handling is serialised by one lock.

moto's conditional writes are not atomic when requests run concurrently (two racing
claims can both succeed), so every request runs under :class:`SerialApp`'s lock. The
same lock lets a test simulate an outage of the whole "AWS", two ways: *paused*,
requests hang until it is resumed (a network partition); *unavailable*, every request
is answered at once with 503 and a throttling error, which AWS SDKs retry with backoff.

Run ``python -m impetus.local.motoserver [--port N]``: enforces IAM (see
impetus.local.motoauth), writes the admin identity's credentials file (``--admin-
credentials PATH``, 0600) and prints the bound port on stdout once listening. ``--no-auth``
serves anyone (tests and benchmarks only). SIGUSR1 pauses, SIGRTMIN makes it
unavailable, SIGUSR2 ends either, SIGTERM stops.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, DechunkedInput, make_server

from impetus.local import credentials, motoauth, motospeed
from impetus.local.credentials import AccessKey
from impetus.local.requeststats import RequestStats

HOST = "127.0.0.1"
UNAVAILABLE_BODY = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
    b'"message":"simulated outage: the service is unavailable"}'
)


class SerialApp:
    """WSGI wrapper: one request at a time, and a pause switch that holds them all."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], stats: RequestStats | None = None
    ) -> None:
        self._app = app
        self.stats = stats  # per-operation requests and seconds, when profiling
        self._cond = threading.Condition()
        self._paused = False
        self._unavailable = False
        self.refused = 0  # requests answered 503 while unavailable

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._cond:
            while self._paused:
                self._cond.wait()
            if self._unavailable:
                self.refused += 1
                start_response(
                    "503 Service Unavailable",
                    [("Content-Type", "application/x-amz-json-1.0"), ("Retry-After", "1")],
                )
                return [UNAVAILABLE_BODY]
            started = time.perf_counter()
            result = self._app(environ, start_response)
            try:
                # Drain the body inside the lock: a lazy iterable would run moto code later.
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                if self.stats is not None:
                    self.stats.record(environ, time.perf_counter() - started)

    def pause(self) -> None:
        """Block new requests; returns once the request in flight (if any) has finished."""
        with self._cond:
            self._paused = True

    def make_unavailable(self) -> None:
        """Answer every request 503 (throttled) until :meth:`resume`."""
        with self._cond:
            self._unavailable = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._unavailable = False
            self._cond.notify_all()


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler with HTTP/1.1 keep-alive.

    werkzeug's development server closes every connection (and then waits 10 ms for
    stray input), so each AWS request paid a TCP connect and a new server thread: that,
    not moto's own work, dominated the local stack's request cost. Here the request body
    is read whole before the app runs, so the next request on the connection starts
    exactly after it, and every answer carries its Content-Length.
    """

    timeout = 120  # an idle keep-alive connection frees its thread after this
    # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold the body back ~40 ms on a kept-alive connection.
    disable_nagle_algorithm = True
    _DROP = frozenset({"content-length", "connection", "transfer-encoding"})

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        try:
            body = self._read_body(environ)
        except ValueError:
            self.close_connection = True
            self._respond("400 Bad Request", [], b"malformed request body framing")
            return
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            started[:] = [status, headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        try:
            chunks += self.server.app(environ, start_response)  # SerialApp: a drained list
        except Exception:
            logging.getLogger(__name__).exception("moto failed on %s %s", self.command, self.path)
            self.close_connection = True
            self._respond("500 Internal Server Error", [], b"")
            return
        self._respond(started[0], started[1], b"".join(chunks))

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's decoder
            return DechunkedInput(self.rfile).read()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _respond(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        code, _, message = status.partition(" ")
        self.send_response(int(code), message)
        head = self.command == "HEAD"
        for name, value in headers:
            # HEAD keeps moto's Content-Length (the size of what a GET would return)
            if name.lower() not in self._DROP or (head and name.lower() == "content-length"):
                self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(body)))
        # end_headers, with the body in the same write: each write lets go of the GIL,
        # and the other connections' threads may keep it for the switch interval (5 ms)
        self._headers_buffer.append(b"\r\n")
        if not head:
            self._headers_buffer.append(body)
        self.flush_headers()
        self.wfile.flush()


class MotoServer:
    """In-process serialised moto server on 127.0.0.1 (threads, werkzeug).

    With ``auth``, IAM is enforced from the first request and :attr:`admin_key` is the
    bootstrap identity's key (moto's enforcement is global to the process: do not
    mix with ``mock_aws`` in the same process)."""

    def __init__(
        self, port: int = 0, host: str = HOST, auth: bool = False, region: str = "us-east-1"
    ) -> None:
        motospeed.install()
        self.stats = RequestStats.from_env()
        self.app = SerialApp(
            motospeed.DynamoDBLane(DomainDispatcherApplication(create_backend_app)), self.stats
        )
        self.admin_key: AccessKey | None = None
        self.gate: motoauth.AuthGate | None = None
        if auth:
            self.admin_key = AccessKey(*motoauth.enable(region))
            self.gate = motoauth.AuthGate(self.app)
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> int:
        """Bind and listen (connections queue from now on); returns the port."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        app = self.gate or self.app
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=KeepAliveHandler
        )
        self._server.daemon_threads = True
        self._port = self._server.server_port
        return self._port

    def serve_forever(self) -> None:
        assert self._server is not None, "bind() first"
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> MotoServer:
        self.bind()
        self._thread = threading.Thread(target=self.serve_forever, name="moto", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.app.resume()  # a paused server would never finish its queued requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def pause(self) -> None:
        self.app.pause()

    def make_unavailable(self) -> None:
        self.app.make_unavailable()

    def resume(self) -> None:
        self.app.resume()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _install_signals(server: MotoServer) -> None:
    # Pausing waits for the request in flight: do it off the signal handler's frame.
    def later(fn: Callable[[], None]) -> Callable[..., None]:
        return lambda *_: threading.Thread(target=fn, daemon=True).start()

    signal.signal(signal.SIGUSR1, later(server.pause))
    signal.signal(signal.SIGRTMIN, later(server.make_unavailable))
    signal.signal(signal.SIGUSR2, later(server.resume))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impetus.local.motoserver")
    parser.add_argument("--port", type=int, default=0, help="port (default: chosen by the OS)")
    parser.add_argument(
        "--admin-credentials",
        type=Path,
        default=None,
        help="where to write the admin's shared-credentials file (required unless --no-auth)",
    )
    parser.add_argument("--region", default="us-east-1", help="region of the admin identity")
    parser.add_argument(
        "--no-auth", action="store_true", help="accept any request (tests, benchmarks)"
    )
    args = parser.parse_args(argv)
    if not args.no_auth and args.admin_credentials is None:
        parser.error("--admin-credentials is required (or --no-auth)")
    server = MotoServer(port=args.port, auth=not args.no_auth, region=args.region)
    if server.admin_key is not None:
        credentials.write(credentials.ADMIN, server.admin_key, args.admin_credentials)
    port = server.bind()
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs (SQS, presigned) from it
    _install_signals(server)
    if server.stats is not None:
        server.stats.start()
    print(port, flush=True)
    # Nobody reads stdout after the port line: send later output to stderr, never a full pipe.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with contextlib.suppress(SystemExit):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
