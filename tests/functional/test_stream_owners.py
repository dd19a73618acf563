"""Streams have owners (issue 15): the authkey lets one run code on nodes, not read,
change or poison another client's stream; a client unpickles only what it can verify.

The API handler runs in-process on moto (``conftest_api``), behind a local HTTP server
where a real client talks to it; the node's side is the storage layer and the node's gate
(claim, check, complete), as a node agent runs them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest_api import AUTHKEY, Api
from test_api import job_batch

from impetus import Executor, Impetus
from impetus.api_client import ApiClient
from impetus.core import codec, streamauth
from impetus.core.config import AwsSettings, ClientSettings
from impetus.core.jobs import ERROR, READY, Outcome, system_error
from impetus.core.signing import KeyLoader
from impetus.forks import ForkSender, FunctionTable
from impetus.ledger import STARTUP, JobLedger
from impetus.local.apiserver import ApiServer
from impetus.progress import Progress
from impetus.results import ResultCollector
from impetus.session import StreamDeleted, StreamSession
from impetus.storage import dynamo
from impetus.storage.queue import Queue
from impetus.streamkeys import KeyStore, NoStreamKey
from node_agent.gate import JobGate

pytest_plugins = ["conftest_api"]


# --- the API: another authkey holder without the stream key ----------------------------------
def _victim(api: Api) -> str:
    """A stream with one job, a store key and a finished result; returns its key."""
    created = api.post("/streams", {"id": "victim"})
    assert created.status == 201 and streamauth.KEY_PATTERN.match(created.body["stream_key"])
    assert api.post("/streams/victim/jobs", job_batch(2)).status == 200
    assert api.put("/streams/victim/store/k", {"value": 1}).status == 200
    return created.body["stream_key"]


def _routes() -> list[tuple[str, str, object]]:
    holder = "a" * 32
    return [
        ("GET", "/streams/victim", None),
        ("PATCH", "/streams/victim", {"properties": {"mpps": 2}}),
        ("GET", "/streams/victim/jobs", None),
        ("GET", "/streams/victim/jobs/job-0", None),
        ("POST", "/streams/victim/jobs", job_batch(1, stage="stage1")),
        ("POST", "/streams/victim/payloads", {"count": 1}),
        ("GET", "/streams/victim/results?stage=stage1", None),
        ("POST", "/streams/victim/results/ack", {"ids": ["job-0"]}),
        ("POST", "/streams/victim/cancel", {"ids": ["job-0"]}),
        ("PUT", "/streams/victim/collector", {"holder": holder, "ttl": 30}),
        ("DELETE", f"/streams/victim/collector/{holder}", None),
        ("GET", "/streams/victim/store", None),
        ("GET", "/streams/victim/store/k", None),
        ("PUT", "/streams/victim/store/k", {"value": 2}),
        ("DELETE", "/streams/victim/store/k", None),
        ("DELETE", "/streams/victim", None),
    ]


def _call(api: Api, method: str, path: str, body: object, **kw):
    path, _, query = path.partition("?")
    return api.call(method, path, body, query=query, **kw)


def test_another_authkey_holder_cannot_touch_a_victims_stream(api: Api):
    """Every route on a stream: no key header -> 401, another stream's key -> 403, each
    with an {error, message} body and nothing changed; the owner passes."""
    _victim(api)
    mallory = api.post("/streams", {"id": "mallory"}).body["stream_key"]
    for method, path, body in _routes():
        missing = _call(api, method, path, body, stream_key=None)
        assert missing.status == 401, (method, path, missing.body)
        assert missing.body["error"] == "stream_key_required" and missing.body["message"]
        wrong = _call(api, method, path, body, stream_key=mallory)
        assert wrong.status == 403, (method, path, wrong.body)
        assert wrong.body["error"] == "forbidden" and "victim" in wrong.body["message"]
    # Nothing moved: the jobs, the store value, the stream are all still there.
    stream = api.get("/streams/victim").body
    assert stream["counts"]["forked"] == 2 and stream["properties"] == {}
    assert api.get("/streams/victim/store/k").body["value"] == 1
    # ... and the owner may do each of those things.
    for method, path, body in _routes():
        answer = _call(api, method, path, body)
        assert answer.status in (200, 201), (method, path, answer.body)


def test_creating_an_existing_id_hands_out_no_key(api: Api):
    key = _victim(api)
    taken = api.post("/streams", {"id": "victim"}, stream_key=None)
    assert taken.status == 409 and taken.body["error"] == "stream_exists"
    assert "stream_key" not in taken.body and key not in str(taken.body)
    forged = api.post("/streams", {"id": "victim"}, stream_key="0" * 64)
    assert forged.status == 409 and "stream_key" not in forged.body
    again = api.post("/streams", {"id": "victim"})  # the owner, with its key: idempotent
    assert again.status == 200 and "stream_key" not in again.body


def test_the_listing_shows_ids_and_counts_but_no_job_contents(api: Api):
    key = _victim(api)
    listed = api.get("/streams", stream_key=None)
    assert listed.status == 200
    (victim,) = [s for s in listed.body["streams"] if s["id"] == "victim"]
    assert set(victim) <= {"id", "properties", "counts", "created", "status"}
    assert key not in str(listed.body)


def test_a_stream_created_again_under_its_id_kills_the_old_key(api: Api):
    old = _victim(api)
    assert api.delete("/streams/victim").status == 200
    new = api.post("/streams", {"id": "victim"}, stream_key=None).body["stream_key"]
    assert new != old
    assert api.get("/streams/victim", stream_key=old).status == 403
    assert api.get("/streams/victim", stream_key=new).status == 200


# --- the client, on the API served over HTTP -------------------------------------------------
class Marker:
    """Unpickling this creates a file: the proof that something was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def square(x):
    return x * x


