"""The dashboard's data layer and server against the real API handler (served over HTTP)
on in-process moto: what a snapshot says of streams, errors, nodes and DFS, and what the
server answers (and refuses)."""

from __future__ import annotations

import http.client
import json
import time

import boto3
import pytest
from conftest_api import AUTHKEY
from test_api import job_batch
from test_cli_tools import _beat
from test_cli_tools import served as cli_served  # noqa: F401 (a fixture)

from impetus.api_client import ApiClient
from impetus.core import codec, jobs
from impetus.core.config import AwsSettings, ClientSettings
from impetus.core.jobs import READY, Outcome
from impetus.dashboard.dfsread import DfsReader
from impetus.dashboard.gather import Gatherer
from impetus.dashboard.server import DashboardServer
from impetus.scaler.model import GroupDecision, GroupState, PolicyInput
from impetus.storage.decisions import DecisionLog
from impetus.storage.queue import Queue

pytest_plugins = ["conftest_api"]

TRACEBACK = 'Traceback (most recent call last):\n  File "job.py", line 3\nValueError: bad 2\n'


@pytest.fixture
def served(cli_served):  # noqa: F811 (the fixture imported above, by name)
    """The CLI tests' served API (test_cli_tools.served), plus an API client of its own."""
    client = ApiClient(ClientSettings.resolve(), max_attempts=2)
    yield {**cli_served, "api": client}
    client.close()


def _run(queue: Queue) -> None:
    """Stream s1 ("nightly" by name): 2 done, 1 error with output, 1 waiting; stream s2
    (key not filed by this user): 2 waiting."""
    queue.create_stream("s1", {"name": "nightly"})
    body = job_batch(4)
    queue.enqueue("s1", body["jobs"], body["functions"], body["python"])
    claim = queue.claim("s1", "node-a", max_jobs=3, lease=60)
    error = {"type": "ValueError", "error": "bad 2", "traceback": TRACEBACK}
    outcomes = {
        claim.jobs[0].id: Outcome(READY, result=codec.dumps(0), started=1, finished=2),
        claim.jobs[1].id: Outcome(READY, result=codec.dumps(1), started=1, finished=2),
        claim.jobs[2].id: Outcome(
            jobs.ERROR, error=error, failure=jobs.EXCEPTION, output={"stdout": "about to fail\n"}
        ),
    }
    queue.complete(claim, outcomes)
    Queue.create_stream(queue, "s2", {})  # not filed: this user holds no key for s2
    other = job_batch(2)
    queue.enqueue("s2", other["jobs"], other["functions"], other["python"])


def test_snapshot_counts_stages_errors_and_nodes(served):
    _run(served["queue"])
    _beat(served, "n1", workers_total=4, workers_busy=1, jobs_done=3, streams=["s1"])
    snap = Gatherer(served["api"]).snapshot()
    s1, s2 = sorted(snap["streams"], key=lambda s: s["id"])
    assert (s1["name"], s1["done"], s1["errors"], s1["waiting"], s1["forked"]) == (
        "nightly", 2, 1, 1, 4,
    )  # fmt: skip
    assert s1["stages"] == [{"stage": "stage1", "done": 2, "errors": 1, "running": 0, "waiting": 1}]
    assert s1["keyed"] and s1["retried"] == 0
    (err,) = s1["errored"]
    assert err["job"] == "job-2" and err["type"] == "ValueError" and err["error"] == "bad 2"
    assert err["traceback"] == TRACEBACK and err["output"] == {"stdout": "about to fail\n"}
    # s2's key is not held: totals from its counters, nothing of its jobs
    assert (s2["name"], s2["waiting"], s2["keyed"], s2["stages"], s2["errored"]) == (
        "s2", 2, False, None, [],
    )  # fmt: skip
    assert snap["totals"] == {"done": 2, "errors": 1, "running": 0, "waiting": 3, "forked": 6}
    assert snap["nodes"][0] | {"heartbeat": None} == {
        "node": "n1", "state": "running", "busy": 1, "idle": 3, "total": 4, "jobs_done": 3,
        "heartbeat": None,
    }  # fmt: skip
    assert snap["workers"] == {"busy": 1, "idle": 3, "total": 4}
    assert snap["dfs"]["error"] == "no decision log configured"


def test_throughput_and_eta_come_from_successive_snapshots(served):
    queue = served["queue"]
    queue.create_stream("s1", {})
    body = job_batch(10)
    queue.enqueue("s1", body["jobs"], body["functions"], body["python"])
    now = [1000.0]
    gatherer = Gatherer(served["api"], clock=lambda: now[0])
    first = gatherer.snapshot()["streams"][0]
    assert first["rate"] is None and first["eta"] is None  # nothing measured yet
    claim = queue.claim("s1", "node-a", max_jobs=4, lease=60)
    queue.complete(claim, {j.id: Outcome(READY, result=codec.dumps(1)) for j in claim.jobs})
    now[0] += 2.0
    second = gatherer.snapshot()["streams"][0]
    assert second["rate"] == pytest.approx(2.0)  # 4 jobs in 2 s
    assert second["eta"] == pytest.approx(3.0)  # 6 left at 2/s


def _decision(log: DecisionLog, at: float, previous: int, desired: int, reason: str) -> None:
    memory = log.load_memory()  # the groups the log lists are kept with the memory
    group = GroupState("default", "impetus-default", 0, 3, desired, previous, 0)
    decision = GroupDecision(
        "default", "impetus-default", previous, desired, desired, action="scale-out", reason=reason
    )
    log.record(decision, PolicyInput(at, (), (), (group,)))
    log.save_memory(memory)


