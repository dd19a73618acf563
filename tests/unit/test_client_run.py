"""Client logic against a test double of ApiClient (unit tests only; e2e uses the real API).

The double keeps jobs in memory and "runs" them when results are asked for, decoding the
function sent by digest and the args exactly as a node would.
"""

from __future__ import annotations

import io
import secrets
import sys

import pytest

from impetus import Impetus, taskfiles
from impetus.core import codec, streamauth
from impetus.core.exceptions import ApiError, ImpetusError
from impetus.progress import Progress


class FakeApi:
    """Speaks the ApiClient method contract; records the calls. Like the API, it hands a
    new stream's key out once and MACs outcomes with it, as a node would."""

    url = "http://api.invalid"

    def __init__(self, settings=None):
        self.calls: list[tuple] = []
        self.streams: dict[str, dict] = {}
        self.keys: dict[str, str] = {}  # stream id -> its key (the "API"'s copy)
        self.held: dict[str, str] = {}  # stream id -> the key the client presented
        self.code: dict[str, str] = {}
        self.jobs: dict[str, dict] = {}  # id -> job (API shape)
        self.acked: set[str] = set()
        self.store: dict[str, object] = {}
        self.max_results = 1000

    def use_stream_key(self, stream_id, key):
        self.held[stream_id] = key

    def create_stream(self, stream_id=None, properties=None):
        self.calls.append(("create_stream", stream_id))
        if stream_id in self.streams:
            if self.held.get(stream_id) != self.keys[stream_id]:
                raise ApiError(409, "stream_exists", f"stream {stream_id!r} exists")
            stream = self.streams[stream_id]
            stream["properties"].update(properties or {})
            return dict(stream)
        stream = self.streams[stream_id] = {"id": stream_id, "properties": {}}
        stream["properties"].update(properties or {})
        self.keys[stream_id] = self.held[stream_id] = secrets.token_hex(32)
        return dict(stream, stream_key=self.keys[stream_id])

    def update_properties(self, stream_id, properties):
        self.calls.append(("update_properties", stream_id))
        self.streams[stream_id]["properties"].update(properties)
        return self.streams[stream_id]

    def take_collector(self, stream_id, holder, ttl):
        self.calls.append(("take_collector", stream_id))
        return {"holder": holder, "expires": 0.0}

    def release_collector(self, stream_id, holder):
        self.calls.append(("release_collector", stream_id))
        return True

    def delete_stream(self, stream_id):
        self.calls.append(("delete_stream", stream_id))
        del self.streams[stream_id]
        del self.keys[stream_id]
        return {"deleted": stream_id}

    def enqueue(self, stream_id, jobs, functions, python, cloudpickle):
        self.calls.append(("enqueue", len(jobs), sorted(functions)))
        assert len(jobs) <= 1000 and python == codec.PYTHON_VERSION
        assert cloudpickle == codec.CLOUDPICKLE_VERSION
        self.code.update(functions)
        accepted, existing, acked = [], [], []
        for spec in jobs:
            assert spec["code"] in self.code, "digest neither sent nor stored"
            if self.jobs.get(spec["id"], {}).get("stream") == stream_id:  # ids are per stream
                existing.append(spec["id"])
                if spec["id"] in self.acked:
                    acked.append(spec["id"])
                continue
            accepted.append(spec["id"])
            self.jobs[spec["id"]] = {"spec": spec, "stream": stream_id, "done": None}
            self.acked.discard(spec["id"])  # the same id in a new stream is a new job
        return {"accepted": accepted, "existing": existing, "acked": acked}

    def _finish(self, job):
        spec = job["spec"]
        try:
            value = codec.loads(self.code[spec["code"]])(codec.loads(spec["args"]))
            status, result = "ready", codec.dumps(value)
        except Exception as exc:
            status, result = "error", {"error": str(exc), "type": type(exc).__name__}
        job["done"] = {
            "id": spec["id"],
            "name": spec["name"],
            "args": spec["args"],
            "result": result,
            "status": status,
            "callback": spec["stage"],
            "client": job["stream"],
            "created": 1.0,
            "delay": spec.get("delay", 0),
            "priority": spec.get("priority", 0),
            "transport": None,
            "code": spec["code"],
            "attempt": 1,
            "args_verified": True,
        }
        job["done"]["outcome_mac"] = self.seal(job["stream"], job["done"])

    def seal(self, stream_id, done):
        """The MAC a node would write with this outcome."""
        facts = streamauth.OutcomeFacts(
            stream=stream_id,
            job=done["id"],
            attempt=done["attempt"],
            status=done["status"],
            code=done["code"],
            args_digest=streamauth.sha256_hex(done["args"]),
            result_digest=streamauth.sha256_hex(done["result"])
            if done["status"] == "ready"
            else "",
            result_ref="",
            error_digest=streamauth.error_digest(done["result"])
            if done["status"] == "error"
            else "",
        )
        return streamauth.outcome_mac(self.keys[stream_id], facts)

    def results(self, stream_id, stage, limit=500):
        self.calls.append(("results", stage))
        out = []
        for jid, job in self.jobs.items():
            if jid in self.acked or job["spec"]["stage"] != stage:
                continue
            if job["done"] is None:
                self._finish(job)
            out.append(job["done"])
        return out[: min(limit, self.max_results)]

    def results_page(self, stream_id, stage, limit=500):
        return {"jobs": self.results(stream_id, stage, limit), "started": []}

    def ack(self, stream_id, ids):
        self.calls.append(("ack", len(ids)))
        self.acked.update(ids)
        return len(ids)

    def store_get(self, stream_id, key):
        if key not in self.store:
            raise ApiError(404, "key_not_found", key)
        return self.store[key]

    def store_put(self, stream_id, key, value):
        self.store[key] = value

    def store_delete(self, stream_id, key):
        if key not in self.store:
            raise ApiError(404, "key_not_found", key)
        del self.store[key]

    def store_keys(self, stream_id):
        return sorted(self.store)

    def count(self, name):
        return sum(1 for call in self.calls if call[0] == name)


