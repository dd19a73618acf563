"""Faithful exceptions and travelling modules on the local stack (API, moto server,
nodes running workers that lack the test's modules)."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from impetus import Executor
from impetus.core import codec
from impetus.remote import RemoteError

HELPER = textwrap.dedent(
    """
    class Reading:
        def __init__(self, value):
            self.value = value

    def scaled(reading, factor):
        return reading.value * factor

    def lookup(table, key):
        return table[key]  # the helper's failing line
    """
)


def _import_helper(tmp_path, monkeypatch, name):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{name}.py").write_text(HELPER)
    monkeypatch.syspath_prepend(str(folder))
    return importlib.import_module(name)


def test_a_local_helper_module_and_its_classes_travel_by_value(local_stack, tmp_path, monkeypatch):
    helper = _import_helper(tmp_path, monkeypatch, "e2e_helper_shipped")
    try:

        def job(reading):
            return helper.scaled(reading, 3)

        def failing(key):
            return helper.lookup({}, key)

        with Executor() as ex:
            assert ex.submit(job, helper.Reading(14)).result(timeout=120) == 42
            with pytest.raises(KeyError) as info:
                ex.submit(failing, "k").result(timeout=120)
        assert info.value.args == ("k",)
        text = info.value.__cause__.text
        assert "return table[key]  # the helper's failing line" in text
        assert str(tmp_path / "project" / "e2e_helper_shipped.py") in text
        assert "node_agent" not in text
    finally:
        sys.modules.pop("e2e_helper_shipped", None)


def test_file_not_found_keeps_errno_and_filename(local_stack):
    def read(path):
        with open(path) as f:
            return f.read()

    with Executor() as ex, pytest.raises(FileNotFoundError) as info:
        ex.submit(read, "/nonexistent-impetus-dir/data.csv").result(timeout=120)
    assert info.value.errno == 2
    assert info.value.filename == "/nonexistent-impetus-dir/data.csv"


def test_a_module_not_shipped_names_itself_and_the_option(local_stack, tmp_path, monkeypatch):
    helper = _import_helper(tmp_path, monkeypatch, "e2e_helper_not_shipped")
    monkeypatch.setattr(codec, "_auto_ship", False)
    try:
        with Executor() as ex, pytest.raises(RemoteError) as info:
            ex.submit(helper.scaled, helper.Reading(1), 2).result(timeout=120)
        message = str(info.value)
        assert "e2e_helper_not_shipped is not installed on the node" in message
        assert "include_modules=['e2e_helper_not_shipped']" in message
    finally:
        sys.modules.pop("e2e_helper_not_shipped", None)


def test_executor_include_modules_ships_a_module_auto_shipping_would_not(
    local_stack, tmp_path, monkeypatch
):
    import cloudpickle

    helper = _import_helper(tmp_path, monkeypatch, "e2e_helper_included")
    monkeypatch.setattr(codec, "_auto_ship", False)  # only the option can make it travel
    try:
        with Executor(include_modules=[helper]) as ex:
            assert ex.submit(helper.scaled, helper.Reading(5), 4).result(timeout=120) == 20
    finally:
        cloudpickle.unregister_pickle_by_value(helper)
        codec._shipped.discard("e2e_helper_included")
        sys.modules.pop("e2e_helper_included", None)
