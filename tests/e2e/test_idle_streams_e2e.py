"""On the local stack, with many idle streams around: a job forked to a stream that was
idle is still picked up promptly, and a sequential client still gets its results at the
agent's hot-listing pace (nodes learn of work from the active-streams record, not from a
Scan of the streams table)."""

from __future__ import annotations

import time
import uuid

from impetus import Executor
from impetus.api_client import ApiClient
from impetus.core.config import ClientSettings
from node_agent.pacing import HOT_SECONDS


def square(x):
    return x * x


def test_work_on_an_idle_stream_is_picked_up_among_idle_streams(local_stack):
    api = ApiClient(ClientSettings.resolve(None, None))
    prefix = uuid.uuid4().hex[:8]
    created = [api.create_stream(f"idle-{prefix}-{i}")["id"] for i in range(30)]
    try:
        with Executor() as ex:
            began = time.monotonic()
            assert ex.submit(square, 3).result(timeout=60) == 9
            first = time.monotonic() - began
            began = time.monotonic()
            for i in range(10):  # one at a time: each waits for the previous result
                assert ex.submit(square, i).result(timeout=60) == i * i
            sequential = (time.monotonic() - began) / 10
            time.sleep(HOT_SECONDS + 1)  # the agents fall back to the idle listing pace
            began = time.monotonic()
            assert ex.submit(square, 4).result(timeout=60) == 16
            after_idle = time.monotonic() - began
    finally:
        for sid in created:
            api.delete_stream(sid)
    print(f"first {first:.2f} s, sequential {sequential:.2f} s/job, after idle {after_idle:.2f} s")
    # Generous bounds for a shared 2-core machine; a Scan-free listing must not be slower
    # than one idle listing interval (1 s) plus a worker's start and the client's polls.
    assert first < 15 and after_idle < 10
    assert sequential < 3
