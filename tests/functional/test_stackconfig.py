"""`impetus config from-stack`: outputs from CloudFormation, authkey from the secret (moto)."""

from __future__ import annotations

import json
import stat

import boto3
import pytest

from impetus import cli
from impetus.cli.stackconfig import (
    OUTPUT_API_URL,
    OUTPUT_AUTHKEY_SECRET,
    OUTPUT_BUCKET,
    OUTPUT_NODE_GROUPS,
    OUTPUT_REGION,
    OUTPUT_TABLES,
)
from impetus.core.config import ClientSettings

API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/"


def _deploy(name: str, outputs: dict[str, str]) -> None:
    """A trivial stack whose only purpose is its Outputs."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def deployed(aws):
    secret = boto3.client("secretsmanager").create_secret(
        Name="impetus-authkey-x1", SecretString="the-authkey-value"
    )
    _deploy(
        "Impetus",
        {
            OUTPUT_API_URL: API_URL,
            OUTPUT_AUTHKEY_SECRET: secret["ARN"],
            OUTPUT_BUCKET: "impetus-bucket-1",
            OUTPUT_NODE_GROUPS: json.dumps({"default": "impetus-default"}),
            OUTPUT_REGION: "us-east-1",
            OUTPUT_TABLES: "streams=Impetus-DataStreams-1A,store=Impetus-DataStore-2B",
        },
    )
    return secret["ARN"]


def test_from_stack_writes_private_client_settings(deployed, home, capsys):
    assert cli.main(["config", "from-stack", "Impetus"]) == 0
    path = home / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = json.loads(path.read_text())
    assert settings["api_url"] == API_URL.rstrip("/")
    assert settings["authkey"] == "the-authkey-value"
    assert settings["authkey_secret"] == deployed
    assert settings["bucket"] == "impetus-bucket-1"
    assert settings["node_groups"] == {"default": "impetus-default"}
    assert settings["tables"] == {
        "streams": "Impetus-DataStreams-1A",
        "store": "Impetus-DataStore-2B",
    }
    out = capsys.readouterr().out
    assert str(path) in out and "the-authkey-value" not in out


def test_resolve_precedence_explicit_env_config_local(deployed, home, monkeypatch):
    (home / "local.json").write_text(json.dumps({"api_url": "http://local", "authkey": "lk"}))
    assert ClientSettings.resolve().api_url == "http://local"  # only the local stack
    assert cli.main(["config", "from-stack", "Impetus"]) == 0
    resolved = ClientSettings.resolve()
    assert (resolved.api_url, resolved.authkey) == (API_URL.rstrip("/"), "the-authkey-value")
    monkeypatch.setenv("IMPETUS_API_URL", "http://env")
    monkeypatch.setenv("IMPETUS_AUTHKEY", "ek")
    assert ClientSettings.resolve().api_url == "http://env"
    explicit = ClientSettings.resolve(api_url="http://arg", authkey="ak")
    assert (explicit.api_url, explicit.authkey) == ("http://arg", "ak")


def test_missing_stack_is_one_line_and_exit_1(aws, home, capsys):
    assert cli.main(["config", "from-stack", "Nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("impetus: error: cannot read stack Nope") and "\n" not in err
    assert not (home / "config.json").exists()


def test_a_stack_without_impetus_outputs_is_refused(aws, home, capsys):
    _deploy("Other", {"Something": "else"})
    assert cli.main(["config", "from-stack", "Other"]) == 1
    assert "not an Impetus stack" in capsys.readouterr().err
    assert not (home / "config.json").exists()


def test_unreadable_secret_is_reported(aws, home, capsys):
    _deploy("Broken", {OUTPUT_API_URL: API_URL, OUTPUT_AUTHKEY_SECRET: "no-such-secret"})
    assert cli.main(["config", "from-stack", "Broken"]) == 1
    assert "cannot read the authkey secret" in capsys.readouterr().err
