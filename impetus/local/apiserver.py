"""Local stand-in for API Gateway (HTTP API): HTTP request -> payload v2.0 event ->
authorizer -> handler.

moto has no API Gateway data plane and runs no Lambda code, so the local stack serves the
API handler itself. The event and response mapping follow API Gateway's payload format
2.0, so the handler runs the same code path as in AWS; the Lambda authorizer runs first,
with API Gateway's cache and answers (:mod:`impetus.local.edge`).
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from impetus.local.edge import CACHE_TTL, DEFAULT_AUTHORIZER, Answer, EdgeAuthorizer

log = logging.getLogger(__name__)

DEFAULT_HANDLER = "lambdas.api.app.handler"
# API Gateway HTTP API's request payload limit (10 MB, hard):
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
MAX_BODY = 10 * 1024 * 1024
# Lambda's synchronous invocation payload limit, request and response each ("6 MB",
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); Lambda's own
# refusal names the exact figure: "Response payload size exceeded maximum allowed payload
# size (6291556 bytes)". It binds before API Gateway's 10 MB, on the event (the body with
# its headers, JSON-escaped) and on the handler's serialized return value.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024 + 100
# API Gateway's bare answers: a request over a payload limit; a failed Lambda integration
# (an answer over 6 MB, a crash), which an HTTP API turns into a 500:
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-lambda.html
TOO_LARGE = (413, "Request Entity Too Large")
INTEGRATION_FAILED = (500, "Internal Server Error")
MAX_CHUNK_LINE = 1024  # a chunk-size line: hex digits and optional extensions
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
ACCOUNT_ID = "123456789012"  # moto's default account
API_ID = "local"
LAMBDA_TIMEOUT = 30.0
AUTHORIZER_TIMEOUT = 10.0  # API Gateway's limit for an authorizer (infra/functions.py)

Handler = Callable[[dict[str, Any], Any], Any]


# --- the event ---------------------------------------------------------------------------
def _join_headers(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Lower-cased headers, repeated ones comma-joined; cookies split out as API GW does."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers, cookies


def _query_parameters(raw_query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def _body_fields(body: bytes) -> dict[str, Any]:
    if not body:
        return {"isBase64Encoded": False}
    try:
        return {"body": body.decode("utf-8"), "isBase64Encoded": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}


def build_event(
    method: str,
    target: str,
    header_pairs: Iterable[tuple[str, str]],
    body: bytes = b"",
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    now: float | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2.0 event for one request (``target`` = path?query)."""
    now = time.time() if now is None else now
    parts = urlsplit(target)
    path = parts.path or "/"
    headers, cookies = _join_headers(header_pairs)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.query,
        "headers": headers,
    }
    if cookies:
        event["cookies"] = cookies
    if parts.query:
        event["queryStringParameters"] = _query_parameters(parts.query)
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": headers.get("host", "localhost"),
        "domainPrefix": headers.get("host", "localhost").split(".")[0],
        "http": {
            "method": method.upper(),
            "path": path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id or uuid.uuid4().hex,
        "routeKey": "$default",
        "stage": "$default",
        "time": datetime.fromtimestamp(now, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now * 1000),
    }
    event.update(_body_fields(body))
    return event


# --- the Lambda context ------------------------------------------------------------------
class LambdaContext:
    """The attributes of AWS's Lambda context object that handlers and powertools read."""

    def __init__(
        self,
        function_name: str = "impetus-api",
        memory_limit_in_mb: int = 1024,
        timeout: float = LAMBDA_TIMEOUT,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --- the response ------------------------------------------------------------------------
def response_parts(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Map a handler's return value to (status, headers, body) as API Gateway v2 does.

    A dict with ``statusCode`` is a full response; anything else is taken as a JSON body.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        body = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], body.encode("utf-8")
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(c)) for c in result.get("cookies") or []]
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode("utf-8")
    return int(result["statusCode"]), headers, body


def error_parts(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"error": code, "message": message}).encode("utf-8")
    return status, [("Content-Type", "application/json")], body


def gateway_parts(answer: tuple[int, str]) -> tuple[int, list[tuple[str, str]], bytes]:
    """API Gateway's own answer: ``{"message": ...}``, no error code."""
    status, message = answer
    return status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode()