@pytest.fixture
def served(api_aws, monkeypatch, tmp_path):
    """The API handler behind a local HTTP server, a home for keys, and a node's queue."""
    from lambdas.api import app as api_app

    api_app.reset_state()
    server = ApiServer().start()
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path / "home"))
    settings = AwsSettings.from_env()
    yield {"url": server.url, "queue": Queue(settings), "settings": settings, **api_aws}
    server.stop()
    api_app.reset_state()


def _client(url: str, stream_id: str = "victim"):
    session = StreamSession.open(url, AUTHKEY, stream_id)
    functions = FunctionTable()
    ledger = JobLedger(("s1",))
    sender = ForkSender(session, functions, ledger, lambda cb: ("s1", STARTUP))
    handed: list = []
    collector = ResultCollector(
        session, functions, ledger, None, lambda stage, r, e: handed.append((r, e))
    )
    return session, sender, collector, handed


def _run_as_node(served, stream_id: str, results: dict) -> None:
    """Claim, check each job at the node's gate, complete with ``results`` (job id ->
    Outcome; default: the job's square)."""
    queue = served["queue"]
    gate = JobGate(KeyLoader(served["settings"]).signer)
    claimed = 0
    while claim := queue.claim(stream_id, "node-1", max_jobs=50, lease=60):
        outcomes = {}
        for job in claim.jobs:
            refused = gate.check(job)
            outcomes[job.id] = (
                refused
                or results.get(job.id)
                or Outcome(READY, result=codec.dumps(square(codec.loads(job.args))))
            )
        queue.complete(claim, outcomes)
        claimed += len(claim.jobs)
    assert claimed


def _entries(served, stream_id: str) -> list[tuple[dict, str, dict, dict]]:
    """(chunk key, index, result entry, chunk) of the stream's finished jobs (the table)."""
    queue = served["queue"]
    out = []
    for chunk in dynamo.scan(served["dynamodb"], TableName=queue.tables["queue"]):
        if chunk.get("stream") == stream_id:
            for index, entry in chunk.get("results", {}).items():
                out.append(({"pk": chunk["pk"], "sk": chunk["sk"]}, index, entry, chunk))
    return out


