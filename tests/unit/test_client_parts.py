"""The client's parts on their own (session, fork sender, result collector, ledger) and the
executor built on them, against the ApiClient test double of test_client_run."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
from test_client_run import FakeApi, impetus_home  # noqa: F401  (autouse fixture)

from impetus import Executor, mapping, taskfiles
from impetus.core import codec
from impetus.core.exceptions import ApiError, CollectorBusy
from impetus.forks import FLUSH_JOBS, ForkSender, FunctionTable
from impetus.ledger import STARTUP, JobLedger, TaskFiles
from impetus.results import ResultCollector
from impetus.session import CollectorLease, StreamSession

IMPETUS = Path(__file__).resolve().parents[2] / "impetus"


class ChunkingApi(FakeApi):
    """The double returning job properties too, as the API does (chunk jobs carry theirs)."""

    def _finish(self, job):
        super()._finish(job)
        job["done"]["properties"] = job["spec"].get("properties")


class ThreadSafeApi(ChunkingApi):
    """The double behind a lock: the executor calls it from two threads."""

    def __init__(self, settings=None):
        super().__init__(settings)
        self.lock = threading.RLock()
        self.closed = False

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name in ("create_stream", "enqueue", "results", "ack", "delete_stream"):
            lock = super().__getattribute__("lock")

            def locked(*args, **kwargs):
                with lock:
                    return attr(*args, **kwargs)

            return locked
        return attr

    def close(self):
        self.closed = True


def parts(api, stages=("s1",), files=None, route=None):
    session = StreamSession(api, "s", {})
    functions = FunctionTable()
    ledger = JobLedger(stages, files)
    route = route or (lambda callback: (callback or stages[0], STARTUP))
    handed: list[tuple[str, list, list]] = []
    sender = ForkSender(session, functions, ledger, route)
    collector = ResultCollector(
        session, functions, ledger, files, lambda stage, r, e: handed.append((stage, r, e))
    )
    return sender, collector, ledger, handed


def test_a_session_creates_its_stream_and_this_runs_properties_win():
    api = FakeApi()
    StreamSession(api, "s", {"mpps": 1})
    create = api.create_stream
    api.create_stream = lambda stream_id, properties: create(stream_id)  # as it exists
    session = StreamSession(api, "s", {"mpps": 2})
    assert session.id == "s" and session.properties == {"mpps": 2}
    assert ("update_properties", "s") in api.calls
    session.store["k"] = [1]
    assert dict(session.store) == {"k": [1]}
    session.delete()
    assert "s" not in api.streams

    def gone(stream_id):
        raise ApiError(404, "stream_not_found", stream_id)

    api.delete_stream = gone
    session.delete()  # a stream deleted already is fine


def test_session_open_checks_the_id_before_any_request():
    made = []
    with pytest.raises(ValueError):
        StreamSession.open("http://api.invalid", "key", "bad id", api_class=made.append)
    assert made == []


def test_no_lock_is_held_while_a_batch_is_posted():
    api = FakeApi()
    sender, _, _, _ = parts(api)
    real = api.enqueue
    during: list[threading.Thread] = []

    def enqueue(*args):
        if not during:  # another thread forks while the first batch is on its way
            other = threading.Thread(target=sender.fork, args=(abs, codec.dumps(-9)))
            during.append(other)
            other.start()
            other.join(5)
            assert not other.is_alive(), "fork blocked by the sender's lock during a POST"
            assert sender.sending == 1 and sender.buffered == 1
        return real(*args)

    api.enqueue = enqueue
    sender.fork(abs, codec.dumps(-1))
    sender.flush()  # the fork made meanwhile goes out in a second batch
    assert [c[1] for c in api.calls if c[0] == "enqueue"] == [1, 1]
    assert sender.idle


def test_a_full_buffer_is_sent_and_forks_are_deduplicated_by_id():
    api = FakeApi()
    sender, _, ledger, _ = parts(api)
    for i in range(FLUSH_JOBS + 1):
        sender.fork(abs, codec.dumps(i), job_id=f"j{i}")
    assert sender.fork(abs, codec.dumps(0), job_id="j0") == "j0"  # forked already
    assert [c[1] for c in api.calls if c[0] == "enqueue"] == [FLUSH_JOBS]
    assert sender.buffered == 1
    assert ledger.progress() == {"s1": {"forked": FLUSH_JOBS + 1, "processed": 0}}


def test_receive_hands_over_and_writes_but_leaves_the_ack_to_the_caller(tmp_path):
    api = FakeApi()
    files = TaskFiles(tmp_path, ("s1",))
    sender, collector, ledger, handed = parts(api, files=files)
    ids = [sender.fork(abs, codec.dumps(-i)) for i in range(3)]
    sender.flush()
    received = collector.receive("s1")
    assert sorted(received) == sorted(ids) and not api.acked
    assert [j["result"] for j in handed[0][1]] == [0, 1, 2]
    assert not ledger.has_outstanding("s1")
    assert collector.receive("s1") == received  # polled again before the ack: only ids
    assert len(handed) == 1
    collector.acknowledge(received)
    assert api.acked == set(ids) and collector.collect("s1") == 0
    files.close()
    assert len(taskfiles.read(tmp_path / "s1.ok")) == 3


def test_collected_chunks_reach_the_handler_as_items_and_mark_the_chunk_done():
    api = ChunkingApi()
    sender, collector, ledger, handed = parts(api)
    ids = sender.map(abs, [-1, -2, -3], chunksize=2)
    sender.flush()
    assert collector.collect("s1") == 2
    assert [(j["id"], j["result"]) for j in handed[0][1]] == list(zip(ids, [1, 2, 3], strict=True))
    chunk_id = ids[0].rsplit(":", 1)[0]
    assert ledger.is_done("s1", chunk_id, chunk=True)
    assert ledger.progress() == {"s1": {"forked": 2, "processed": 2}}


def test_the_ledger_starts_from_the_task_files(tmp_path):
    with open(tmp_path / "s1.ok", "w") as fh:
        taskfiles.write_line(fh, {"id": "old"})
        taskfiles.write_line(fh, {"id": mapping.item_id("chunk", 0)})
    ledger = JobLedger(("s1",), TaskFiles(tmp_path, ("s1",)))
    assert not ledger.add_fork("old", "s1", STARTUP)  # done: counted, not sent
    assert not ledger.add_fork("chunk", "s1", STARTUP, chunk=True)
    assert ledger.add_fork("new", "s1", STARTUP)
    assert ledger.progress() == {"s1": {"forked": 3, "processed": 2}}
    assert ledger.steps()[0] == (STARTUP, 3, 2, 0)
    ledger.forget_collected(["new"])  # acked by an earlier run, its line lost
    assert not ledger.has_outstanding("s1")


@pytest.fixture
def executor_api(monkeypatch):
    fake = ThreadSafeApi()
    monkeypatch.setattr(Executor, "api_class", staticmethod(lambda settings: fake))
    return fake


def test_the_executor_resolves_futures_acknowledges_and_deletes_its_stream(executor_api):
    with Executor("http://api.invalid", "secret-key", mpps=1) as ex:
        assert executor_api.streams[ex.id]["properties"] == {"mpps": 1, "name": "executor"}
        assert ex.submit(pow, 2, 10).result(timeout=10) == 1024
        assert list(ex.map(abs, [-1, -2, -3], chunksize=2, timeout=10)) == [1, 2, 3]
        with pytest.raises(ZeroDivisionError):
            ex.submit(divmod, 1, 0).result(timeout=10)
    assert ex.id not in executor_api.streams and executor_api.closed
    assert len(executor_api.acked) == 4  # one call, two chunks, one failed call


def test_the_executor_uses_its_parts_public_interfaces_only():
    """No ``other._private`` in the executor and the parts: each object's underscore
    members are its own (``self._x`` and ``self._x.public`` are fine)."""
    offences = []
    for name in ("executor", "forks", "results", "ledger", "session"):
        tree = ast.parse((IMPETUS / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not own and not node.attr.startswith("__"):
                offences.append(f"{name}.py:{node.lineno}: .{node.attr}")
    assert offences == []


class LeaseApi:
    """take_collector answers from a script: None = granted, a number = 409 with that
    Retry-After."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.released = []

    def take_collector(self, stream_id, holder, ttl):
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise ApiError(409, "conflict", "collected by another client", retry_after=answer)
        return {"holder": holder, "expires": 0.0}

    def release_collector(self, stream_id, holder):
        self.released.append(holder)
        return True


def test_a_restarted_client_waits_once_for_a_dead_clients_lease():
    api, slept = LeaseApi(3.0, None), []
    lease = CollectorLease(api, "s", sleep=slept.append)
    assert slept == [3.5] and not api.answers
    lease.release()
    lease.release()  # once only
    assert api.released == [lease.holder]


def test_a_second_client_on_a_live_stream_fails_clearly():
    api, slept = LeaseApi(30.0, 29.0), []
    with pytest.raises(CollectorBusy, match="another client is collecting stream 's'"):
        CollectorLease(api, "s", sleep=slept.append)
    assert slept == [30.5]