def lambda_payload_size(value: Any) -> int:
    """Bytes of ``value`` as Lambda carries it: JSON, UTF-8 (the Python 3.12+ runtime
    writes non-ASCII characters as they are)."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def load_handler(dotted: str) -> Handler:
    """``package.module.function`` -> the function."""
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        raise ValueError(f"handler must be module.function, got {dotted!r}")
    return getattr(importlib.import_module(module_name), attr)


class _BodyTooLarge(Exception):
    pass


# --- the server --------------------------------------------------------------------------
class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connections
    # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold the body back ~40 ms on a kept-alive connection.
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection frees its thread after this
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY:
            raise _BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            # A chunk size is hex digits (RFC 9112): no sign, so a "-1" cannot turn the
            # read below into read-to-EOF past the cap; the line itself is bounded too.
            line = self.rfile.readline(MAX_CHUNK_LINE)
            digits = line.split(b";")[0].strip()
            if not digits or not all(c in HEX_DIGITS for c in digits):
                raise ValueError("malformed chunk size")
            size = int(digits, 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(data)
            if len(data) + size > MAX_BODY:
                raise _BodyTooLarge
            data += self.rfile.read(size)
            self.rfile.readline()

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _BodyTooLarge:
            self.close_connection = True  # the unread body makes the connection unusable
            self._send(*gateway_parts(TOO_LARGE))
            return
        except ValueError:
            self.close_connection = True
            self._send(*error_parts(400, "bad_request", "malformed request body framing"))
            return
        event = build_event(
            self.command,
            self.path,
            self.headers.items(),
            body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        self._send(*self.server.serve(event))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Any:
        # Every other method (TRACE, QUERY, ...) reaches the handler too, as with an HTTP
        # API's ANY route: it answers a JSON 405, not http.server's 501 HTML page.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


class ApiServer(ThreadingHTTPServer):
    """Serves ``handler`` (a dotted path, imported on first use) on 127.0.0.1.

    ``authorizer`` (a dotted path or a function; None for none) runs before it as API
    Gateway runs the stack's Lambda authorizer, its verdicts cached ``authorizer_ttl``
    seconds per Authorization header: a request it refuses never reaches ``handler``.

    ``max_concurrency`` bounds parallel invocations. It defaults to 1 because a Lambda
    container runs one invocation at a time and handlers keep per-request state on
    module-level objects (powertools resolvers do); moto is serialised anyway.
    """

    daemon_threads = True

    def __init__(
        self,
        port: int = 0,
        handler: str | Handler = DEFAULT_HANDLER,
        host: str = "127.0.0.1",
        max_concurrency: int | None = 1,
        authorizer: str | Handler | None = DEFAULT_AUTHORIZER,
        authorizer_ttl: float = CACHE_TTL,
    ) -> None:
        super().__init__((host, port), _RequestHandler)
        self._handler_spec = handler
        self._handler: Handler | None = handler if callable(handler) else None
        self._authorizer_spec = authorizer
        self._authorizer: Handler | None = authorizer if callable(authorizer) else None
        self.edge = (
            EdgeAuthorizer(self._authorize, ttl=authorizer_ttl) if authorizer is not None else None
        )
        self._import_lock = threading.Lock()
        self._slots = threading.Semaphore(max_concurrency) if max_concurrency else nullcontext()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def handler(self) -> Handler:
        with self._import_lock:
            if self._handler is None:
                self._handler = load_handler(str(self._handler_spec))
            return self._handler

    def _authorize(self, event: dict[str, Any]) -> Any:
        with self._import_lock:
            if self._authorizer is None:
                self._authorizer = load_handler(str(self._authorizer_spec))
            authorizer = self._authorizer
        context = LambdaContext("impetus-authorizer", timeout=AUTHORIZER_TIMEOUT)
        return authorizer(event, context)

    def serve(self, event: dict[str, Any]) -> Answer:
        """One request as API Gateway serves it: the authorizer's refusal, or the handler's."""
        refusal = self.edge.refusal(event) if self.edge is not None else None
        return refusal if refusal is not None else self.invoke(event)

    def invoke(self, event: dict[str, Any]) -> Answer:
        """Run the handler like API Gateway and Lambda would: an event over Lambda's
        payload limit is a 413 before it runs; its failure, or an answer over the limit,
        is API Gateway's 500, never a crash."""
        what = f"{event['requestContext']['http']['method']} {event['rawPath']}"
        if lambda_payload_size(event) > LAMBDA_PAYLOAD_LIMIT:
            log.warning("request %s: the event is over Lambda's payload limit", what)
            return gateway_parts(TOO_LARGE)
        try:
            with self._slots:
                result = self.handler()(event, LambdaContext())
            size = lambda_payload_size(result)
            if size > LAMBDA_PAYLOAD_LIMIT:
                log.error(
                    "API handler on %s: response payload size (%d bytes) exceeded maximum "
                    "allowed payload size (%d bytes)",
                    what,
                    size,
                    LAMBDA_PAYLOAD_LIMIT,
                )
                return gateway_parts(INTEGRATION_FAILED)
            return response_parts(result)
        except Exception:
            log.exception("API handler failed on %s", what)
            return gateway_parts(INTEGRATION_FAILED)

    def start(self) -> ApiServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
