"""Physical table names: a deployed stack's generated names (IMPETUS_TABLES) or the prefix."""

from __future__ import annotations

import pytest

from impetus.core.config import (
    ENV_ENDPOINT,
    ENV_NODE_GROUPS,
    ENV_TABLE_PREFIX,
    ENV_TABLES,
    AwsSettings,
    format_tables,
    parse_tables,
)
from impetus.core.exceptions import ConfigError
from impetus.storage.tables import TABLES, table_names_for

GENERATED = {name: f"Impetus-Data{name.capitalize()}Table-X1Y2" for name in TABLES}


def test_prefix_names_without_overrides():
    names = table_names_for(AwsSettings(table_prefix="local"))
    assert names == {name: f"local-{name}" for name in TABLES}


def test_generated_names_from_the_environment_win(monkeypatch):
    monkeypatch.setenv("IMPETUS_TABLES", format_tables(GENERATED))
    monkeypatch.setenv("IMPETUS_TABLE_PREFIX", "ignored")
    assert table_names_for(AwsSettings.from_env()) == GENERATED


def test_a_table_missing_from_the_overrides_is_an_error():
    partial = dict(list(GENERATED.items())[:2])
    with pytest.raises(ConfigError, match="no physical name for the tables"):
        table_names_for(AwsSettings(tables=partial))


@pytest.mark.parametrize("raw", ["streams", "streams=", "=x", "streams=a,queue"])
def test_malformed_tables_value_is_refused(raw):
    with pytest.raises(ConfigError, match="IMPETUS_TABLES"):
        parse_tables(raw)


def test_round_trip_and_blank_values():
    assert parse_tables(format_tables(GENERATED)) == GENERATED
    assert parse_tables("") == parse_tables(None) == {}


def test_dfs_commands_find_a_saved_deployments_generated_names(tmp_path, monkeypatch):
    import json

    from impetus.cli import dfs

    for name in (ENV_ENDPOINT, ENV_TABLE_PREFIX, ENV_TABLES, ENV_NODE_GROUPS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path))
    saved = {"region": "eu-west-1", "tables": GENERATED, "node_groups": {"default": "Grp-1"}}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    settings, groups = dfs._target()
    assert table_names_for(settings) == GENERATED
    assert settings.region == "eu-west-1" and groups == {"default": "Grp-1"}
    monkeypatch.setenv("IMPETUS_TABLES", format_tables({n: f"env-{n}" for n in TABLES}))
    settings, _ = dfs._target()  # the environment still wins
    assert table_names_for(settings)["streams"] == "env-streams"
