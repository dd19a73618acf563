"""The executor keeps the concurrent.futures contract (states, cancel, shutdown,
map(timeout), leaks, options, output, constructor errors), against the ApiClient double
of test_client_run with a queue whose jobs run only when the test lets them."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import threading
import time
import weakref

import pytest
from test_client_parts import ThreadSafeApi
from test_client_run import impetus_home  # noqa: F401  (autouse fixture)

from impetus import Executor
from impetus.core.properties import PROPERTIES


class HeldApi(ThreadSafeApi):
    """Jobs wait until ``run`` lets them finish; ``claim`` marks jobs as taken by a node."""

    def __init__(self, settings=None):
        super().__init__(settings)
        self.runnable: set[str] = set()
        self.claimed: set[str] = set()
        self.cancelled: set[str] = set()
        self.run_all = False

    def results(self, stream_id, stage, limit=500):
        with self.lock:
            held = {
                jid: job
                for jid, job in self.jobs.items()
                if not self.run_all and jid not in self.runnable
            }
            for jid in held:
                self.jobs.pop(jid)
            try:
                return super().results(stream_id, stage, limit)
            finally:
                self.jobs.update(held)

    def results_page(self, stream_id, stage, limit=500):
        jobs = self.results(stream_id, stage, limit)
        with self.lock:  # claimed and not let finish: a node runs them
            started = sorted(j for j in self.claimed if j in self.jobs and j not in self.runnable)
        return {"jobs": jobs, "started": started}

    def cancel(self, stream_id, ids=None):
        with self.lock:
            self.calls.append(("cancel", ids))
            ids = ids if ids is not None else [j for j in self.jobs if j not in self.claimed]
            out = {"cancelled": [], "running_or_done": [], "unknown": []}
            for jid in ids:
                if jid not in self.jobs:
                    out["unknown"].append(jid)
                elif jid in self.claimed or jid in self.runnable or jid in self.acked:
                    out["running_or_done"].append(jid)
                else:
                    self.cancelled.add(jid)
                    del self.jobs[jid]
                    out["cancelled"].append(jid)
            return out


@pytest.fixture
def api(monkeypatch):
    fake = HeldApi()
    monkeypatch.setattr(Executor, "api_class", staticmethod(lambda settings: fake))
    return fake


def executor(**kw):
    return Executor("http://api.invalid", "secret-key", **kw)


def wait_sent(api, job_id, timeout=5.0):
    end = time.monotonic() + timeout
    while job_id not in api.jobs:
        assert time.monotonic() < end, "fork never sent"
        time.sleep(0.01)


def test_cancel_of_a_pending_call_takes_it_out_of_the_queue(api):
    with executor() as ex:
        future = ex.submit(pow, 2, 3)
        wait_sent(api, future.job_id)
        assert future.cancel() and future.cancelled()
        assert api.cancelled == {future.job_id}
        assert future.cancel()  # again: still True, no second request
        assert sum(1 for c in api.calls if c[0] == "cancel") == 1


def test_cancel_of_a_claimed_call_is_false_and_the_future_runs(api):
    with executor() as ex:
        future = ex.submit(pow, 2, 3)
        wait_sent(api, future.job_id)
        api.claimed.add(future.job_id)
        assert not future.cancel()
        assert future.running() and not future.cancelled()
        api.runnable.add(future.job_id)
        assert future.result(timeout=10) == 8
        assert not future.cancel()  # finished


def test_mark_started_makes_futures_running_and_results_still_arrive(api):
    with executor() as ex:
        future = ex.submit(pow, 3, 2)
        assert future._state == "PENDING"
        ex._mark_started([future.job_id, "not-ours"])
        assert future.running()
        api.runnable.add(future.job_id)
        assert future.result(timeout=10) == 9


def test_shutdown_cancel_futures_cancels_only_what_no_node_started(api):
    ex = executor()
    started, waiting = ex.submit(pow, 2, 1), ex.submit(pow, 2, 2)
    wait_sent(api, waiting.job_id)
    api.claimed.add(started.job_id)
    api.runnable.add(started.job_id)
    ex.shutdown(wait=True, cancel_futures=True)
    assert waiting.cancelled() and api.cancelled == {waiting.job_id}
    assert started.result(timeout=1) == 2
    assert ex.id not in api.streams


def test_map_timeout_cancels_what_is_left_and_shutdown_is_prompt(api):
    ex = executor()
    results = ex.map(abs, range(-10, 0), chunksize=2, timeout=0.3)
    with pytest.raises(cf.TimeoutError):
        next(results)
    assert len(api.cancelled) == 5  # every chunk, in the queue
    began = time.monotonic()
    ex.shutdown(wait=True)
    assert time.monotonic() - began < 2


def test_the_map_iterator_keeps_no_future_it_handed_back(api):
    api.run_all = True
    with executor() as ex:
        results = ex.map(abs, range(-5, 0), chunksize=1)
        assert next(results) == 5
        frame_futures = results.gi_frame.f_locals["futures"]
        assert len(frame_futures) == 4  # the yielded one is gone from the iterator


def test_a_finished_future_is_not_held_by_the_executor(api):
    api.run_all = True
    with executor() as ex:
        future = ex.submit(pow, 2, 5)
        assert future.result(timeout=10) == 32
        ref = weakref.ref(future)
        del future
        gc.collect()
        assert ref() is None


def test_the_function_table_stays_bounded_and_lets_functions_go(api):
    api.run_all = True
    with executor() as ex:
        first = lambda: 0  # noqa: E731
        ref = weakref.ref(first)
        assert ex.submit(first).result(timeout=10) == 0
        del first
        for i in range(400):
            ex.submit(eval(f"lambda: {i}"))
        gc.collect()
        assert len(ex._functions) <= 2 * 256
        assert ref() is None


class Owner:
    def method(self):
        return 7


def test_a_bound_methods_object_is_let_go_once_its_call_is_done(api):
    # CPython's test_no_stale_references: the table caches no callable it was handed.
    api.run_all = True
    with executor() as ex:
        owner = Owner()
        ref = weakref.ref(owner)
        assert ex.submit(owner.method).result(timeout=10) == 7
        del owner
        gc.collect()
        assert ref() is None


class Box:
    pass


def make_box(_):
    return Box()


def test_the_map_iterator_holds_no_result_it_handed_back(api):
    # CPython's test_free_reference: no local of the generator keeps the last value.
    api.run_all = True
    with executor() as ex:
        for box in ex.map(make_box, range(3)):
            ref = weakref.ref(box)
            del box
            gc.collect()
            assert ref() is None


def test_max_workers_below_one_is_a_value_error_as_in_the_stdlib(api):
    for number in (0, -1):
        with pytest.raises(ValueError, match="max_workers must be greater than 0"):
            executor(max_workers=number)
    assert api.streams == {}


def test_unknown_keyword_arguments_are_a_type_error_naming_the_properties(api):
    with pytest.raises(TypeError) as info:
        executor(bogus=1)
    assert "bogus" in str(info.value) and "mpps" in str(info.value)
    assert api.streams == {}  # nothing created
    with executor(max_workers=5, properties={"gpu": "a100"}, time_limit=2) as ex:
        assert api.streams[ex.id]["properties"] == {
            "gpu": "a100",
            "time_limit": 2,
            "name": "executor",
        }
    assert set(PROPERTIES) >= {"mpps", "time_limit", "retries"}


def test_the_stream_is_named_after_its_first_function_unless_the_user_names_it(api):
    api.run_all = True
    with executor() as ex:
        assert api.streams[ex.id]["properties"]["name"] == "executor"  # no function yet
        assert list(ex.map(abs, [-1, -2])) == [1, 2]
        assert api.streams[ex.id]["properties"]["name"] == "abs"
        assert ex.submit(pow, 2, 3).result(timeout=10) == 8
        assert api.streams[ex.id]["properties"]["name"] == "abs"  # the first one's, once
    renames = [c for c in api.calls if c[0] == "update_properties"]
    assert len(renames) == 1
    with executor(name="resize photos") as ex:
        assert ex.submit(pow, 2, 2).result(timeout=10) == 4
        assert api.streams[ex.id]["properties"]["name"] == "resize photos"


def test_options_fork_with_retries_time_limit_priority_delay(api):
    api.run_all = True
    with executor() as ex:
        fast = ex.options(retries=2, time_limit=5.0, priority=-3, delay=0.5)
        assert fast.submit(pow, 2, 2).result(timeout=10) == 4
        assert list(fast.options(priority=1).map(abs, [-1, -2], chunksize=1)) == [1, 2]
        specs = [job["spec"] for job in api.jobs.values()]
        assert specs[0]["priority"] == -3 and specs[0]["delay"] == 0.5
        assert specs[0]["properties"] == {"retries": 2, "time_limit": 5.0}
        assert specs[1]["priority"] == 1 and specs[1]["properties"]["retries"] == 2
    with pytest.raises(ValueError):
        ex.options(retries=-1)
    with pytest.raises(TypeError):
        ex.options(timeout=2)


def test_output_is_kept_on_the_future_and_echoed_with_the_job_id(api, capsys):
    api.run_all = True
    original = api._finish

    def with_output(job):
        original(job)
        job["done"]["output"] = {"stdout": "hello\n"}

    api._finish = with_output
    with executor(output=True) as ex:
        future = ex.submit(pow, 2, 2)
        assert future.result(timeout=10) == 4
    assert future.output() == f"[{future.job_id}] hello"
    assert f"[{future.job_id}] hello" in capsys.readouterr().err


def test_submit_does_not_wait_on_the_network(api):
    gate = threading.Event()
    enqueue = api.enqueue

    def slow_enqueue(*args, **kwargs):
        gate.wait(10)
        return enqueue(*args, **kwargs)

    api.enqueue = slow_enqueue
    api.run_all = True
    with executor() as ex:
        began = time.monotonic()
        futures = [ex.submit(pow, i, 2) for i in range(2000)]
        assert time.monotonic() - began < 5  # the API answers nothing meanwhile
        gate.set()
        assert [f.result(timeout=30) for f in futures[:3]] == [0, 1, 4]