@pytest.fixture(autouse=True)
def impetus_home(tmp_path, monkeypatch):
    """Stream keys and the task-file key go to a home of the test's own."""
    home = tmp_path / "impetus-home"
    monkeypatch.setenv("IMPETUS_HOME", str(home))
    return home


@pytest.fixture
def api(monkeypatch):
    """Every Impetus created in the test talks to this one double."""
    fake = FakeApi()
    monkeypatch.setattr(Impetus, "api_class", staticmethod(lambda settings: fake))
    return fake


def make(cls, tmp_path, **kwargs):
    return cls("http://api.invalid", "secret-key", taskdir=tmp_path, **kwargs)


def quiet():
    return Progress(io.StringIO())


class Hello(Impetus):
    @Impetus.node
    def pow(i):
        return i * i

    @Impetus.startup
    def start(self):
        self.total = 0
        self.failed = 0
        for i in range(self.n):
            self.fork(self.pow, args=i)

    @Impetus.process
    def stage1(self, ready, errors):
        self.total += sum(job["result"] for job in ready)
        self.failed += len(errors)

    @Impetus.shutdown
    def stop(self, ready, errors, progress):
        self.final = (ready, errors, progress)


def test_helloworld_flow_batches_forks_and_writes_task_files(api, tmp_path):
    app = make(Hello, tmp_path)
    app.n = 1200
    app.run(progress=quiet())
    assert app.total == sum(i * i for i in range(1200))
    assert app.failed == 0
    # 1200 forks -> 3 POSTs (500, 500, 200); the function travels in the first only
    enqueues = [c for c in api.calls if c[0] == "enqueue"]
    assert [c[1] for c in enqueues] == [500, 500, 200]
    assert len(enqueues[0][2]) == 1 and enqueues[1][2] == [] and enqueues[2][2] == []
    lines = (tmp_path / app.id / "stage1.ok").read_text().splitlines()
    assert len(lines) == 1200
    ready, errors, progress = app.final
    assert len(ready["stage1"]) == 1200 and errors == {"stage1": []}
    assert progress == {"stage1": {"forked": 1200, "processed": 1200}}
    job = ready["stage1"][0]
    assert job["status"] == "ready" and job["callback"] == "stage1"
    assert job["result"] == job["args"] ** 2
    assert codec.loads(job["code"])(7) == 49  # the encoded function, not the digest
    assert app.id not in api.streams  # deleted at the end


