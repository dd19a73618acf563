"""Streams left behind by a killed client expire: the DFS tick deletes a stream that is
not ``keep`` once its collector lease (the client's activity) is older than its ttl."""

from __future__ import annotations

import time

import pytest

from impetus.core import codec
from impetus.core.exceptions import StreamNotFound
from impetus.scaler import activity, expire, tick
from impetus.scaler.config import DfsSettings


def _job(x):
    return x


def _fork(queue, stream):
    code = codec.dump_function(_job)
    spec = {"name": "_job", "code": codec.digest(code), "args": codec.dumps(1), "stage": "s"}
    queue.enqueue(stream, [spec], {codec.digest(code): code}, codec.PYTHON_VERSION)


def _run_tick(now):
    return tick.run(DfsSettings.from_env(), now=now)


def _exists(queue, stream):
    try:
        queue.get_stream(stream)
    except StreamNotFound:
        return False
    return True


def test_stream_past_its_ttl_after_the_last_lease_is_deleted(queue):
    queue.create_stream("orphan", {"ttl": 60})
    _fork(queue, "orphan")
    lease_expires = queue.take_collector("orphan", "killed-client", 30)
    # within ttl of the lease's expiry: kept
    assert _run_tick(lease_expires + 59).expired == []
    assert _exists(queue, "orphan")
    # past it: gone, with its jobs
    assert _run_tick(lease_expires + 61).expired == ["orphan"]
    assert not _exists(queue, "orphan")
    assert all(s["id"] != "orphan" for s in queue.list_streams())


def test_a_renewed_lease_keeps_the_stream(queue):
    queue.create_stream("alive", {"ttl": 60})
    created = queue.get_stream("alive")["created"]
    # the client renews: its lease expires later than the stream's age would suggest
    queue.streams.collector.take("alive", "client", 30, now=created + 500)
    assert _run_tick(created + 560).expired == []
    assert _exists(queue, "alive")
    # an idle stream is seen at DFS's sweep, once a minute (impetus.scaler.activity)
    assert _run_tick(created + 560 + activity.SWEEP_EVERY).expired == ["alive"]


def test_kept_streams_and_the_default_ttl_stay(queue):
    queue.create_stream("kept", {"ttl": 1, "keep": True})
    queue.create_stream("default-ttl", {})
    later = time.time() + 3600  # an hour: under the default ttl (a day)
    assert _run_tick(later).expired == []
    assert _exists(queue, "kept") and _exists(queue, "default-ttl")
    assert _run_tick(time.time() + 2 * 86400).expired == ["default-ttl"]
    assert _exists(queue, "kept")


def test_a_stream_that_never_had_a_lease_counts_from_its_creation():
    item = {"created": 100.0}
    assert expire.last_activity(item) == 100.0
    assert expire.last_activity({"created": 100.0, "collector": {"expires": 250}}) == 250.0


@pytest.mark.parametrize("ttl", [0, -5, "1h"])
def test_ttl_must_be_positive_seconds(queue, ttl):
    from impetus.core.exceptions import InvalidRequest

    with pytest.raises(InvalidRequest, match="ttl"):
        queue.create_stream("bad-ttl", {"ttl": ttl})
