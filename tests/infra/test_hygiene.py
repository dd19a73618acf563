"""Issue 17, points 4 and 6: node Pythons that exist, and the template's hygiene
(cfn-lint clean, the checkov findings we fixed). One synthesis (conftest.synth) plus
small stacks for the context switches."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

from impetus.cli.stackconfig import OUTPUT_TABLES
from impetus.core.config import ENV_TABLES, parse_tables
from impetus.core.grants import Component, actions
from impetus.storage.tables import STORE, TABLES
from infra.app import build
from infra.data import DataPlane
from infra.fleet import Network, NodeGroup, node_log_group
from infra.node_classes import parse
from infra.pythons import AL2023_PYTHONS, check_node_python
from tests.infra.test_stack import flatten, function, one, resources, role_statements, user_data

ROOT = Path(__file__).resolve().parents[2]
DLAMI = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023"


def context(**extra: object) -> dict:
    base = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {**base, **extra}


# --- point 4: Python versions AL2023 packages -----------------------------------------------------
def test_a_python_al2023_does_not_package_fails_synth_naming_the_ones_it_does(tmp_path):
    app = cdk.App(context=context(**{"impetus:pythonVersion": "3.10"}), outdir=str(tmp_path))
    with pytest.raises(ValueError) as failure:
        build(app)
    message = str(failure.value)
    assert message.startswith("Python 3.10 cannot run on the nodes: Amazon Linux 2023")
    for version in ("3.9", "3.11", "3.12", "3.13"):
        assert version in message
    assert "nodes can run 3.11, 3.12" in message  # 3.9 is below requires-python
    assert "https://docs.aws.amazon.com/linux/al2023/ug/python.html" in message
    assert "impetus:pythonVersion" in message


@pytest.mark.parametrize("version", ["3.9", "3.8", "3.15", "4.0"])
def test_other_unsupported_versions_are_refused(version):
    with pytest.raises(ValueError, match=f"Python {re.escape(version)} cannot run"):
        check_node_python(version, "impetus:pythonVersion")


def test_a_supported_python_renders_its_al2023_package_in_user_data(synth):
    stack, template, _ = synth
    version = stack.settings.python_version
    assert version in AL2023_PYTHONS and AL2023_PYTHONS[version] == f"python{version}"
    script = user_data(template, "default")
    assert f"PYTHON_VERSION={version}\n" in script
    # the bootstrap installs python$PYTHON_VERSION, i.e. the AL2023 package of that name
    assert 'dnf install -y -q "python$PYTHON_VERSION" "python$PYTHON_VERSION-pip"' in script


# --- point 6: the store table ---------------------------------------------------------------------
def tables_by_name(template: dict) -> dict[str, dict]:
    return {
        re.sub(r"^Data(\w+?)Table[0-9A-F]{8}$", r"\1", k).lower(): r
        for k, r in resources(template, "AWS::DynamoDB::Table").items()
    }


def test_store_table_has_pitr_and_is_retained(synth):
    _, template, _ = synth
    tables = tables_by_name(template)
    store = tables[STORE]
    assert store["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    assert store["DeletionPolicy"] == store["UpdateReplacePolicy"] == "Retain"
    for name, table in tables.items():  # queue state stays transient
        if name != STORE:
            assert table["DeletionPolicy"] == "Delete", name


def test_store_retention_can_be_turned_off_by_context():
    app = cdk.App(context={"impetus:retainStore": "false"})
    stack = cdk.Stack(app, "S")
    data = DataPlane(stack, "Data", prefix="x", retain_store=False)
    template = app.synth().get_stack_by_name("S").template
    store = template["Resources"][stack.resolve(data.tables[STORE].ref)["Ref"]]
    assert store["DeletionPolicy"] == "Delete"
    assert store["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]


@pytest.mark.parametrize(("raw", "expected"), [(None, True), ("false", False), (True, True)])
def test_retain_store_context_key(raw, expected):
    from infra.stack import StackSettings

    ctx = context()
    if raw is not None:
        ctx["impetus:retainStore"] = raw
    app = cdk.App(context=ctx)
    assert StackSettings.from_context(app, "Impetus").retain_store is expected


# --- point 6: no fixed physical names; the names reach their users --------------------------------
def test_no_fixed_table_or_group_names(synth):
    _, template, _ = synth
    for table in resources(template, "AWS::DynamoDB::Table").values():
        assert "TableName" not in table["Properties"]
    for group in resources(template, "AWS::AutoScaling::AutoScalingGroup").values():
        assert "AutoScalingGroupName" not in group["Properties"]


def test_table_names_reach_lambdas_nodes_and_the_cli(synth):
    _, template, _ = synth
    expected = {name: f"ref-{logical}" for name, logical in _table_ids(template).items()}
    assert set(expected) == set(TABLES)
    for handler in ("lambdas.api.app.handler", "lambdas.dfs.handler.handler"):
        env = function(template, handler)["Environment"]["Variables"]
        assert parse_tables(flatten(env[ENV_TABLES])) == expected, handler
    for node_class in ("default", "spot"):
        line = re.search(rf"^{ENV_TABLES}=(.*)$", user_data(template, node_class), re.M)
        assert parse_tables(line.group(1).rstrip("'")) == expected  # NODE_ENV is quoted
    assert parse_tables(flatten(template["Outputs"][OUTPUT_TABLES]["Value"])) == expected


def _table_ids(template: dict) -> dict[str, str]:
    return {
        re.sub(r"^Data(\w+?)Table[0-9A-F]{8}$", r"\1", k).lower(): k
        for k in resources(template, "AWS::DynamoDB::Table")
    }


# --- point 6: HTTP API access logging -------------------------------------------------------------
def test_http_api_stage_writes_access_logs_to_its_log_group(synth):
    _, template, _ = synth
    _, stage = one(template, "AWS::ApiGatewayV2::Stage")
    settings = stage["Properties"]["AccessLogSettings"]
    logical = settings["DestinationArn"]["Fn::GetAtt"][0]
    group = template["Resources"][logical]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == 30
    fields = json.loads(settings["Format"])
    assert fields["requestId"] == "$context.requestId"  # API Gateway requires it
    assert "header" not in settings["Format"].lower()  # never the Authorization header


# --- point 6: the DFS role ------------------------------------------------------------------------
def test_dfs_role_lacks_actions_dfs_never_calls(synth):
    _, template, _ = synth
    granted = {a for s in role_statements(template, "DfsDfsRole") for a in _as_list(s["Action"])}
    assert "ec2:DescribeInstances" not in granted
    assert "autoscaling:SetInstanceProtection" not in granted
    assert {"autoscaling:SetDesiredCapacity", "autoscaling:DescribeAutoScalingGroups"} <= granted
    dfs = actions(Component.DFS)
    assert "ec2:DescribeInstances" not in dfs and "autoscaling:SetInstanceProtection" not in dfs
    assert "autoscaling:SetInstanceProtection" in actions(Component.NODE)  # nodes still do


def test_dfs_code_never_calls_the_removed_actions():
    calls = re.compile(r"\.(describe_instances|set_instance_protection)\(")
    for folder in ("impetus/scaler", "lambdas/dfs"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not calls.search(path.read_text()), path


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


# --- point 6: the GPU example ---------------------------------------------------------------------
def test_gpu_example_class_boots_the_deep_learning_ami(tmp_path):
    classes = {
        c.name: c for c in parse(json.loads((ROOT / "examples/gpu_node_classes.json").read_text()))
    }
    gpu = classes["gpu"]
    assert gpu.image_parameter == f"{DLAMI}/latest/ami-id"
    app = cdk.App()
    stack = cdk.Stack(app, "Gpu")
    package = tmp_path / "package"
    package.mkdir()
    (package / "requirements.txt").write_text("")
    from aws_cdk import aws_s3_assets as s3_assets

    group = NodeGroup(
        stack,
        "Nodes-gpu",
        node_class=gpu,
        network=Network(stack, "Network"),
        data=DataPlane(stack, "Data", prefix="gpu"),
        package=s3_assets.Asset(stack, "Package", path=str(package)),
        log_group=node_log_group(stack),
        python_version="3.12",
        environment={},
        region="us-east-1",
    )
    template = app.synth().get_stack_by_name("Gpu").template
    (lt,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::LaunchTemplate"]
    data = lt["Properties"]["LaunchTemplateData"]
    parameter = template["Parameters"][data["ImageId"]["Ref"]]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert parameter["Default"] == gpu.image_parameter
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == gpu.root_volume_gb
    assert group.node_class.spot


# --- point 6: cfn-lint ----------------------------------------------------------------------------
def test_cfn_lint_finds_nothing_in_the_synthesized_template(synth, tmp_path):
    """The repository's .cfnlintrc (each ignored rule with its reason) applies."""
    stack, _, _ = synth
    path = tmp_path / "template.json"
    path.write_text(
        json.dumps(stack.node.root.synth().get_stack_by_name(stack.stack_name).template)
    )
    run = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
