"""CLI conventions (issue 20, point 5): a bare `impetus` prints help, `--version`."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from impetus.cli import main


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
