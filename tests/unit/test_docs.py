"""The generated reference docs: committed files match the code; generation covers all."""

from __future__ import annotations

import json

from docs import generate as docs
from impetus.core import properties
from impetus.core.config import ENVIRONMENT_VARIABLES
from node_agent.cli import build_parser


def test_committed_docs_are_up_to_date():
    stale = docs.stale()
    assert not stale, f"stale: {stale}; regenerate with `python -m docs.generate` and commit"


def test_configuration_names_every_property_option_and_variable():
    text = docs.configuration()
    for name in properties.PROPERTIES:
        assert f"| `{name}` |" in text, name
    for name in ENVIRONMENT_VARIABLES:
        assert f"| `{name}` |" in text, name
    for action in build_parser()._actions:
        for option in action.option_strings:
            if option in ("-h", "--help"):
                continue
            assert f"`{option}`" in text, option


def test_cli_reference_has_every_command():
    from impetus.cli.main import build_parser as impetus_parser

    text = docs.cli()
    for name, sub in docs._subparsers(impetus_parser()).items():
        assert f"### `impetus {name}`" in text, name
        for child in docs._subparsers(sub):
            assert f"### `impetus {name} {child}`" in text, (name, child)
    assert "### `impetus-node`" in text and "--heartbeat-interval" in text


def test_a_new_property_or_variable_appears_without_touching_the_generator(monkeypatch):
    new = properties.Property("rate", float, None, 0, 1000, "Jobs per second, at most.")
    monkeypatch.setitem(properties.PROPERTIES, "rate", new)
    monkeypatch.setitem(ENVIRONMENT_VARIABLES, "IMPETUS_SOMETHING", "Something new.")
    text = docs.configuration()
    assert "| `rate` | float | - | 0 to 1000 | Jobs per second, at most. |" in text
    assert "| `IMPETUS_SOMETHING` | Something new. |" in text


def test_machine_paths_do_not_leak_into_the_docs(monkeypatch, tmp_path):
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path))
    assert str(tmp_path) not in docs.configuration()
    assert str(tmp_path) not in docs.cli()


def test_openapi_file_is_the_served_description():
    from lambdas.api.app import OPENAPI, app

    committed = json.loads((docs.DOCS / "openapi.json").read_text())
    assert committed == json.loads(app.get_openapi_json_schema(**OPENAPI))
    assert "/streams/{stream_id}/jobs" in committed["paths"] and "/nodes" in committed["paths"]


def test_check_mode_exit_codes(tmp_path, capsys):
    assert docs.main(["--dir", str(tmp_path), "--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    assert docs.main(["--dir", str(tmp_path)]) == 0
    assert docs.main(["--dir", str(tmp_path), "--check"]) == 0
