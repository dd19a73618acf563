"""Faithful exceptions: a job's exception comes back with its class, args and plain-data
attributes (never unpickled), and its traceback shows the user's frames with source."""

from __future__ import annotations

import json
import os

from impetus.core import excdata
from impetus.core.jobs import ERROR
from impetus.remote import RemoteError, RemoteTraceback, rebuild
from node_agent.worker import FunctionCache, run_job
from tests.nodeharness import make_job


class QuotaExceeded(Exception):
    """A user exception class whose __init__ takes other parameters than its args."""

    def __init__(self, user: str, limit: int) -> None:
        super().__init__(f"{user} is over {limit}")
        self.user, self.limit = user, limit


def helper_that_raises(key):
    table = {}
    return table[key]  # the helper's failing line


def job_calls_helper(key):
    value = helper_that_raises(key)  # the job's calling line
    return value


def raise_missing_file(name):
    with open(os.path.join("/nonexistent-dir-for-impetus", name)):
        pass


def raise_quota(user):
    raise QuotaExceeded(user, 3)


def _remote(fn, arg) -> BaseException:
    """Run ``fn(arg)`` as a worker runs a job, and rebuild its error as the client does."""
    outcome = run_job(make_job(fn, arg), FunctionCache())
    assert outcome.status == ERROR
    # the record travels as JSON through the API and DynamoDB
    record = json.loads(json.dumps(outcome.error))
    return rebuild(record, fn)


def test_key_error_keeps_its_args():
    exc = _remote(job_calls_helper, "k")
    assert type(exc) is KeyError
    assert exc.args == ("k",)
    assert str(exc) == "'k'"


def test_file_not_found_keeps_errno_and_filename():
    exc = _remote(raise_missing_file, "x.txt")
    assert type(exc) is FileNotFoundError
    assert exc.errno == 2
    assert exc.filename == "/nonexistent-dir-for-impetus/x.txt"
    assert exc.strerror == "No such file or directory"
    assert str(exc) == "[Errno 2] No such file or directory: '/nonexistent-dir-for-impetus/x.txt'"


def test_user_exception_class_importable_here_comes_back_with_attributes():
    exc = _remote(raise_quota, "ann")
    assert type(exc) is QuotaExceeded
    assert exc.args == ("ann is over 3",)
    assert (exc.user, exc.limit) == ("ann", 3)


def test_unknown_class_is_a_remote_error():
    record = {
        "error": "boom",
        "type": "Weird",
        "module": "a_module_the_client_never_imported",
        "qualname": "Weird",
        "exc_args": '["boom"]',
        "exc_attrs": "{}",
        "traceback": "Traceback...\nWeird: boom\n",
    }
    exc = rebuild(record)
    assert type(exc) is RemoteError
    assert str(exc) == "Weird: boom"
    assert isinstance(exc.__cause__, RemoteTraceback)


def test_only_exception_subclasses_are_rebuilt():
    assert excdata.known_class("builtins", "SystemExit") is None
    assert excdata.known_class("builtins", "KeyboardInterrupt") is None
    assert excdata.known_class("builtins", "print") is None
    assert excdata.known_class("os", "path") is None
    assert excdata.known_class("builtins", "KeyError") is KeyError


def test_a_record_sets_plain_attributes_only():
    record = {
        "module": "builtins",
        "qualname": "ValueError",
        "exc_args": '["v"]',
        "exc_attrs": '{"__class__": "KeyError", "__dict__": {}, "bad name": 1, "hint": 2}',
    }
    exc = excdata.rebuild_exception(record)
    assert type(exc) is ValueError and exc.args == ("v",)
    assert exc.hint == 2 and not hasattr(exc, "bad name")


def test_a_module_named_by_a_record_is_never_imported(tmp_path, monkeypatch):
    import sys

    (tmp_path / "exc_module_never_imported.py").write_text("class Boom(Exception):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert excdata.known_class("exc_module_never_imported", "Boom") is None
    assert "exc_module_never_imported" not in sys.modules


def test_attributes_that_are_not_plain_data_travel_as_repr():
    exc = ValueError("v")
    exc.payload = object()
    exc.items = [1, "two", {"three": 3.0}]
    facts = excdata.describe(exc)
    attrs = json.loads(facts["exc_attrs"])
    assert attrs["items"] == [1, "two", {"three": 3.0}]
    assert attrs["payload"].startswith("<object object at")


def test_traceback_shows_user_frames_with_source_and_no_worker_frames():
    exc = _remote(job_calls_helper, "k")
    text = str(exc.__cause__)
    assert "node_agent" not in text and "run_job" not in text
    assert "<dynamic-code" not in text
    assert f'File "{__file__}"' in text
    assert "value = helper_that_raises(key)  # the job's calling line" in text
    assert "return table[key]  # the helper's failing line" in text
    # the user's function is the first frame
    first = text.strip().splitlines()[1]
    assert "in job_calls_helper" in first


def test_statement_is_the_innermost_user_line():
    outcome = run_job(make_job(job_calls_helper, "k"), FunctionCache())
    record = outcome.error
    rebuild(record, job_calls_helper)
    assert record["statement"] == "return table[key]  # the helper's failing line"


def test_node_names_the_module_of_by_value_frames():
    outcome = run_job(make_job(job_calls_helper, "k"), FunctionCache())
    assert f'File "<dynamic-code {__name__}>"' in outcome.error["traceback"]
