"""Task files: one base64(zlib(JSON)) line per job, non-JSON values kept pickled."""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib
from fractions import Fraction

import pytest

from impetus import taskfiles
from impetus.core import codec

KEY = b"k" * 32  # the client's task-file key (impetus.streamkeys.taskfile_key)


def job(**overrides):
    record = {
        "id": "j1",
        "name": "pow",
        "args": 3,
        "result": 9,
        "status": "ready",
        "callback": "stage1",
        "client": "s1",
        "created": 1.5,
        "delay": 0,
        "priority": 0,
        "transport": None,
        "code": "abc",
    }
    record.update(overrides)
    return record


def write(path, jobs, key=KEY):
    with open(path, "a", encoding="ascii") as fh:
        for j in jobs:
            taskfiles.write_line(fh, j, key)


def test_round_trip_one_line_per_job(tmp_path):
    path = tmp_path / "stage1.ok"
    jobs = [job(id=f"j{i}", args=i, result=i * i) for i in range(5)]
    write(path, jobs)
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    assert taskfiles.read(path) == jobs
    assert [j["id"] for j in taskfiles.iter_jobs(path)] == [f"j{i}" for i in range(5)]


def test_line_is_plain_base64_zlib_json(tmp_path):
    path = tmp_path / "s.ok"
    write(path, [job(result={"nested": [1, "two", None, True]})])
    line = path.read_text().splitlines()[0]
    record = json.loads(zlib.decompress(base64.b64decode(line)))
    assert record["result"] == {"nested": [1, "two", None, True]}
    assert record["id"] == "j1"


def test_non_json_values_are_pickled_and_restored(tmp_path):
    path = tmp_path / "s.ok"
    odd = {
        "set": {1, 2},
        "bytes": b"\x00\x01",
        "frac": Fraction(1, 3),
        "intkeys": {1: "a"},
        "nan": float("nan"),
    }
    for key, value in odd.items():
        write(path, [job(id=key, result=value, args=(value,) if key != "nan" else 1)])
    lines = path.read_text().splitlines()
    raw = [json.loads(zlib.decompress(base64.b64decode(line))) for line in lines]
    assert all(taskfiles.PICKLE_MARKER in r["result"] for r in raw)
    restored = {j["id"]: j for j in taskfiles.read(path, key=KEY)}
    assert restored["set"]["result"] == {1, 2}
    assert restored["set"]["args"] == ({1, 2},)  # pickled whole, so the tuple survives
    assert restored["bytes"]["result"] == b"\x00\x01"
    assert restored["frac"]["result"] == Fraction(1, 3)
    assert restored["intkeys"]["result"] == {1: "a"}
    assert restored["nan"]["result"] != restored["nan"]["result"]  # NaN
    # restore=False leaves the markers (no unpickling)
    unrestored = taskfiles.read(path, restore=False)
    assert taskfiles.PICKLE_MARKER in unrestored[0]["result"]


def test_tuples_become_lists_and_datetimes_iso(tmp_path):
    path = tmp_path / "s.ok"
    when = dt.datetime(2024, 1, 2, 3, 4, 5)
    write(path, [job(args=(1, 2), result={"at": when})])
    (back,) = taskfiles.read(path)
    assert back["args"] == [1, 2]
    assert back["result"] == {"at": "2024-01-02T03:04:05"}


def test_marker_lookalike_user_dict_survives(tmp_path):
    path = tmp_path / "s.ok"
    tricky = {taskfiles.PICKLE_MARKER: "not a pickle"}
    write(path, [job(result=tricky)])
    assert taskfiles.read(path, key=KEY)[0]["result"] == tricky


def test_missing_file_reads_empty(tmp_path):
    assert taskfiles.read(tmp_path / "none.ok") == []


def test_stage_paths(tmp_path):
    ok, err = taskfiles.stage_paths(tmp_path, "stage1")
    assert ok == tmp_path / "stage1.ok"
    assert err == tmp_path / "stage1.err"


def test_a_bad_line_at_load_names_its_file_and_line(tmp_path):
    """The client reads its task files at start: a line that is not one (here a JSON list)
    is a clear error naming where, not a crash deep inside the client."""
    path = tmp_path / "stage1.ok"
    with open(path, "w", encoding="ascii") as fh:
        taskfiles.write_line(fh, {"id": "a", "result": 1})
        fh.write(base64.b64encode(zlib.compress(b"[1]")).decode("ascii") + "\n")
    with pytest.raises(taskfiles.TaskFileError, match=r"stage1.ok:2: .*not a job object"):
        taskfiles.read(path, restore=False)


class _Marker:
    """Unpickling this creates a file: the proof that something was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _line(record):
    raw = json.dumps(record, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw)).decode()


def test_a_crafted_line_cannot_make_the_client_unpickle(tmp_path):
    """A line written into the task directory by someone else (no MAC, a MAC of another
    key, or a MACed line changed afterwards) is refused at restore and nothing of it is
    unpickled; reading without restoring still works (ids only)."""
    marker = tmp_path / "unpickled"
    evil = {taskfiles.PICKLE_MARKER: codec.dumps(_Marker(marker))}
    path = tmp_path / "stage1.ok"
    crafted = [
        _line(job(id="nomac", result=evil)),
        taskfiles.encode_line(job(id="otherkey", result=_Marker(marker)), b"x" * 32),
    ]
    genuine = json.loads(zlib.decompress(base64.b64decode(taskfiles.encode_line(job(), KEY))))
    genuine["result"] = evil  # changed after its MAC was made
    crafted.append(_line(genuine))
    for line in crafted:
        path.write_text(line + "\n")
        with pytest.raises(taskfiles.TaskFileError, match="no valid MAC"):
            taskfiles.read(path, key=KEY)
        with pytest.raises(taskfiles.TaskFileError, match="no valid MAC"):
            taskfiles.read(path)  # no key: nothing pickled is restored
        assert not marker.exists()
        assert len(taskfiles.read(path, restore=False)) == 1  # ids are still readable


def test_a_line_this_client_wrote_restores_with_its_key(tmp_path):
    path = tmp_path / "stage1.ok"
    write(path, [job(result={1, 2})])
    line = path.read_text().strip()
    record = json.loads(zlib.decompress(base64.b64decode(line)))
    assert taskfiles.MAC_FIELD in record
    assert taskfiles.read(path, key=KEY)[0]["result"] == {1, 2}
    assert taskfiles.MAC_FIELD not in taskfiles.read(path, key=KEY)[0]
