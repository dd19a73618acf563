"""Node settings, the heartbeat item and the CLI's argument handling (no AWS)."""

from __future__ import annotations

import os
import time

import pytest

from impetus.core.exceptions import ConfigError
from impetus.storage import dynamo
from impetus.storage.nodes import NodeBeat, NodeStats
from node_agent import daemon
from node_agent.cli import build_parser, main, settings_from_args
from node_agent.config import NodeSettings, parse_properties


def test_parse_properties():
    assert parse_properties("a:1, b:x:y,,") == {"a": "1", "b": "x:y"}
    assert parse_properties("") == {} and parse_properties(None) == {}
    with pytest.raises(ConfigError):
        parse_properties("novalue")
    with pytest.raises(ConfigError):
        parse_properties(":v")


def test_settings_from_env_and_overrides(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("IMPETUS_TABLE_PREFIX", "t1")
    s = NodeSettings.from_env(mpps=3, grace=None)
    assert (s.mpps, s.grace, s.aws.endpoint_url, s.aws.table_prefix) == (
        3,
        30.0,
        "http://127.0.0.1:5999",
        "t1",
    )
    assert s.node_id == ""
    assert s.resolved().node_id.endswith(f"-{os.getpid()}")
    assert NodeSettings(node_id="n1").resolved().node_id == "n1"


@pytest.mark.parametrize(
    "bad", [{"mpps": 0}, {"lease": 0}, {"grace": -1}, {"lease": 5, "heartbeat_interval": 5}]
)
def test_invalid_settings(bad):
    with pytest.raises(ConfigError):
        NodeSettings.from_env(**bad)


def test_cli_args_become_settings(tmp_path):
    args = build_parser().parse_args(
        [
            "foreground",
            "--mpps",
            "4",
            "--properties",
            "node_class:big",
            "--piddir",
            str(tmp_path),
            "--node-id",
            "n7",
            "--grace",
            "2",
        ]
    )
    s = settings_from_args(args)
    assert (s.mpps, s.properties, s.piddir, s.node_id, s.grace) == (
        4,
        {"node_class": "big"},
        tmp_path,
        "n7",
        2.0,
    )


def test_cli_user_mistakes_are_one_line_errors(capsys, tmp_path):
    assert main(["foreground", "--mpps", "0"]) == 1
    assert capsys.readouterr().err == "impetus-node: error: mpps must be at least 1, got 0\n"
    assert main(["stop", "--piddir", str(tmp_path)]) == 1
    assert "not running" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["jump"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_pidfile_helpers(tmp_path):
    pidfile = daemon.pidfile_path(tmp_path)
    assert daemon.running_pid(pidfile) is None
    daemon.write_pidfile(pidfile)
    assert daemon.running_pid(pidfile) == os.getpid()
    daemon.remove_pidfile(pidfile)
    assert not pidfile.exists()
    pidfile.write_text("999999999\n")  # no such process: stale
    assert daemon.running_pid(pidfile) is None and not pidfile.exists()


def test_node_item_fields():
    now = time.time()
    item = NodeBeat(
        node_id="n1",
        host="h",
        pid=42,
        started=now - 10,
        at=now,
        interval=5.0,
        properties={"node_class": "big"},
        mpps=2,
        stats=NodeStats(streams=["s1"], workers_total=2, workers_busy=1, jobs_done=9),
        state="running",
    ).item()
    assert item["node"] == "n1" and item["state"] == "running"
    assert item["expires"] == int(now + 15)
    stored = dynamo.deserialize(dynamo.serialize(item))  # storable as a DynamoDB item
    assert abs(stored["heartbeat"] - now) < 0.01
    assert (item["workers_total"], item["workers_busy"], item["jobs_done"]) == (2, 1, 9)
    assert item["streams"] == ["s1"] and item["properties"] == {"node_class": "big"}