def test_a_run_writes_task_files_under_impetus_home_not_the_working_directory(
    api, tmp_path, monkeypatch, impetus_home
):
    monkeypatch.chdir(tmp_path)
    app = Hello("http://api.invalid", "secret-key")  # no taskdir: the default
    app.n = 3
    app.run(progress=quiet())
    assert not (tmp_path / "tasks").exists()
    assert app.stream_dir == impetus_home / "tasks" / app.id
    assert len((app.stream_dir / "stage1.ok").read_text().splitlines()) == 3
    old = Hello("http://api.invalid", "secret-key", taskdir="tasks")  # the old behaviour
    old.n = 1
    old.run(progress=quiet())
    assert (tmp_path / "tasks" / old.id / "stage1.ok").is_file()


def test_keep_and_keep_property(api, tmp_path):
    app = make(Hello, tmp_path)
    app.n = 1
    app.run(keep=True, progress=quiet())
    assert app.id in api.streams
    app2 = make(Hello, tmp_path, keep=True)
    app2.n = 1
    app2.run(progress=quiet())
    assert app2.id in api.streams


class ThreeStages(Impetus):
    @Impetus.startup
    def start(self):
        self.seen = []
        self.fork(lambda x: x + 1, args=1, job_id="a")

    @Impetus.process
    def one(self, ready, errors):
        self.seen.append(("one", [j["result"] for j in ready]))
        for job in ready:
            self.fork(lambda x: x * 10, args=job["result"], job_id="b")  # default -> two

    @Impetus.process
    def two(self, ready, errors):
        self.seen.append(("two", [j["result"] for j in ready]))
        self.fork(str, args=ready[0]["result"], callback=self.three, job_id="c")

    @Impetus.process
    def three(self, ready, errors):
        self.seen.append(("three", [j["result"] for j in ready]))
        with pytest.raises(ImpetusError, match="no stage after"):
            self.fork(abs, args=1)


def test_default_callback_is_next_stage_and_last_stage_has_none(api, tmp_path):
    app = make(ThreeStages, tmp_path)
    app.run(progress=quiet())
    assert app.seen == [("one", [2]), ("two", [20]), ("three", ["20"])]


def test_errors_reach_stage_and_err_file(api, tmp_path):
    class Failing(Impetus):
        @Impetus.startup
        def start(self):
            self.errors = []
            self.fork(lambda x: 1 / x, args=0)
            self.fork(lambda x: 1 / x, args=2)

        @Impetus.process
        def stage1(self, ready, errors):
            self.errors += errors

    app = make(Failing, tmp_path)
    app.run(progress=quiet())
    assert [e["result"]["type"] for e in app.errors] == ["ZeroDivisionError"]
    assert app.errors[0]["status"] == "error" and app.errors[0]["args"] == 0
    assert len(taskfiles.read(tmp_path / app.id / "stage1.err")) == 1
    assert len(taskfiles.read(tmp_path / app.id / "stage1.ok")) == 1


def test_restart_with_same_id_never_writes_a_job_twice(api, tmp_path):
    class Idempotent(Impetus):
        @Impetus.startup
        def start(self):
            self.got = []
            for i in range(10):
                self.fork(abs, args=-i, job_id=f"job-{i}")

        @Impetus.process
        def stage1(self, ready, errors):
            self.got += [j["id"] for j in ready]

    first = make(Idempotent, tmp_path, id="fixed")
    first.run(keep=True, progress=quiet())
    assert len(first.got) == 10
    # an earlier run wrote job-0 .. job-9; pretend the last ack was lost
    api.acked.discard("job-3")
    second = make(Idempotent, tmp_path, id="fixed")
    second.run(keep=True, progress=quiet())
    assert second.got == []  # nothing handed to the stage twice
    assert "job-3" in api.acked  # but the lost ack was redone
    assert len((tmp_path / "fixed" / "stage1.ok").read_text().splitlines()) == 10
    assert second.progress() == {"stage1": {"forked": 10, "processed": 10}}


