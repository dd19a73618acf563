"""Chunk jobs (impetus.mapping) and remote exceptions (impetus.remote), without a stack."""

from __future__ import annotations

import pickle
import random

import pytest

from impetus import mapping
from impetus.core import codec, jobs
from impetus.core.jobs import ERROR, READY
from impetus.remote import RemoteError, RemoteTraceback, rebuild


class Custom(Exception):
    pass


def inverse(x):
    return 1 / x


def add(a, b=0):
    return a + b


def test_chunk_runner_keeps_going_after_a_failed_item():
    outcomes = mapping.ChunkRunner(inverse)([1, 0, 4])
    assert outcomes[0] == (mapping.OK, 1.0) and outcomes[2] == (mapping.OK, 0.25)
    kind, record = outcomes[1]
    assert kind == ERROR and record["type"] == "ZeroDivisionError"
    assert record["statement"] == "return 1 / x" and "ZeroDivisionError" in record["traceback"]


def test_star_runner_and_call_unpack_arguments():
    assert mapping.ChunkRunner(add, star=True)([(1, 2), (3,)]) == [(mapping.OK, 3), (mapping.OK, 3)]
    assert mapping.Call(add)(((1,), {"b": 5})) == 6


def test_wrappers_travel_like_their_function():
    runner = mapping.ChunkRunner(add, star=True)
    assert runner.__name__ == "add" and runner.__module__ == __name__
    decoded = pickle.loads(codec.decode_bytes(codec.dump_function(runner)))
    assert decoded([(2, 2)]) == [(mapping.OK, 4)]


def test_chunk_size_default_and_validation():
    assert mapping.chunk_size(2000, None) == 125
    assert mapping.chunk_size(3, None) == 1
    assert mapping.chunk_size(10**6, None) == mapping.MAX_AUTO_CHUNKSIZE
    assert mapping.chunk_size(10, 4) == 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            mapping.chunk_size(10, bad)


def test_chunks_keep_order_and_split_oversized_payloads():
    items = list(range(10))
    parts = list(mapping.chunks(items, 4))
    assert [p for p, _ in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert codec.loads(parts[1][1]) == [4, 5, 6, 7]
    noise = random.Random(7)  # incompressible: 6 x 80 KB cannot fit one 300 KB chunk
    blobs = [noise.randbytes(80_000) + str(i).encode() for i in range(6)]
    big = list(mapping.chunks(blobs, 6))
    assert sum(len(p) for p, _ in big) == 6 and len(big) > 1
    assert all(len(enc) <= mapping.MAX_CHUNK_ARGS_BYTES or len(p) == 1 for p, enc in big)
    flat = [x for p, _ in big for x in p]
    assert flat == blobs


def test_chunk_count_reads_the_map_property():
    assert mapping.chunk_count({"properties": {"map": 3}}) == 3
    assert mapping.chunk_count({"properties": {}}) is None
    assert mapping.chunk_count({}) is None
    assert mapping.chunk_count({"properties": {"map": "x"}}) == 0


def test_expand_gives_one_job_per_item_in_order():
    record = mapping.ChunkRunner(inverse)([2, 0])[1][1]
    job = {"id": "c1", "status": READY, "args": [2, 0], "result": [("ok", 0.5), (ERROR, record)]}
    items = mapping.expand(job, 2, inverse)
    assert [i["id"] for i in items] == ["c1:0", "c1:1"]
    assert items[0]["status"] == READY and items[0]["result"] == 0.5 and items[0]["args"] == 2
    assert items[1]["status"] == ERROR and items[1]["result"]["type"] == "ZeroDivisionError"


def test_expand_spreads_a_whole_chunk_failure_over_its_items():
    lost = {"error": "lost: node gone", "type": "lost"}
    items = mapping.expand({"id": "c", "status": ERROR, "args": [1, 2, 3], "result": lost}, 3)
    assert [i["status"] for i in items] == [ERROR] * 3
    assert all(i["result"]["type"] == "lost" for i in items)
    assert [i["id"] for i in mapping.expand({"id": "c", "status": ERROR, "args": None}, 2)] == [
        "c:0",
        "c:1",
    ]


def test_rebuild_builtin_module_and_unknown_exceptions():
    tb = 'Traceback (most recent call last):\n  File "x", line 1\nValueError: bad\n'
    exc = rebuild({"type": "ValueError", "error": "bad", "traceback": tb})
    assert type(exc) is ValueError and str(exc) == "bad"
    assert isinstance(exc.__cause__, RemoteTraceback) and "line 1" in str(exc.__cause__)
    assert type(rebuild({"type": "Custom", "error": "c"}, inverse)) is Custom
    other = rebuild({"type": "NoSuchError", "error": "boom", "traceback": tb})
    assert isinstance(other, RemoteError) and other.type_name == "NoSuchError"
    assert "boom" in str(other) and other.traceback == tb


def test_a_system_error_reads_its_kind_once():
    record = jobs.system_error("lost", "worker exited with code -9", "f")
    assert str(rebuild(record)) == "lost: worker exited with code -9"
    assert str(RemoteError("NoSuchError", "boom")) == "NoSuchError: boom"
