"""A job's store (impetus.context.store) on DynamoDB: get, put, add (atomic), delete."""

from __future__ import annotations

import pytest

from impetus.jobcontext import JobContext


@pytest.fixture
def ctx(queue):
    queue.create_stream("s1", {})
    context = JobContext()
    with context.running("s1", "j1", store=queue.store):
        yield context


def test_get_put_delete_keys(ctx, queue):
    store = ctx.store
    assert store.get("k") is None and store.get("k", 0) == 0 and "k" not in store
    store.put("k", {"n": [1, 2]})
    store["other"] = "x"
    assert store["k"] == {"n": [1, 2]} and "k" in store
    assert sorted(store.keys()) == ["k", "other"]
    assert queue.store_get("s1", "k") == {"n": [1, 2]}  # the stream's store, as the API sees it
    assert store.delete("k") is True and store.delete("k") is False
    with pytest.raises(KeyError):
        store["k"]
    with pytest.raises(KeyError):
        del store["k"]


def test_add_stores_only_a_new_key(ctx, queue):
    # Atomicity under concurrency is DynamoDB's conditional write (in-process moto does not
    # serialise concurrent requests, so a race here would test moto, not us).
    assert ctx.store.add("url:http://x/", 1) is True
    other = JobContext()
    with other.running("s1", "j2", store=queue.store):
        assert other.store.add("url:http://x/", 2) is False
    assert queue.store_get("s1", "url:http://x/") == 1
    assert ctx.store.add("url:http://y/") is True
    assert queue.store_get("s1", "url:http://y/") is True
