"""ApiClient against a scripted HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from impetus.api_client import ApiClient
from impetus.core.config import ClientSettings
from impetus.core.exceptions import ApiError

AUTHKEY = "s3cr3t-authkey-value"


class Script:
    """Answers queued per test: (status, body dict or raw text, headers)."""

    def __init__(self):
        self.answers: list[tuple[int, object, dict]] = []
        self.requests: list[dict] = []

    def then(self, status, body, headers=None):
        self.answers.append((status, body, headers or {}))
        return self


@pytest.fixture
def server():
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "auth": self.headers.get("Authorization"),
                    "body": json.loads(body) if body else None,
                    "port": self.client_address[1],
                }
            )
            status, payload, headers = (
                script.answers.pop(0) if script.answers else (200, {"ok": True}, {})
            )
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield script
    httpd.shutdown()
    httpd.server_close()


def client(url, **kwargs):
    kwargs.setdefault("backoff_base", 0.01)
    return ApiClient(ClientSettings(api_url=url, authkey=AUTHKEY), **kwargs)


def test_bearer_json_and_routes(server):
    api = client(server.url)
    server.then(201, {"id": "s1", "properties": {"a": 1}})
    assert api.create_stream("s1", {"a": 1})["id"] == "s1"
    server.then(200, {"accepted": ["j"], "existing": []})
    api.enqueue("s1", [{"id": "j"}], {"d": "code"}, "3.11", "3.1.3")
    server.then(200, {"jobs": []})
    assert api.results("s1", "stage 1", limit=7) == []
    server.then(200, {"acked": 2})
    assert api.ack("s1", ["a", "b"]) == 2
    server.then(200, {"key": "k/1", "value": [1]})
    assert api.store_get("s1", "k/1") == [1]
    reqs = server.requests
    assert all(r["auth"] == f"Bearer {AUTHKEY}" for r in reqs)
    assert all(AUTHKEY not in r["path"] for r in reqs)
    assert reqs[0] == {**reqs[0], "method": "POST", "path": "/streams"}
    assert reqs[0]["body"] == {"properties": {"a": 1}, "id": "s1"}
    assert reqs[1]["path"] == "/streams/s1/jobs"
    assert reqs[1]["body"] == {
        "python": "3.11",
        "cloudpickle": "3.1.3",
        "functions": {"d": "code"},
        "jobs": [{"id": "j"}],
    }
    assert reqs[2]["path"] == "/streams/s1/results?stage=stage+1&limit=7"
    assert reqs[3]["body"] == {"ids": ["a", "b"]}
    assert reqs[4]["path"] == "/streams/s1/store/k%2F1"
    # one pooled keep-alive connection served every request
    assert len({r["port"] for r in reqs}) == 1


def test_error_body_becomes_api_error(server):
    api = client(server.url)
    server.then(404, {"error": "stream_not_found", "message": "no stream s9"})
    with pytest.raises(ApiError) as info:
        api.get_stream("s9")
    assert (info.value.status, info.value.code, info.value.message) == (
        404,
        "stream_not_found",
        "no stream s9",
    )


def test_retries_idempotent_requests_on_503_and_429(server):
    api = client(server.url)
    server.then(503, {"error": "unavailable", "message": ""})
    server.then(429, {"error": "throttled", "message": ""}, {"Retry-After": "0"})
    server.then(200, {"streams": [{"id": "x"}]})
    assert api.list_streams() == [{"id": "x"}]
    assert len(server.requests) == 3


def test_post_jobs_is_retried_but_anonymous_create_is_not(server):
    api = client(server.url)
    server.then(502, {"error": "bad_gateway", "message": ""})
    server.then(200, {"accepted": [], "existing": ["j"]})
    assert api.enqueue("s", [{"id": "j"}], {}, "3.11", "3.1.3")["existing"] == ["j"]
    server.then(503, {"error": "unavailable", "message": "try later"})
    with pytest.raises(ApiError) as info:
        api.create_stream(None, {})
    assert info.value.status == 503
    assert len(server.requests) == 3


def test_gives_up_after_max_attempts(server):
    api = client(server.url, max_attempts=3)
    for _ in range(3):
        server.then(504, {"error": "timeout", "message": "slow"})
    with pytest.raises(ApiError) as info:
        api.get_job("s", "j")
    assert info.value.status == 504 and len(server.requests) == 3


def test_connection_errors_are_retried_then_raised_without_secret():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = client(f"http://127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(ApiError) as info:
        api.list_streams()
    assert info.value.status == 0 and info.value.code == "connection_error"
    assert AUTHKEY not in str(info.value) and AUTHKEY not in repr(api)


def test_echoed_secret_is_scrubbed_from_errors(server):
    api = client(server.url)
    server.then(403, {"error": "forbidden", "message": f"bad key {AUTHKEY}"})
    with pytest.raises(ApiError) as info:
        api.get_stream("s")
    assert AUTHKEY not in str(info.value) and AUTHKEY not in info.value.message


@pytest.mark.parametrize(("status", "code"), [(401, "unauthorized"), (403, "forbidden")])
def test_api_gateways_own_refusals_get_the_apis_codes(server, status, code):
    # On AWS the authorizer answers these before the API Lambda, with a bare message.
    api = client(server.url)
    server.then(status, {"message": "Forbidden" if status == 403 else "Unauthorized"})
    with pytest.raises(ApiError) as info:
        api.list_streams()
    assert (info.value.status, info.value.code) == (status, code)
    assert "authkey" in info.value.message and len(server.requests) == 1  # not retried


def test_non_json_error_body(server):
    api = client(server.url)
    server.then(500, "<html>oops</html>")
    with pytest.raises(ApiError) as info:
        api.store_keys("s")
    assert info.value.status == 500 and info.value.code == "http_error"