def test_fork_encodes_each_function_once(api, tmp_path, monkeypatch):
    encoded = []
    original = codec.dump_function
    monkeypatch.setattr(codec, "dump_function", lambda fn: encoded.append(fn) or original(fn))

    def f(x):
        return x

    app = make(Hello, tmp_path)
    for i in range(50):
        app.fork(f, args=i)
        app.fork(Hello.pow, args=i)
    assert len(encoded) == 2
    assert api.count("enqueue") == 0  # still buffered
    app.flush()
    assert api.count("enqueue") == 1


def test_fork_into_ended_stage_and_unknown_callback_fail(api, tmp_path):
    app = make(Hello, tmp_path)
    with pytest.raises(ImpetusError, match="not a stage"):
        app.fork(abs, args=1, callback="nope")
    app._ended.add("stage1")
    with pytest.raises(ImpetusError, match="ended"):
        app.fork(abs, args=1)


def test_fork_properties_priority_delay_reach_the_spec(api, tmp_path):
    app = make(Hello, tmp_path)
    jid = app.fork(abs, args=-1, priority=3, delay=2.5, job_id="x1", colour="red")
    assert jid == "x1"
    app.flush()
    spec = api.jobs["x1"]["spec"]
    assert spec["priority"] == 3 and spec["delay"] == 2.5
    assert spec["properties"] == {"colour": "red"} and spec["stage"] == "stage1"
    assert spec["name"] == "abs"


def test_unpicklable_args_fail_at_fork(api, tmp_path):
    import threading

    app = make(Hello, tmp_path)
    with pytest.raises(TypeError):
        app.fork(abs, args=threading.Lock())


def test_store_view(api, tmp_path):
    app = make(Hello, tmp_path)
    app.store["a"] = {"x": 1}
    assert app.store["a"] == {"x": 1}
    assert "a" in app.store and "b" not in app.store
    assert app.store.get("b", 5) == 5
    assert app.store.keys() == ["a"]
    del app.store["a"]
    with pytest.raises(KeyError):
        app.store["a"]
    with pytest.raises(KeyError):
        del app.store["a"]


def test_stream_name_defaults_to_the_program_and_a_given_name_wins(api, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/home/me/resize_photos.py", "--fast"])
    app = make(Hello, tmp_path)
    assert api.streams[app.id]["properties"]["name"] == "resize_photos"
    app = make(Hello, tmp_path, name="nightly")
    assert api.streams[app.id]["properties"]["name"] == "nightly"
    monkeypatch.setattr(sys, "argv", [""])  # no script: the REPL, a notebook
    app = make(Hello, tmp_path)
    assert api.streams[app.id]["properties"]["name"] == "Hello"


def test_a_stream_joined_again_by_id_keeps_its_name(api, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["first.py"])
    make(Hello, tmp_path, id="s1")  # created with an id: a user-chosen id, no default name
    assert "name" not in api.streams["s1"]["properties"]
    make(Hello, tmp_path, id="s1", name="kept")
    monkeypatch.setattr(sys, "argv", ["second.py"])
    make(Hello, tmp_path, id="s1")
    assert api.streams["s1"]["properties"]["name"] == "kept"


def test_stream_id_rules(api, tmp_path):
    assert len(make(Hello, tmp_path).id) == 32
    with pytest.raises(ValueError):
        make(Hello, tmp_path, id="bad id/with slash")


def test_a_run_off_a_terminal_prints_status_lines_headed_by_the_stream_name(api, tmp_path):
    out = io.StringIO()  # not a terminal
    app = make(Hello, tmp_path, name="hello")
    app.n = 30
    app.run(progress=Progress(out))
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("hello: ") for line in lines)
    assert lines[-1].startswith("hello: 30/30 done, 0 errors, 0 waiting, 0 running, ")
    assert lines[-1].endswith(" s") and "\x1b" not in out.getvalue()


def test_any_object_with_update_note_and_close_can_be_the_progress(api, tmp_path):
    seen = []

    class Mine:  # the signature progress objects had before the status line
        def update(self, steps, current, force=False):
            seen.append(list(steps))

        def note(self, text):
            pass

        def close(self):
            pass

    app = make(Hello, tmp_path)
    app.n = 3
    app.run(progress=Mine())
    assert seen and seen[-1][-1][:3] == ("stage1", 3, 3)


def test_progress_line_format():
    out = io.StringIO()
    Progress(out, interval=0).update([("startup", 100, 100), ("stage1", 100, 100)], "stage1")
    assert out.getvalue() == "impetus: 100/100 done, 0 errors, 0 waiting, 0 running, 0 s\n"


