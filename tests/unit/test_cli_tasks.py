"""``impetus tasks read``: task files decoded to JSON without unpickling anything."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from impetus import taskfiles
from impetus.cli import main


def _line(raw: bytes) -> str:
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def _write(path, jobs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="ascii") as fh:
        for job in jobs:
            taskfiles.write_line(fh, job)


def test_reads_a_file_as_json_lines(tmp_path, capsys):
    ok = tmp_path / "s1" / "stage1.ok"
    _write(ok, [{"id": "a", "result": 4, "args": 2}, {"id": "b", "result": {1, 2}, "args": 3}])
    assert main(["tasks", "read", str(ok)]) == 0
    lines = capsys.readouterr().out.splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first == {"id": "a", "result": 4, "args": 2}
    # a set is not JSON: it stays a pickle marker (the command never unpickles)
    assert set(second["result"]) == {taskfiles.PICKLE_MARKER}


def test_reads_a_stream_directory_as_one_json_array(tmp_path, capsys):
    _write(tmp_path / "s1" / "stage1.ok", [{"id": "a", "status": "ready"}])
    _write(tmp_path / "s1" / "stage1.err", [{"id": "b", "status": "error"}])
    (tmp_path / "s1" / "notes.txt").write_text("not a task file")
    assert main(["tasks", "read", str(tmp_path / "s1"), "--json"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert sorted(j["id"] for j in jobs) == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not base64!\n", "stage1.ok:1: not a task file line"),
        ("aGVsbG8=\n", "stage1.ok:1: not a task file line"),  # base64 of 'hello', not zlib
        (b"\xff\xfe\n", "not a task file"),
        (_line(b"[1, 2]") + "\n", "not a job object"),  # JSON, not an object
        (_line(b"[" * 100_000 + b"]" * 100_000) + "\n", "nested too deeply"),
        (_line(b" " * (200 << 20)) + "\n", "decompresses past"),  # a zlib bomb: 200 MB
    ],
)
def test_a_bad_file_is_one_line_exit_1(tmp_path, capsys, content, message):
    path = tmp_path / "stage1.ok"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert main(["tasks", "read", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("impetus: error: ") and message in err and err.count("\n") == 1


def test_missing_path_and_empty_directory(tmp_path, capsys):
    assert main(["tasks", "read", str(tmp_path / "nope.ok")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["tasks", "read", str(tmp_path)]) == 1
    assert "no .ok or .err task files" in capsys.readouterr().err


def test_deeply_nested_json_to_store_put_is_one_line(capsys):
    assert main(["store", "s1", "put", "k", "[" * 100_000 + "]" * 100_000]) == 1
    err = capsys.readouterr().err
    assert err == "impetus: error: the value is JSON nested too deeply\n"


def test_reads_a_task_root_of_stream_directories(tmp_path, capsys):
    # `impetus tasks read tasks/`: the folder the client wrote, one directory per stream
    _write(tmp_path / "tasks" / "s1" / "stage1.ok", [{"id": "a"}])
    _write(tmp_path / "tasks" / "s2" / "stage1.err", [{"id": "b"}])
    assert main(["tasks", "read", str(tmp_path / "tasks"), "--json"]) == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)] == ["a", "b"]


def test_no_path_reads_the_default_task_root_under_impetus_home(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path / "home"))
    assert main(["tasks", "read"]) == 1  # nothing written yet: one line
    assert "home/tasks: no such file" in capsys.readouterr().err
    _write(tmp_path / "home" / "tasks" / "s1" / "stage1.ok", [{"id": "a"}])
    assert main(["tasks", "read"]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": "a"}