def test_dfs_decisions_and_fleet(served, monkeypatch):
    boto3.client("ec2").create_launch_template(
        LaunchTemplateName="node", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )
    boto3.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="impetus-default",
        LaunchTemplate={"LaunchTemplateName": "node", "Version": "$Latest"},
        MinSize=0, MaxSize=3, DesiredCapacity=2, AvailabilityZones=["us-east-1a"],
    )  # fmt: skip
    monkeypatch.setenv("IMPETUS_NODE_GROUPS", json.dumps({"default": "impetus-default"}))
    log = DecisionLog.from_settings(AwsSettings.from_env())
    _decision(log, time.time() - 5, 0, 2, "backlog 8 needs 2 nodes")
    snap = Gatherer(served["api"], DfsReader()).snapshot()
    dfs = snap["dfs"]
    assert dfs["error"] is None
    (decision,) = dfs["decisions"]
    assert (decision["previous"], decision["desired"], decision["in_service"]) == (0, 2, 0)
    assert decision["reason"] == "backlog 8 needs 2 nodes" and decision["action"] == "scale-out"
    (sample,) = dfs["fleet"]
    assert (sample["group"], sample["desired"], sample["in_service"]) == ("impetus-default", 2, 2)


def test_dfs_unreadable_is_shown_not_fatal(served, monkeypatch):
    def broken():
        raise RuntimeError("AccessDenied: dynamodb:Query\nsecond line")

    snap = Gatherer(served["api"], broken).snapshot()
    assert snap["dfs"]["error"] == "AccessDenied: dynamodb:Query" and snap["streams"] == []


def _get(server: DashboardServer, path: str, host: str | None = None):
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
    answer = conn.getresponse()
    body = answer.read().decode()
    conn.close()
    return answer.status, answer.getheader("Content-Type"), body


def test_server_routes_and_no_authkey_in_any_answer(served):
    _run(served["queue"])
    server = DashboardServer(Gatherer(served["api"]), port=0).start()
    try:
        assert server.server_address[0] == "127.0.0.1"
        answers = {p: _get(server, p) for p in ("/", "/static/app.js", "/static/style.css")}
        assert all(status == 200 for status, _, _ in answers.values())
        assert answers["/static/app.js"][1].startswith("text/javascript")
        assert 'src="/static/app.js"' in answers["/"][2]
        status, kind, body = _get(server, "/api/snapshot")
        assert status == 200 and kind == "application/json"
        assert json.loads(body)["totals"]["errors"] == 1
        status, _, page = _get(server, "/job/s1/job-2")
        assert status == 200 and "<pre id='record'>" in page and "bad 2" in page
        status, _, record = _get(server, "/api/job/s1/job-2")
        assert status == 200 and json.loads(record)["status"] == "error"
        status, _, missing = _get(server, "/api/job/s1/nope")
        assert status == 404 and json.loads(missing)["error"]
        assert _get(server, "/etc/passwd")[0] == 404
        # a page that rebinds its own name to 127.0.0.1 gets nothing
        assert _get(server, "/api/snapshot", host="evil.example:80")[0] == 403
        everything = [*(b for _, _, b in answers.values()), body, page, record]
        assert not [b for b in everything if AUTHKEY in b]
    finally:
        server.stop()


def test_cli_bad_port_is_a_usage_error_and_a_taken_port_one_line(served, capsys):
    from impetus.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["dashboard", "--port", "http"])
    assert exit_info.value.code == 2 and "port number" in capsys.readouterr().err
    taken = DashboardServer(Gatherer(served["api"]), port=0)
    try:
        port = str(taken.server_address[1])
        assert main(["dashboard", "--port", port, "--no-browser"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"impetus: error: cannot listen on 127.0.0.1:{port}")
        assert err.count("\n") == 1
    finally:
        taken.server_close()


class CountingApi(ApiClient):
    """The real client, counting its job listings."""

    listings = 0

    def list_jobs(self, *args, **kwargs):
        self.listings += 1
        return super().list_jobs(*args, **kwargs)


def test_retries_shown_and_a_settled_stream_is_not_listed_again(served):
    queue = served["queue"]
    queue.create_stream("s1", {"retries": 1, "retry_backoff": 0})
    body = job_batch(2)
    queue.enqueue("s1", body["jobs"], body["functions"], body["python"])
    claim = queue.claim("s1", "node-a", max_jobs=1, lease=60)
    raised = Outcome(jobs.ERROR, error={"error": "boom", "type": "E"}, failure=jobs.EXCEPTION)
    queue.complete(claim, {claim.jobs[0].id: raised})  # runs again (attempt 1)
    api = CountingApi(ClientSettings.resolve(), max_attempts=2)
    gatherer = Gatherer(api)
    first = gatherer.snapshot()["streams"][0]
    assert first["retried"] == 1 and first["errors"] == 0 and api.listings == 1
    assert gatherer.snapshot()["streams"][0]["retried"] == 1 and api.listings == 1
    for _ in range(2):
        claim = queue.claim("s1", "node-a", max_jobs=1, lease=60)
        queue.complete(claim, {claim.jobs[0].id: Outcome(READY, result=codec.dumps(1))})
    last = gatherer.snapshot()["streams"][0]
    assert api.listings == 2 and last["stages"][0]["done"] == 2 and last["retried"] == 1