def _put_entry(served, key: dict, index: str, entry: dict) -> None:
    served["dynamodb"].update_item(
        TableName=served["queue"].tables["queue"],
        Key=dynamo.serialize(key),
        UpdateExpression="SET #r.#i = :e",
        ExpressionAttributeNames={"#r": "results", "#i": index},
        ExpressionAttributeValues={":e": dynamo.serialize_value(entry)},
    )


def _errors_by_id(handed) -> dict[str, dict]:
    return {job["id"]: job for _, errors in handed for job in errors}


def test_tampered_unsealed_or_moved_outcomes_are_integrity_errors_never_unpickled(served, tmp_path):
    marker = tmp_path / "unpickled"
    session, sender, collector, handed = _client(served["url"])
    for i in range(5):
        sender.fork(square, codec.dumps(i), job_id=f"j{i}")
    sender.flush()
    _run_as_node(served, "victim", {})
    evil = codec.dumps(Marker(marker))
    entries = {c["jobs"][int(i)]: (key, i, e) for key, i, e, c in _entries(served, "victim")}
    key, index, entry = entries["j1"]
    _put_entry(served, key, index, dict(entry, r=evil))  # tampered: the MAC stays
    key, index, entry = entries["j2"]
    _put_entry(served, key, index, {k: v for k, v in entry.items() if k != "m"} | {"r": evil})
    key, index, _ = entries["j3"]
    _put_entry(served, key, index, entries["j0"][2])  # j0's sealed outcome, moved to j3
    key, index, entry = entries["j4"]  # an error record forged without a MAC
    forged = {"s": ERROR, "a": 0, "e": system_error("Boom", "forged", "square")}
    _put_entry(served, key, index, forged)
    collector.receive("s1")
    errors = _errors_by_id(handed)
    ready = {job["id"]: job for r, _ in handed for job in r}
    assert ready == {"j0": ready["j0"]} and ready["j0"]["result"] == 0
    assert ready["j0"]["args"] == 0
    for job_id in ("j1", "j2", "j3", "j4"):
        record = errors[job_id]["result"]
        assert record["type"] == "integrity", (job_id, record)
        assert errors[job_id]["args"] is None
    assert "does not verify" in errors["j1"]["result"]["error"]
    assert "not authenticated" in errors["j2"]["result"]["error"]
    assert "does not verify" in errors["j3"]["result"]["error"]
    assert not marker.exists()
    session.close()


def test_args_the_client_did_not_fork_or_that_differ_are_never_unpickled(served, tmp_path):
    """Args injected at the storage layer (the job refused by the node for its Python,
    as in the reported attack) and args changed in the table after the client forked
    them: neither is unpickled; the job is reported."""
    marker = tmp_path / "unpickled"
    session, sender, collector, handed = _client(served["url"])
    sender.fork(square, codec.dumps(3), job_id="mine")
    sender.flush()
    body = job_batch(1, stage="s1")
    injected = dict(body["jobs"][0], id="injected", args=codec.dumps(Marker(marker)))
    served["queue"].enqueue("victim", [injected], body["functions"], "2.7")
    _run_as_node(served, "victim", {})
    jobs_table = served["queue"].tables["jobs"]
    served["dynamodb"].update_item(
        TableName=jobs_table,
        Key=dynamo.serialize({"stream": "victim", "job": "mine"}),
        UpdateExpression="SET #a = :a",
        ExpressionAttributeNames={"#a": "args"},
        ExpressionAttributeValues={":a": {"S": codec.dumps(Marker(marker))}},
    )
    collector.receive("s1")
    errors = _errors_by_id(handed)
    assert errors["injected"]["args"] is None
    assert errors["injected"]["result"]["type"] == "python"  # the node's sealed verdict
    assert errors["mine"]["args"] is None
    assert errors["mine"]["result"]["type"] == "integrity"
    assert "differ from what this client forked" in errors["mine"]["result"]["error"]
    assert not marker.exists()
    session.close()