def test_stage_failure_leaves_batch_unwritten_and_unacked_for_a_restart(api, tmp_path):
    class Crashy(Impetus):
        crash = True

        @Impetus.startup
        def start(self):
            self.got = []
            for i in range(3):
                self.fork(abs, args=-i, job_id=f"c{i}")

        @Impetus.process
        def stage1(self, ready, errors):
            if self.crash:
                raise RuntimeError("client died mid-stage")
            for job in ready:
                job["result"] = "mutated by the stage"
            self.got += sorted(j["id"] for j in ready)

    first = make(Crashy, tmp_path, id="crashy")
    with pytest.raises(RuntimeError):
        first.run(progress=quiet())
    assert "crashy" in api.streams  # kept for a restart
    assert not api.acked
    assert not (tmp_path / "crashy" / "stage1.ok").exists()
    Crashy.crash = False
    second = make(Crashy, tmp_path, id="crashy")
    second.run(progress=quiet())
    assert second.got == ["c0", "c1", "c2"]
    # the file holds what the API returned, not the stage's mutation
    assert sorted(j["result"] for j in taskfiles.read(tmp_path / "crashy" / "stage1.ok")) == [
        0,
        1,
        2,
    ]


def test_restart_without_job_ids_forks_nothing_twice(api, tmp_path):
    class Implicit(Impetus):
        @Impetus.startup
        def start(self):
            self.got = []
            for i in range(6):
                self.fork(abs, args=-i)
            self.fork(abs, args=-1)  # an identical call: a second job, not a duplicate

        @Impetus.process
        def stage1(self, ready, errors):
            self.got += [j["id"] for j in ready]

    first = make(Implicit, tmp_path, id="again")
    first.run(keep=True, progress=quiet())
    assert len(first.got) == 7 and len(set(first.got)) == 7
    jobs_before = set(api.jobs)
    second = make(Implicit, tmp_path, id="again")
    second.run(keep=True, progress=quiet())
    assert set(api.jobs) == jobs_before  # the same ids: the queue created no new job
    assert second.got == []
    assert len((tmp_path / "again" / "stage1.ok").read_text().splitlines()) == 7


def test_a_restart_whose_task_files_were_lost_does_not_wait_forever(api, tmp_path, caplog):
    class Explicit(Impetus):
        @Impetus.startup
        def start(self):
            self.got = []
            for i in range(3):
                self.fork(abs, args=-i, job_id=f"job-{i}")

        @Impetus.process
        def stage1(self, ready, errors):
            self.got += [j["id"] for j in ready]

    first = make(Explicit, tmp_path, id="lost-files")
    first.run(keep=True, progress=quiet())
    (tmp_path / "lost-files" / "stage1.ok").unlink()  # the task files are gone
    second = make(Explicit, tmp_path, id="lost-files")
    with caplog.at_level("WARNING"):
        second.run(keep=True, progress=quiet())  # returns instead of waiting forever
    assert second.got == []
    assert second.progress() == {"stage1": {"forked": 3, "processed": 3}}
    assert "collected by an earlier run" in caplog.text


def test_a_failed_batch_of_forks_goes_back_and_is_sent_whole_with_its_function(
    api, tmp_path, monkeypatch
):
    app = make(Hello, tmp_path)
    real = api.enqueue
    failures = [ApiError(503, "unavailable", "try later")]

    def flaky(stream_id, jobs, functions, python, cloudpickle):
        if failures:
            raise failures.pop()
        return real(stream_id, jobs, functions, python, cloudpickle)

    monkeypatch.setattr(api, "enqueue", flaky)
    ids = [app.fork(Hello.pow, args=i) for i in range(3)]
    with pytest.raises(ApiError):
        app.flush()
    assert app._forks.buffered == 3 and not app._forks.sending  # back in the buffer, none in flight
    app.fork(Hello.pow, args=3)
    app.flush()  # the function was never accepted: it travels again
    sent = [c for c in api.calls if c[0] == "enqueue"]
    assert len(sent) == 1 and sent[0][1] == 4 and len(sent[0][2]) == 1  # with its code
    assert set(ids) < set(api.jobs) and not app._forks.buffered
