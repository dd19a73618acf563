"""The futures API and the bulk map on the local stack (real API, moto server, nodes)."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

from impetus import Executor, Impetus, taskfiles
from impetus.api_client import ApiClient
from impetus.core.config import ClientSettings
from impetus.core.exceptions import ApiError, CollectorBusy
from impetus.remote import RemoteError, RemoteTraceback
from impetus.session import CollectorLease


class Odd(Exception):
    pass


def power(base, exp=2):
    return base**exp


def fails(x):
    if x == 3:
        raise Odd(f"odd {x}")
    return x


def test_submit_works_with_as_completed_and_wait(local_stack):
    with Executor() as ex:
        futures = {ex.submit(power, i, exp=3): i for i in range(20)}
        done = {futures[f]: f.result() for f in cf.as_completed(futures, timeout=120)}
        assert done == {i: i**3 for i in range(20)}
        finished, pending = cf.wait([ex.submit(power, 7)], timeout=120)
        assert not pending and finished.pop().result() == 49


def test_remote_exception_is_reraised_with_its_remote_traceback(local_stack):
    with Executor() as ex:
        with pytest.raises(Odd, match="odd 3") as info:
            ex.submit(fails, 3).result(timeout=120)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert 'raise Odd(f"odd {x}")' in cause.text or "Odd: odd 3" in cause.text
        with pytest.raises(ZeroDivisionError):
            ex.submit(divmod, 1, 0).result(timeout=120)
        with pytest.raises(RemoteError, match="LocalOnly: made on the node") as info:
            ex.submit(_raise_local).result(timeout=120)
        assert "made on the node" in info.value.__cause__.text


def _raise_local():
    local = type("LocalOnly", (Exception,), {})
    raise local("made on the node")


def test_map_in_order_with_chunks_and_errors_at_their_place(local_stack):
    with Executor() as ex:
        assert list(ex.map(power, range(300), [2] * 300, chunksize=40)) == [
            i**2 for i in range(300)
        ]
        results = ex.map(fails, range(6), chunksize=4)
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(Odd):
            next(results)


def test_context_manager_creates_and_deletes_its_stream(local_stack):
    api = ApiClient(ClientSettings.resolve(None, None))
    with Executor(mpps=1) as ex:
        assert api.use_filed_key(ex.id)  # the key this user's executor filed
        assert api.get_stream(ex.id)["properties"]["mpps"] == 1
        assert ex.submit(power, 3).result(timeout=120) == 9
    with pytest.raises(ApiError) as info:
        api.get_stream(ex.id)
    assert info.value.status == 404
    with pytest.raises(RuntimeError):
        ex.submit(power, 1)


class Mapper(Impetus):
    @Impetus.startup
    def start(self):
        self.ids = self.map(power, range(50), chunksize=8)

    @Impetus.process
    def squares(self, ready, errors):
        self.seen = getattr(self, "seen", []) + [(j["id"], j["args"], j["result"]) for j in ready]
        self.errors = getattr(self, "errors", 0) + len(errors)


def test_pipeline_map_hands_items_to_the_stage_and_task_files(local_stack, tmp_path):
    app = Mapper(taskdir=tmp_path)
    app.run(keep=True)
    assert app.errors == 0 and len(app.ids) == 50
    assert sorted(app.seen) == sorted(
        (i, n, n * n) for i, n in zip(app.ids, range(50), strict=True)
    )
    lines = taskfiles.read(tmp_path / app.id / "squares.ok")
    assert sorted(j["id"] for j in lines) == sorted(app.ids)
    assert [j["result"] for j in lines if j["id"] == app.ids[7]] == [49]
    # restarted with the same id: the same chunks (derived ids), all written already
    again = Mapper(taskdir=tmp_path, id=app.id)
    again.run()
    assert again.ids == app.ids and getattr(again, "seen", []) == []


def test_a_second_client_on_a_live_stream_id_gets_a_clear_error(local_stack, monkeypatch):
    """The same program started twice on one stream id took each other's results and
    both hung; the second now fails at start, and may collect once the first is done."""
    monkeypatch.setattr(CollectorLease, "TTL", 5)
    monkeypatch.setattr(CollectorLease, "RENEW_EVERY", 1.0)
    with Executor(id="shared-stream", keep=True) as first:
        assert first.submit(power, 3).result(timeout=120) == 9
        with pytest.raises(CollectorBusy, match="another client is collecting"):
            Executor(id="shared-stream")  # waited one lease period: the first renewed
    with Executor(id="shared-stream") as second:  # released at the first one's exit
        assert second.submit(power, 4).result(timeout=120) == 16
