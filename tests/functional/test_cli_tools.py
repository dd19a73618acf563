"""The inspection commands against the real API handler (served over HTTP) on moto.

`impetus streams|stream|jobs|job|store|nodes|watch` run in-process through
``impetus.cli.main``: output, ``--json``, exit codes and one-line errors.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest_api import AUTHKEY
from test_api import job_batch

from impetus.cli import main
from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.core.jobs import READY, Outcome
from impetus.local.apiserver import ApiServer
from impetus.storage.joblist import ORDER
from impetus.storage.nodes import NodeBeat, Nodes, NodeStats
from impetus.storage.queue import Queue
from impetus.streamkeys import KeyStore

pytest_plugins = ["conftest_api"]


class OwnedQueue(Queue):
    """The queue, whose streams this user created: their keys are filed where the CLI
    looks for them (as a client that created them through the API would have)."""

    def __init__(self, keys: KeyStore) -> None:
        super().__init__(AwsSettings.from_env())
        self.keys = keys

    def create_stream(self, stream_id=None, properties=None):
        description, created, key = self.create_owned_stream(stream_id, properties)
        if key:
            self.keys.save(description["id"], key)
        return description, created


@pytest.fixture
def served(api_aws, monkeypatch, tmp_path):
    """The API handler behind a local HTTP server; the CLI configured to use it."""
    from lambdas.api import app as api_app

    api_app.reset_state()
    server = ApiServer().start()
    monkeypatch.setenv("IMPETUS_API_URL", server.url)
    monkeypatch.setenv("IMPETUS_AUTHKEY", AUTHKEY)
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path / "home"))
    keys = KeyStore(server.url)
    yield {"queue": OwnedQueue(keys), "keys": keys, **api_aws}
    server.stop()
    api_app.reset_state()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _stream_with_jobs(queue: Queue, n: int = 3) -> None:
    queue.create_stream("s1", {"mpps": 3, "name": "squares"})
    body = job_batch(n)
    queue.enqueue("s1", body["jobs"], body["functions"], body["python"])


def test_streams_and_stream_show(served, capsys):
    assert run(capsys, "streams") == (0, "no streams\n", "")
    _stream_with_jobs(served["queue"])
    code, out, _ = run(capsys, "streams")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:4] == ["STREAM", "NAME", "WAITING", "DELAYED"]
    assert row.split()[:3] == ["s1", "squares", "3"]
    code, out, _ = run(capsys, "streams", "--json")
    (stream,) = json.loads(out)
    assert stream["id"] == "s1" and stream["counts"]["forked"] == 3
    assert stream["name"] == "squares"
    code, out, _ = run(capsys, "stream", "show", "s1")
    assert code == 0 and "waiting 3" in out and '"mpps": 3' in out
    assert out.startswith("stream s1 'squares' (created")
    code, out, _ = run(capsys, "stream", "show", "s1", "--json")
    shown = json.loads(out)
    assert shown["properties"] == {"mpps": 3, "name": "squares"} and shown["name"] == "squares"


def test_stream_delete_then_unknown_stream_is_one_line_exit_1(served, capsys):
    _stream_with_jobs(served["queue"])
    assert run(capsys, "stream", "delete", "s1") == (0, "deleted stream s1\n", "")
    for argv in (("stream", "show", "s1"), ("jobs", "s1"), ("store", "s1", "ls")):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (1, ""), argv
        assert err.startswith("impetus: error: ") and "'s1'" in err, argv
        assert err.count("\n") == 1 and "Traceback" not in err


def test_jobs_lists_and_filters(served, capsys):
    queue = served["queue"]
    _stream_with_jobs(queue)
    claim = queue.claim("s1", "node-a", max_jobs=1, lease=60)
    queue.complete(
        claim, {claim.jobs[0].id: Outcome(READY, result=codec.dumps(1), started=1, finished=1.5)}
    )
    code, out, _ = run(capsys, "jobs", "s1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "NAME", "STAGE", "STATUS", "NODE", "ATTEMPT", "TIME"]
    assert lines[1].split() == ["job-0", "square", "stage1", "ready", "node-a", "0", "0.500s"]
    assert lines[-1] == f"3 jobs of stream s1 (squares), {ORDER}"
    code, out, _ = run(capsys, "jobs", "s1", "--status", "waiting", "--limit", "1")
    assert out.splitlines()[-1].endswith(" (showing 1; --limit for more)")
    assert out.splitlines()[-1].startswith("2 waiting jobs of stream s1")
    code, out, _ = run(capsys, "jobs", "s1", "--status", "ready", "--json")
    (job,) = json.loads(out)  # the list alone, no {count, jobs} wrapper
    assert job["id"] == "job-0" and job["status"] == "ready"
    code, out, _ = run(capsys, "job", "s1", "job-0")
    assert code == 0 and "status:    ready" in out and "time:      0.500s" in out
    (line,) = [t for t in out.splitlines() if t.startswith("timeline:")]
    assert "ran 0.5 s" in line and line.endswith("(node-a w?)")  # no slot in this outcome


@pytest.mark.parametrize(
    "argv",
    [("jobs", "s1", "--status", "done"), ("jobs", "s1", "--limit", "0"), ("jobs",), ("store",)],
)
def test_usage_errors_exit_2(served, capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("impetus") and "error:" in err and "Traceback" not in err


def test_store_commands(served, capsys):
    served["queue"].create_stream("s1", {})
    assert run(capsys, "store", "s1", "put", "n", "42")[0] == 0
    assert run(capsys, "store", "s1", "put", "word", "hello")[0] == 0
    assert run(capsys, "store", "s1", "put", "quoted", "42", "--string")[0] == 0
    assert run(capsys, "store", "s1", "put", "doc", '{"a": [1, 2]}')[0] == 0
    assert served["queue"].store_get("s1", "n") == 42
    assert served["queue"].store_get("s1", "quoted") == "42"
    assert run(capsys, "store", "s1", "get", "word") == (0, "hello\n", "")
    assert run(capsys, "store", "s1", "get", "word", "--json") == (0, '"hello"\n', "")
    assert run(capsys, "store", "s1", "get", "doc") == (0, '{"a": [1, 2]}\n', "")
    assert run(capsys, "store", "s1", "ls") == (0, "doc\nn\nquoted\nword\n", "")
    code, out, _ = run(capsys, "store", "s1", "ls", "--json")
    assert json.loads(out) == [{"key": k} for k in ("doc", "n", "quoted", "word")]
    assert run(capsys, "store", "s1", "del", "n") == (0, "", "")
    code, out, err = run(capsys, "store", "s1", "get", "n")
    assert (code, out) == (1, "") and err == "impetus: error: no key 'n' in the store of 's1'\n"
    code, _, err = run(capsys, "store", "s1", "del", "n")
    assert code == 1 and "no key 'n'" in err


def _beat(served, node_id: str, **stats) -> None:
    now = time.time()
    Nodes.for_prefix(served["dynamodb"], "test").heartbeat(
        NodeBeat(
            node_id=node_id, host="h", pid=1, started=now - 100, at=now, interval=5,
            properties={"gpu": "1"}, mpps=2, stats=NodeStats(**stats), state="running",
        )
    )  # fmt: skip


def test_nodes(served, capsys):
    assert run(capsys, "nodes") == (0, "no live nodes\n", "")
    _beat(served, "n1", workers_total=2, workers_busy=1, jobs_done=9, streams=["s1"])
    code, out, _ = run(capsys, "nodes")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NODE", "STATE", "BUSY/WORKERS", "JOBS", "STREAMS", "BEAT", "FILTER"]
    assert row.split()[:5] == ["n1", "running", "1/2", "9", "1"] and row.endswith("gpu:1")
    code, out, _ = run(capsys, "nodes", "--json")
    assert code == 0 and json.loads(out)[0]["jobs_done"] == 9


def test_watch_once_draws_one_frame_with_rates(served, capsys):
    queue = served["queue"]
    _stream_with_jobs(queue, 4)
    _beat(served, "n1", workers_total=2, workers_busy=2, jobs_done=0, streams=["s1"])
    code, out, err = run(capsys, "watch", "--once", "--interval", "0.2")
    assert (code, err) == (0, "")
    assert "STREAM" in out and "s1" in out and "no live nodes" not in out
    assert "backlog 4 · claimed 0 · running 0 · done/s 0.0 · errors 0" in out
    assert "nodes 1 · workers 2/2 busy" in out
    assert "squares" in out  # the stream's name next to its id
    assert "\x1b[" not in out  # not a terminal: plain text
    code, out, err = run(capsys, "watch", "nope", "--once")
    assert (code, out, err) == (1, "", "impetus: error: no stream 'nope'\n")


def test_api_down_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("IMPETUS_API_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("IMPETUS_AUTHKEY", "k")
    code, out, err = run(capsys, "streams")
    assert code == 1 and out == "" and err.startswith("impetus: error: ")
    assert err.count("\n") == 1


def test_no_api_configured_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path))
    code, _, err = run(capsys, "nodes")
    assert code == 1 and "impetus local up" in err and err.count("\n") == 1


def test_a_stream_whose_key_this_user_lacks_is_one_line_exit_1(served, capsys):
    """Another client's stream: the listing shows it, every command on it says whose key
    is missing (one line, exit 1) and touches nothing."""
    _stream_with_jobs(served["queue"])
    served["keys"].forget("s1")  # as if another client had created it
    code, out, _ = run(capsys, "streams")
    assert code == 0 and "s1" in out
    for argv in (
        ("stream", "show", "s1"),
        ("stream", "delete", "s1"),
        ("jobs", "s1"),
        ("job", "s1", "j0"),
        ("store", "s1", "ls"),
        ("store", "s1", "put", "k", "1"),
        ("watch", "s1", "--once"),
    ):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (1, ""), argv
        assert err == "impetus: error: no key for stream s1 (created by another client?)\n"
    assert served["queue"].get_stream("s1")["counts"]["waiting"] == 3  # still there
    assert served["queue"].store_keys("s1") == []


def test_a_stream_key_filed_by_the_client_is_private(served):
    served["queue"].create_stream("mine", {})
    path = served["keys"].path("mine")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


def test_cancel_jobs_one_line_each_exit_1_when_one_was_not_cancelled(served, capsys):
    queue = served["queue"]
    _stream_with_jobs(queue, 4)
    claim = queue.claim("s1", "node-1", 1, lease=60)
    assert [j.id for j in claim.jobs] == ["job-0"]
    assert run(capsys, "cancel", "s1", "job-1") == (0, "job-1: cancelled\n", "")
    code, out, _ = run(capsys, "cancel", "s1", "job-0", "job-2")
    assert code == 1
    assert out == "job-2: cancelled\njob-0: running or done (not cancelled)\n"
    code, out, _ = run(capsys, "cancel", "s1", "--json")
    assert code == 0 and json.loads(out)["cancelled"] == ["job-3"]
    assert run(capsys, "cancel", "s1") == (0, "no waiting jobs\n", "")


def test_every_listing_json_is_one_array_of_objects_with_the_same_keys(served, capsys):
    """docs/cli.md, "JSON output": lists are arrays of objects sharing one key set, even
    when the rows differ (a named and an unnamed stream, a finished and a waiting job,
    nodes with and without properties)."""
    queue = served["queue"]
    _stream_with_jobs(queue)
    queue.create_stream("s2", {})  # no name, no jobs
    claim = queue.claim("s1", "node-a", max_jobs=1, lease=60)
    queue.complete(
        claim, {claim.jobs[0].id: Outcome(READY, result=codec.dumps(1), started=1, finished=2)}
    )
    _beat(served, "n1", workers_total=2, workers_busy=1, jobs_done=9, streams=["s1"])
    _beat(served, "n2", workers_total=4)
    assert run(capsys, "store", "s1", "put", "a", "1")[0] == 0
    assert run(capsys, "store", "s1", "put", "b", "[2]")[0] == 0
    for argv in (("streams",), ("jobs", "s1"), ("nodes",), ("store", "s1", "ls")):
        code, out, err = run(capsys, *argv, "--json")
        assert (code, err) == (0, ""), argv
        rows = json.loads(out)
        assert isinstance(rows, list) and len(rows) >= 2, argv
        assert all(isinstance(r, dict) for r in rows), argv
        assert len({frozenset(r) for r in rows}) == 1, (argv, rows)
    streams = json.loads(run(capsys, "streams", "--json")[1])
    assert {s["id"]: s["name"] for s in streams} == {"s1": "squares", "s2": None}


def test_jobs_are_listed_in_the_order_the_help_says_oldest_first_then_id(served, capsys):
    from impetus.cli.main import build_parser

    queue = served["queue"]
    queue.create_stream("s1", {})
    later = job_batch(1)
    later["jobs"][0]["id"] = "a-sent-second"  # sorts first by id
    first = job_batch(2)
    first["jobs"][0]["id"], first["jobs"][1]["id"] = "z-sent-first", "y-sent-first"
    queue.enqueue("s1", first["jobs"], first["functions"], first["python"])
    time.sleep(0.01)  # a later enqueue time
    queue.enqueue("s1", later["jobs"], later["functions"], later["python"])
    code, out, _ = run(capsys, "jobs", "s1", "--json")
    assert code == 0
    # one batch shares its time: the id breaks the tie (y before z); then the later batch
    assert [j["id"] for j in json.loads(out)] == ["y-sent-first", "z-sent-first", "a-sent-second"]
    jobs_help = build_parser()._subparsers._group_actions[0].choices["jobs"].format_help()
    assert "oldest first" in " ".join(jobs_help.split()) and "fork order" not in jobs_help
