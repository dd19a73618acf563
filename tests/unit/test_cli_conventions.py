"""CLI conventions (issue 20, point 5): a bare `impetus` prints help, `--version`."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from impetus.cli import main
from impetus.cli.main import build_parser
from impetus.local.control import differences


def test_bare_impetus_prints_the_help_and_exits_0(capsys):
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: impetus") and "streams" in out and "watch" in out
    assert err == ""


def test_bare_impetus_as_a_process_prints_the_help():
    done = subprocess.run(
        [sys.executable, "-m", "impetus.cli"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: impetus")


def test_version_prints_impetus_and_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"impetus {importlib.metadata.version('impetus')}\n"


def test_a_group_without_its_command_is_still_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["local"])
    assert exit_info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_local_up_names_only_the_given_options_that_differ_from_the_running_stack():
    running = {"options": {"nodes": 1, "mpps": 4, "max_nodes": 4, "api_port": 0}}
    assert differences({"nodes": 2, "mpps": 4}, running) == ["--nodes 2 (running: 1)"]
    assert differences({"nodes": 1, "api_port": 0}, running) == []
    autoscaled = {"options": {"nodes": None, "max_nodes": 4}}
    assert differences({"nodes": 3, "max_nodes": 8}, autoscaled) == [
        "--max-nodes 8 (running: 4)",
        "--nodes 3 (running: DFS autoscaling)",
    ]
    assert differences({"nodes": 2}, {}) == []  # a stack that recorded no options


def test_local_up_marks_given_options_apart_from_defaults():
    args = build_parser().parse_args(["local", "up", "--mpps", "4"])
    assert args.mpps == 4 and args.nodes is None and args.max_nodes is None  # filled later
