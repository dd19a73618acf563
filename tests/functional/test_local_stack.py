"""The embedded local stack: event building, API server, serialised moto, and the CLI.

The stack tests start real processes under a temporary IMPETUS_HOME through the
``impetus`` CLI. The node-agent slot runs a stand-in (a process that spawns a child and
sleeps) so these tests exercise supervision and process-group cleanup on their own.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from impetus.core.config import ClientSettings
from impetus.local import apiserver, credentials, state
from impetus.local.apiserver import ApiServer, LambdaContext, build_event
from impetus.local.motoserver import MotoServer, SerialApp

# A node agent stand-in: leaves a grandchild in its process group, like an agent's workers.
STAND_IN = (
    f"{shlex.quote(sys.executable)} -c "
    '\'import subprocess, time; subprocess.Popen(["sleep", "600"]); time.sleep(600)\''
    " {node_id} {mpps} {logdir}"
)
CLIENT_ENV_VARS = ("IMPETUS_API_URL", "IMPETUS_AUTHKEY", "AWS_ENDPOINT_URL", "AWS_PROFILE")


# --- the API Gateway v2 event ---------------------------------------------------------------
def test_event_has_payload_v2_shape() -> None:
    event = build_event(
        "post",
        "/streams/s1/jobs?stage=a&x=1&x=2&empty=",
        [
            ("Host", "127.0.0.1:8000"),
            ("User-Agent", "ua/1"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("Cookie", "a=1; b=2"),
        ],
        b'{"k": "v"}',
        source_ip="10.1.2.3",
        now=1700000000.5,
        request_id="rid",
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/streams/s1/jobs"
    assert event["rawQueryString"] == "stage=a&x=1&x=2&empty="
    assert event["queryStringParameters"] == {"stage": "a", "x": "1,2", "empty": ""}
    assert event["headers"] == {"host": "127.0.0.1:8000", "user-agent": "ua/1", "x-multi": "a,b"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert "pathParameters" not in event
    assert event["body"] == '{"k": "v"}'
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/streams/s1/jobs",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.1.2.3",
        "userAgent": "ua/1",
    }
    assert ctx["stage"] == "$default" and ctx["routeKey"] == "$default"
    assert ctx["requestId"] == "rid"
    assert ctx["domainName"] == "127.0.0.1:8000"
    assert ctx["timeEpoch"] == 1700000000500
    assert ctx["time"] == "14/Nov/2023:22:13:20 +0000"
    assert ctx["accountId"] and ctx["apiId"]


def test_event_without_query_or_body_omits_them() -> None:
    event = build_event("GET", "/streams", [("Host", "h")])
    assert "queryStringParameters" not in event
    assert "cookies" not in event
    assert "body" not in event
    assert event["rawQueryString"] == ""


def test_binary_body_is_base64() -> None:
    raw = bytes(range(256))
    event = build_event("PUT", "/x", [], raw)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_lambda_context_counts_down() -> None:
    ctx = LambdaContext(timeout=5)
    assert ctx.function_name and ctx.memory_limit_in_mb > 0 and ctx.aws_request_id
    assert 4000 < ctx.get_remaining_time_in_millis() <= 5000


# --- the API server ----------------------------------------------------------------------------
def _echo_handler(event: dict[str, Any], context: Any) -> Any:
    path = event["rawPath"]
    if path == "/boom":
        raise RuntimeError("handler bug")
    if path == "/plain":
        return {"plain": True}  # no statusCode: API Gateway infers a 200 JSON response
    if path == "/sized":  # a body of n times the character c
        query = event["queryStringParameters"]
        return {"statusCode": 200, "body": query["c"] * int(query["n"])}
    if path == "/binary":
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(b"\x00\xff").decode(),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-request": context.aws_request_id},
        "cookies": ["c1=v1", "c2=v2"],
        "body": json.dumps({"event": event}),
    }


@pytest.fixture
def api() -> Iterator[ApiServer]:
    # No authorizer: these tests are about the event and response mapping
    # (tests/functional/test_edge_auth.py tests the authorizer in front of the handler).
    server = ApiServer(handler=_echo_handler, authorizer=None).start()
    yield server
    server.stop()


def _connect(server: ApiServer) -> http.client.HTTPConnection:
    host, port = server.server_address[:2]
    return http.client.HTTPConnection(host, port, timeout=10)


def test_api_server_round_trip_on_one_connection(api: ApiServer) -> None:
    conn = _connect(api)
    conn.request("POST", "/a/b?q=1", body=b"hello", headers={"X-Test": "yes"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 201
    assert resp.headers.get_all("Set-Cookie") == ["c1=v1", "c2=v2"]
    assert resp.headers["x-request"]
    event = body["event"]
    assert event["rawPath"] == "/a/b" and event["queryStringParameters"] == {"q": "1"}
    assert event["body"] == "hello" and event["headers"]["x-test"] == "yes"
    first_socket = conn.sock
    # Keep-alive: the second request travels on the same connection.
    conn.request("GET", "/binary")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"\x00\xff"
    assert conn.sock is first_socket
    conn.request("GET", "/plain")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {"plain": True}
    conn.close()


def test_api_server_handler_failure_is_api_gateways_500(api: ApiServer) -> None:
    conn = _connect(api)
    conn.request("GET", "/boom")
    resp = conn.getresponse()
    assert resp.status == 500  # an HTTP API's answer to a failed Lambda integration
    assert json.loads(resp.read()) == {"message": "Internal Server Error"}


def test_api_server_rejects_bodies_over_10_mb(api: ApiServer) -> None:
    conn = _connect(api)
    conn.putrequest("PUT", "/big")
    conn.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
    conn.endheaders()  # the server answers from the headers alone
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read()) == {"message": "Request Entity Too Large"}


def _sized(api: ApiServer, n: int, c: str = "a") -> tuple[int, bytes]:
    conn = _connect(api)
    conn.request("GET", f"/sized?n={n}&c={c}")
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_api_server_refuses_answers_over_lambdas_6_mb_as_aws_does(api: ApiServer) -> None:
    """Lambda fails an invocation whose serialized answer passes 6 MB, and API Gateway
    answers its bare 500 instead: the local server does the same, counting the answer as
    Lambda does (the body is a JSON string in the handler's return value)."""
    envelope = len(json.dumps({"statusCode": 200, "body": ""}))
    fits = apiserver.LAMBDA_PAYLOAD_LIMIT - envelope
    status, body = _sized(api, fits)
    assert status == 200 and len(body) == fits
    status, body = _sized(api, fits + 1)
    assert status == 500 and json.loads(body) == {"message": "Internal Server Error"}
    # Each '"' of the body takes two bytes in Lambda's payload: half as many are too many.
    status, body = _sized(api, fits // 2 + 1, "%22")
    assert status == 500
    assert _sized(api, fits // 2 - 1, "%22")[0] == 200


def test_api_server_refuses_requests_over_lambdas_6_mb_with_413(api: ApiServer) -> None:
    """API Gateway takes bodies up to 10 MB, but the event Lambda gets must fit 6 MB."""
    conn = _connect(api)
    conn.request("POST", "/c", body=b"x" * (7 * 1024 * 1024))
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read()) == {"message": "Request Entity Too Large"}
    conn = _connect(api)
    conn.request("POST", "/c", body=b"x" * (5 * 1024 * 1024))  # with room for the event
    resp = conn.getresponse()
    assert resp.status == 201 and json.loads(resp.read())["event"]["body"] == "x" * 5 * 1024 * 1024


def test_api_server_reads_chunked_bodies(api: ApiServer) -> None:
    conn = _connect(api)
    conn.request("POST", "/c", body=iter([b"ab", b"cd"]), encode_chunked=True)
    resp = conn.getresponse()
    assert json.loads(resp.read())["event"]["body"] == "abcd"


@pytest.mark.parametrize("size_line", [b"-1", b"+10", b"-0x10", b"zz", b""])
def test_api_server_refuses_malformed_chunk_sizes_without_reading_on(
    api: ApiServer, size_line: bytes
) -> None:
    """A chunk size of -1 once read the body to EOF past the 10 MB cap (an unauthenticated
    300 MB body took the server to 927 MB): now any size that is not hex is a 400 before
    anything past it is read."""
    with socket.create_connection(api.server_address[:2], timeout=10) as sock:
        sock.sendall(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + size_line
            + b"\r\n"
            + b"x" * 65536  # what a read-to-EOF would swallow; the socket stays open
        )
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection after a 400
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"malformed request body framing" in answer


def test_api_server_missing_handler_module_is_500() -> None:
    server = ApiServer(handler="no_such_module_xyz.handler", authorizer=None).start()
    try:
        conn = _connect(server)
        conn.request("GET", "/")
        assert conn.getresponse().status == 500
    finally:
        server.stop()


# --- the serialised moto server ----------------------------------------------------------------
def _ddb(endpoint: str, key: tuple[str, str] = ("testing", "testing"), **config: Any) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(**{"retries": {"mode": "standard"}, **config}),
    )


def test_conditional_writes_are_atomic_under_concurrency() -> None:
    items, threads = 200, 4
    with MotoServer() as moto:
        ddb = _ddb(moto.endpoint_url)
        table = f"claims-{uuid.uuid4().hex}"  # moto's state is per process, not per server
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(items):
            ddb.put_item(TableName=table, Item={"pk": {"S": str(i)}})
        wins: Counter[str] = Counter()
        lock = threading.Lock()

        def claimer(name: str) -> None:
            client = _ddb(moto.endpoint_url)
            for i in range(items):  # same order everywhere: every claim is contested
                try:
                    client.update_item(
                        TableName=table,
                        Key={"pk": {"S": str(i)}},
                        UpdateExpression="SET claimed_by = :me",
                        ConditionExpression="attribute_not_exists(claimed_by)",
                        ExpressionAttributeValues={":me": {"S": name}},
                    )
                except client.exceptions.ConditionalCheckFailedException:
                    continue
                with lock:
                    wins[str(i)] += 1

        workers = [threading.Thread(target=claimer, args=(f"t{n}",)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert len(wins) == items
    assert [k for k, n in wins.items() if n > 1] == []


def test_serial_app_runs_one_request_at_a_time() -> None:
    # The race above is rare (about 1 in 400 contested claims without the lock), so
    # also check the mechanism directly: a slow app never sees two requests at once.
    active, peak, lock = 0, 0, threading.Lock()

    def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return [b"ok"]

    app = SerialApp(slow_app)
    calls = [threading.Thread(target=app, args=({}, None)) for _ in range(8)]
    for call in calls:
        call.start()
    for call in calls:
        call.join()
    assert peak == 1


def test_paused_moto_holds_requests_until_resumed() -> None:
    with MotoServer() as moto:
        ddb = _ddb(moto.endpoint_url)
        ddb.list_tables()
        moto.pause()
        done = threading.Event()
        threading.Thread(target=lambda: (ddb.list_tables(), done.set()), daemon=True).start()
        assert not done.wait(0.5)
        moto.resume()
        assert done.wait(5)


def test_unavailable_moto_answers_503_and_boto_retries_through_it() -> None:
    from impetus.core import aws
    from impetus.core.config import AwsSettings

    with MotoServer() as moto:
        once = _ddb(moto.endpoint_url, retries={"mode": "standard", "max_attempts": 1})
        ours = aws.client("dynamodb", AwsSettings(endpoint_url=moto.endpoint_url))
        moto.make_unavailable()
        with pytest.raises(Exception, match="Throttling"):
            once.list_tables()
        threading.Timer(1.5, moto.resume).start()
        # impetus.core.aws: standard retries (moto's tables are per process: others may exist)
        assert isinstance(ours.list_tables()["TableNames"], list)
        assert moto.app.refused >= 2


def test_motoserver_process_prints_port_and_pauses_on_signals(tmp_path: Path) -> None:
    admin = tmp_path / "admin"
    proc = subprocess.Popen(
        [sys.executable, "-m", "impetus.local.motoserver", "--admin-credentials", str(admin)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        endpoint = f"http://127.0.0.1:{port}"
        assert stat.S_IMODE(admin.stat().st_mode) == 0o600  # written before the port
        with pytest.raises(Exception, match="security token"):
            _ddb(endpoint).list_tables()  # IAM is enforced: made-up keys are refused
        key = credentials.read(credentials.ADMIN, admin)
        quick = _ddb(
            endpoint,
            read_timeout=0.5,
            retries={"mode": "standard", "max_attempts": 1},
            key=(key.access_key_id, key.secret_access_key),
        )
        assert quick.list_tables()["TableNames"] == []
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        with pytest.raises(Exception, match="timeout"):
            quick.list_tables()
        proc.send_signal(signal.SIGUSR2)
        time.sleep(0.3)
        assert quick.list_tables()["TableNames"] == []
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# --- the stack through the CLI -----------------------------------------------------------------
def _cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_VARS}
    env["IMPETUS_HOME"] = str(home)
    return env


def _impetus(home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "impetus.cli", *args],
        env=_cli_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _all_pgids(home: Path) -> set[int]:
    procs = json.loads((home / "local" / "processes.json").read_text())
    return {procs["supervisor"]["pgid"], procs["moto"]["pgid"], *procs["node_pgids"]}


def _up(home: Path) -> dict[str, Any]:
    result = _impetus(home, "local", "up", "--nodes", "1", "--node-command", STAND_IN)
    assert result.returncode == 0, result.stderr + _logs(home)
    settings = json.loads((home / "local.json").read_text())
    assert settings["authkey"] not in result.stdout + result.stderr
    assert settings["api_url"] in result.stdout
    return settings


def _logs(home: Path) -> str:
    return "".join(p.read_text() for p in sorted((home / "local").glob("*.log")))


def _wait(predicate: Any, timeout: float = 10) -> bool:
    return state.wait_until(predicate, timeout, interval=0.1)


def test_local_stack_up_status_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    settings = _up(home)
    pgids = _all_pgids(home)
    try:
        assert stat.S_IMODE((home / "local.json").stat().st_mode) == 0o600
        for key in ("api_url", "authkey", "endpoint_url", "region", "table_prefix", "bucket"):
            assert settings[key], key

        monkeypatch.setenv("IMPETUS_HOME", str(home))
        for name in CLIENT_ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        resolved = ClientSettings.resolve()
        assert (resolved.api_url, resolved.authkey) == (settings["api_url"], settings["authkey"])

        # The API answers through the authorizer and the real handler: no bearer token is
        # API Gateway's 401, the stack's authkey reaches the handler.
        host, port = settings["api_url"].removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/streams")
        resp = conn.getresponse()
        assert resp.status == 401
        assert json.loads(resp.read()) == {"message": "Unauthorized"}
        conn.request("GET", "/streams", headers={"Authorization": f"Bearer {settings['authkey']}"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert "streams" in json.loads(resp.read())

        # The stack's resources exist in its moto server, which only its identities enter.
        admin = credentials.read(credentials.ADMIN, home / "local/credentials/admin")
        ddb = _ddb(settings["endpoint_url"], key=(admin.access_key_id, admin.secret_access_key))
        assert f"{settings['table_prefix']}-streams" in ddb.list_tables()["TableNames"]
        with pytest.raises(Exception, match="security token"):
            _ddb(settings["endpoint_url"]).list_tables()

        # A node agent gets the node's credentials file and profile, no keys.
        node_pid = json.loads(_impetus(home, "local", "status", "--json").stdout)["nodes"][0]
        environ = Path(f"/proc/{node_pid['pid']}/environ").read_bytes().split(b"\0")
        node_env = dict(v.decode().split("=", 1) for v in environ if b"=" in v)
        assert node_env["AWS_PROFILE"] == "impetus-node"
        assert node_env["AWS_SHARED_CREDENTIALS_FILE"] == str(home / "local/credentials/node")
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(node_env)
        assert admin.secret_access_key not in Path(f"/proc/{node_pid['pid']}/environ").read_text()

        again = _impetus(home, "local", "up")
        assert again.returncode == 0 and "already up" in again.stdout
        same = _impetus(home, "local", "up", "--nodes", "1", "--node-command", STAND_IN)
        assert same.returncode == 0 and "already up" in same.stdout, same.stderr
        other = _impetus(home, "local", "up", "--nodes", "2", "--mpps", "4")
        assert other.returncode == 1 and other.stdout == "", other.stdout
        assert "--nodes 2 (running: 1)" in other.stderr and "local down" in other.stderr
        assert "--mpps" not in other.stderr  # 4 is what it runs with (the default)
        assert other.stderr.count("\n") == 1

        status = _impetus(home, "local", "status", "--json")
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert "authkey" not in status.stdout
        assert info["nodes_alive"] == 1 and info["moto_alive"]
        assert info["supervisor_pid"] == settings["supervisor_pid"]

        # A node agent that dies is restarted.
        first_pid = info["nodes"][0]["pid"]
        os.kill(first_pid, signal.SIGKILL)

        def restarted() -> bool:
            nodes = json.loads(_impetus(home, "local", "status", "--json").stdout)["nodes"]
            return nodes[0]["pid"] != first_pid and nodes[0]["alive"]

        assert _wait(restarted, 15), _logs(home)
        pgids = _all_pgids(home)
        assert len(pgids) == 4  # supervisor, moto, two generations of the node agent
        assert _impetus(home, "local", "status").returncode == 0
    finally:
        down = _impetus(home, "local", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not state.pid_alive(settings["supervisor_pid"])
    assert state.group_members(pgids) == []
    assert not (home / "local.json").exists()
    assert list((home / "local/credentials").iterdir()) == []  # keys of a gone moto
    assert _impetus(home, "local", "status").returncode == 1
    assert "no local stack" in _impetus(home, "local", "down").stdout


def test_down_cleans_up_after_a_killed_supervisor(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = _up(home)
    pgids = _all_pgids(home)
    os.kill(settings["supervisor_pid"], signal.SIGKILL)
    assert _wait(lambda: not state.pid_alive(settings["supervisor_pid"]))
    assert state.group_members(pgids)  # moto and the node agent are orphans now
    assert _impetus(home, "local", "status").returncode == 1
    down = _impetus(home, "local", "down")
    assert down.returncode == 0, down.stderr
    assert state.group_members(pgids) == []
    assert not (home / "local.json").exists()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    usage = _impetus(tmp_path, "local", "up", "--nodes", "many")
    assert usage.returncode == 2
    assert len(usage.stderr.strip().splitlines()) == 1
    runtime = _impetus(tmp_path, "local", "up", "--mpps", "0")
    assert runtime.returncode == 1
    assert runtime.stderr.strip().splitlines() == [
        "impetus: error: --nodes must be >= 0 and --mpps >= 1"
    ]
