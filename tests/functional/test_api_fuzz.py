"""Schemathesis against the local API server: generated requests (valid and invalid, a
bounded number per operation) never get a 5xx, and every answer keeps to the API's
OpenAPI description (status codes, content type, body schema)."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from impetus.local.apiserver import ApiServer
from impetus.local.motoserver import MotoServer
from impetus.local.provision import local_settings, provision, server_environment

EXAMPLES = 25  # per operation: bounded, so the suite stays fast


@pytest.fixture(scope="module")
def api_server() -> Iterator[dict[str, Any]]:
    saved = dict(os.environ)
    with MotoServer() as moto:
        aws = local_settings(moto.endpoint_url, table_prefix="fuzz")
        os.environ.update(server_environment(aws, dict(os.environ)))  # the handler reads it
        from lambdas.api import app as api_app

        api_app.reset_state()  # a warm handler of an earlier test in this process: cold again
        authkey = provision(aws).authkey
        server = ApiServer().start()
        try:
            yield {"url": server.url, "headers": {"Authorization": f"Bearer {authkey}"}}
        finally:
            server.stop()
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture(scope="module", autouse=True)
def some_streams(api_server: dict[str, Any]) -> None:
    """A few streams to hit, so that not every generated request is a 404."""
    for stream in ("s1", "fuzz"):
        create = urllib.request.Request(
            f"{api_server['url']}/streams",
            data=json.dumps({"id": stream}).encode(),
            headers={**api_server["headers"], "Content-Type": "application/json"},
        )
        urllib.request.urlopen(create, timeout=10).close()


def _served_schema() -> dict[str, Any]:
    """The description /openapi.json serves, straight from the handler's app."""
    from lambdas.api.app import OPENAPI, app

    return json.loads(app.get_openapi_json_schema(**OPENAPI))


schema = schemathesis.openapi.from_dict(_served_schema())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples on every run: a failure is reproducible
)
def test_no_5xx_and_answers_match_the_schema(case, api_server):
    case.call_and_validate(
        base_url=api_server["url"],
        headers=api_server["headers"],
        # The API also enforces DynamoDB's limits that JSON Schema cannot state (number
        # magnitude and digits, UTF-8 byte sizes): a schema-valid body may get a 400 on
        # purpose. Every other check (no 5xx, documented statuses, content types, bodies
        # matching the schema, invalid data refused, auth enforced) stays on.
        excluded_checks=[positive_data_acceptance],
    )
