"""Authentication at the edge: the Lambda authorizer's handler under moto, and the local
API server running it in front of the API handler as API Gateway does (401 without the
identity header, 403 when denied, 500 when the authorizer fails, verdicts cached)."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from conftest_api import AUTHKEY, AUTHKEY_SECRET, http_event

from impetus.core.exceptions import ConfigError
from impetus.local.apiserver import ApiServer
from impetus.local.edge import authorizer_event
from lambdas.api import app as api_app
from lambdas.authorizer import handler as authorizer

pytest_plugins = ["conftest_api"]

WRONG = "not-the-authkey-5f3a"
REFUSED_HEADERS = [
    pytest.param(f"Bearer {WRONG}", id="wrong-key"),
    pytest.param(f"Bearer {AUTHKEY}x", id="key-with-suffix"),
    pytest.param(f"Bearer {AUTHKEY[:-1]}", id="key-prefix"),
    pytest.param(AUTHKEY, id="no-scheme"),
    pytest.param(f"Basic {AUTHKEY}", id="other-scheme"),
    pytest.param("Bearer", id="scheme-only"),
    pytest.param(f"Bearer {AUTHKEY} {AUTHKEY}", id="two-tokens"),
    pytest.param("Bearer clé-ünïcode", id="non-ascii"),
]


def request_for(header: str | None, path: str = "/streams") -> dict[str, Any]:
    """The authorizer event API Gateway sends for a GET with this Authorization header."""
    headers = {} if header is None else {"Authorization": header}
    event = http_event("GET", path, headers=headers)
    return authorizer_event(event, [] if header is None else [header])


@pytest.fixture
def fresh(api_aws: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """moto with the authkey secret; the authorizer (and API) on a cold container."""
    api_app.reset_state()
    yield api_aws
    api_app.reset_state()


# --- the handler --------------------------------------------------------------------------
def test_the_authkey_is_authorized(fresh) -> None:
    assert authorizer.handler(request_for(f"Bearer {AUTHKEY}"), None) == {"isAuthorized": True}
    # the scheme is case-insensitive, surrounding space ignored (as the API Lambda does)
    answer = authorizer.handler(request_for(f"bearer   {AUTHKEY} "), None)
    assert answer == {"isAuthorized": True}


@pytest.mark.parametrize("header", REFUSED_HEADERS)
def test_anything_else_is_denied(fresh, header: str) -> None:
    assert authorizer.handler(request_for(header), None) == {"isAuthorized": False}


def test_a_request_without_the_header_is_denied(fresh) -> None:
    # API Gateway never sends one (the identity source is required), but the handler
    # must not let it through if it did.
    assert authorizer.handler(request_for(None), None) == {"isAuthorized": False}


def test_a_denial_is_logged_without_the_token(fresh) -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record) + json.dumps(record.__dict__, default=str))

    keep = Keep(level=logging.INFO)
    logger = logging.getLogger(authorizer.SERVICE)
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        authorizer.handler(request_for(f"Bearer {WRONG}"), None)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    (record,) = records
    assert "request denied" in record and "forbidden" in record
    assert WRONG not in record and AUTHKEY not in record


def test_an_unreadable_secret_is_an_error_not_a_denial(fresh) -> None:
    # An exception makes API Gateway answer 500 and cache nothing; a cached denial would
    # refuse the right key for the whole TTL.
    fresh["secretsmanager"].delete_secret(SecretId=AUTHKEY_SECRET, ForceDeleteWithoutRecovery=True)
    with pytest.raises(ConfigError):
        authorizer.handler(request_for(f"Bearer {AUTHKEY}"), None)


def test_a_new_container_reads_a_rotated_key(fresh) -> None:
    assert authorizer.handler(request_for(f"Bearer {AUTHKEY}"), None)["isAuthorized"]
    fresh["secretsmanager"].put_secret_value(SecretId=AUTHKEY_SECRET, SecretString="rotated")
    api_app.reset_state()
    assert not authorizer.handler(request_for(f"Bearer {AUTHKEY}"), None)["isAuthorized"]
    assert authorizer.handler(request_for("Bearer rotated"), None)["isAuthorized"]


def test_the_authorizer_event_has_the_payload_2_shape() -> None:
    event = http_event("POST", "/streams/s1/jobs", query="a=1", headers={"Authorization": "x"})
    event["body"] = '{"jobs": []}'
    request = authorizer_event(event, ["x"])
    assert (request["version"], request["type"]) == ("2.0", "REQUEST")
    assert request["identitySource"] == ["x"]
    assert request["routeArn"].endswith("/$default/POST/streams/s1/jobs")
    assert request["routeArn"].startswith("arn:aws:execute-api:")
    assert request["rawQueryString"] == "a=1" and request["queryStringParameters"] == {"a": "1"}
    assert request["headers"]["authorization"] == "x"
    assert "body" not in request  # an authorizer never sees the body


# --- the local API server: the authorizer in front of the handler ------------------------
class Counted:
    """A Lambda handler that counts its invocations (the real one does the work)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.calls: list[str] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.calls.append(event["rawPath"])
        return self.handler(event, context)


@pytest.fixture
def edge(fresh) -> Iterator[dict[str, Any]]:
    api, auth = Counted(api_app.handler), Counted(authorizer.handler)
    server = ApiServer(handler=api, authorizer=auth).start()
    try:
        yield {"server": server, "api": api.calls, "authorizer": auth.calls, **fresh}
    finally:
        server.stop()


def get(server: ApiServer, header: str | None, path: str = "/streams") -> tuple[int, Any]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    try:
        conn.request("GET", path, headers={} if header is None else {"Authorization": header})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_no_header_is_401_without_invoking_anything(edge) -> None:
    assert get(edge["server"], None) == (401, {"message": "Unauthorized"})
    assert get(edge["server"], "") == (401, {"message": "Unauthorized"})
    assert edge["authorizer"] == [] and edge["api"] == []


@pytest.mark.parametrize("header", REFUSED_HEADERS)
def test_a_denied_request_never_reaches_the_api_handler(edge, header: str) -> None:
    assert get(edge["server"], header) == (403, {"message": "Forbidden"})
    assert get(edge["server"], header, "/nodes") == (403, {"message": "Forbidden"})
    assert edge["api"] == []
    assert edge["authorizer"] == ["/streams"]  # the denial is cached for the second request


def test_the_authkey_reaches_the_handler_and_is_authorized_once_per_ttl(edge) -> None:
    status, body = get(edge["server"], f"Bearer {AUTHKEY}")
    assert (status, body) == (200, {"streams": [], "more": False})
    assert get(edge["server"], f"Bearer {AUTHKEY}", "/nodes")[0] == 200
    assert get(edge["server"], f"Bearer {AUTHKEY}", "/openapi.json")[0] == 200
    assert edge["api"] == ["/streams", "/nodes", "/openapi.json"]
    assert edge["authorizer"] == ["/streams"]


def test_a_failing_authorizer_is_500_and_is_asked_again(edge) -> None:
    edge["secretsmanager"].delete_secret(SecretId=AUTHKEY_SECRET, ForceDeleteWithoutRecovery=True)
    internal = (500, {"message": "Internal Server Error"})
    assert get(edge["server"], f"Bearer {AUTHKEY}") == internal
    assert get(edge["server"], f"Bearer {AUTHKEY}") == internal
    assert edge["api"] == [] and edge["authorizer"] == ["/streams", "/streams"]