def test_a_result_the_node_sealed_is_delivered_with_its_args(served):
    session, sender, collector, handed = _client(served["url"])
    sender.fork(square, codec.dumps(7), job_id="j")
    sender.flush()
    _run_as_node(served, "victim", {})
    collector.receive("s1")
    ((ready, errors),) = handed
    assert errors == [] and [(j["args"], j["result"]) for j in ready] == [(7, 49)]
    # A client restarted with the id has no digest of that fork: the node's seal vouches.
    session.close()
    again, _, collector2, handed2 = _client(served["url"])
    assert again.key == session.key
    collector2.receive("s1")
    ((ready2, _),) = handed2
    assert [(j["args"], j["result"]) for j in ready2] == [(7, 49)]
    again.close()


def test_restart_with_the_same_id_resumes_and_others_have_no_key(served, tmp_path, monkeypatch):
    first = StreamSession.open(served["url"], AUTHKEY, "resume")
    path = KeyStore(served["url"]).path("resume")
    assert path.read_text().strip() == first.key
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    first.close()
    second = StreamSession.open(served["url"], AUTHKEY, "resume")
    assert second.key == first.key
    second.store["x"] = 1
    second.close()
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path / "someone-else"))
    with pytest.raises(NoStreamKey, match="no key for stream resume"):
        StreamSession.open(served["url"], AUTHKEY, "resume")


class Waits(Impetus):
    @Impetus.startup
    def start(self):
        self.fork(square, 2)

    @Impetus.process
    def stage1(self, ready, errors):
        pass


def test_a_deleted_stream_ends_a_running_client_with_one_line(served, tmp_path):
    app = Waits(served["url"], AUTHKEY, taskdir=tmp_path / "tasks", id="doomed")
    failure: list[BaseException] = []

    def run():
        try:
            app.run(progress=Progress(open(tmp_path / "progress", "w")))  # noqa: SIM115
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)  # the client is polling for a result no node will produce
    owner = ApiClient(ClientSettings(served["url"], AUTHKEY))  # the same user: its key
    assert owner.use_filed_key("doomed")
    owner.delete_stream("doomed")
    thread.join(30)
    assert not thread.is_alive()
    (exc,) = failure
    assert isinstance(exc, StreamDeleted)
    assert str(exc) == "stream doomed was deleted while this client ran (by a holder of its key)"


def test_a_lease_reaped_as_lost_arrives_as_lost_with_the_clients_own_args(served):
    """DFS reaps without the signing key: its `lost` error has no MAC. The client passes
    it on as the error it is, unpickling only the args its own fork digest vouches for."""
    session, sender, collector, handed = _client(served["url"], "reaped")
    session.api.update_properties("reaped", {"max_attempts": 1})
    sender.fork(square, codec.dumps(5), job_id="j")
    sender.flush()
    queue = served["queue"]
    assert queue.claim("reaped", "node-1", max_jobs=5, lease=-1.0) is not None  # expired
    assert queue.reap("reaped") == 1
    collector.receive("s1")
    ((ready, errors),) = handed
    assert ready == [] and [(j["id"], j["args"]) for j in errors] == [("j", 5)]
    assert errors[0]["result"]["type"] == "lost"
    session.close()


def test_an_executor_whose_stream_is_deleted_fails_its_futures_at_once(served):
    with Executor(served["url"], AUTHKEY, id="exec") as ex:
        future = ex.submit(square, 4)
        owner = ApiClient(ClientSettings(served["url"], AUTHKEY))
        assert owner.use_filed_key("exec")
        owner.delete_stream("exec")
        with pytest.raises(StreamDeleted, match="stream exec was deleted"):
            future.result(timeout=30)
