"""The ``name`` property: its validation and the default the client gives it."""

from __future__ import annotations

import sys

import pytest

from impetus.core.exceptions import InvalidRequest
from impetus.core.properties import MAX_NAME, validate
from impetus.streamname import printable, program_name


@pytest.mark.parametrize("good", ["a", "resize photos", "über-job #3", "x" * MAX_NAME])
def test_printable_names_up_to_the_limit_pass(good):
    assert validate({"name": good}) == {"name": good}


@pytest.mark.parametrize("bad", ["", "x" * (MAX_NAME + 1), "a\n", "tab\there", "\x1b[2J", 7])
def test_empty_long_control_or_non_string_names_fail(bad):
    with pytest.raises(InvalidRequest, match="property 'name' must"):
        validate({"name": bad})


@pytest.mark.parametrize(
    ("argv0", "expected"),
    [
        ("/srv/jobs/resize_photos.py", "resize_photos"),
        ("/srv/pkg/__main__.py", "pkg"),  # python -m pkg
        ("", "App"),  # the REPL
        ("-c", "App"),
        ("/x/site-packages/ipykernel_launcher.py", "App"),  # a notebook
    ],
)
def test_program_name(monkeypatch, argv0, expected):
    monkeypatch.setattr(sys, "argv", [argv0])
    assert program_name("App") == expected


def test_printable_drops_control_characters_and_cuts_to_the_limit():
    assert printable("a\x1bb\nc") == "abc"
    assert len(printable("y" * 500)) == MAX_NAME
    assert printable("\n") == "stream"
