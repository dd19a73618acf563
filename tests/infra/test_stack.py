"""CDK assertions on the synthesised stack (one synthesis, see conftest.synth)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from impetus.cli.stackconfig import (
    OUTPUT_API_URL,
    OUTPUT_AUTHKEY_SECRET,
    OUTPUT_BUCKET,
    OUTPUT_NODE_GROUPS,
)
from impetus.core.config import (
    ENV_AUTHKEY,
    ENV_AUTHKEY_SECRET,
    ENV_BUCKET,
    ENV_DFS_FUNCTION,
    ENV_NODE_GROUPS,
    ENV_SIGNING_SECRET,
    ENV_TABLES,
)
from impetus.storage.tables import CLAIM_INDEX, TABLES
from infra import lock
from infra.build import LAMBDA_PYTHON
from infra.nodepackage import NodeTarget, build_node_package

DATA_SERVICES = ("dynamodb", "s3", "secretsmanager")


# --- helpers --------------------------------------------------------------------------------
def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def one(template: dict, kind: str) -> tuple[str, dict]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {list(found)}"
    return next(iter(found.items()))


def flatten(value: Any) -> str:
    """A CloudFormation string expression as text, references as plain placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(flatten(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return "us-east-1" if value["Ref"] == "AWS::Region" else f"ref-{value['Ref']}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "att-" + "-".join(value["Fn::GetAtt"])
    if isinstance(value, dict) and "Fn::Sub" in value:
        return re.sub(r"\$\{[^}]*\}", "sub", value["Fn::Sub"])
    raise AssertionError(f"unexpected expression {value}")


def statements(template: dict) -> list[tuple[str, dict]]:
    """(policy logical id, statement) of every identity policy in the template."""
    found = []
    for name, policy in resources(template, "AWS::IAM::Policy").items():
        found += [(name, s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    for name, role in resources(template, "AWS::IAM::Role").items():
        for inline in role["Properties"].get("Policies", []):
            found += [(name, s) for s in inline["PolicyDocument"]["Statement"]]
    return found


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def role_statements(template: dict, role_prefix: str) -> list[dict]:
    policies = resources(template, "AWS::IAM::Policy")
    return [
        s
        for name, p in policies.items()
        if any(r["Ref"].startswith(role_prefix) for r in p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions_on(stmts: list[dict], action: str) -> list[dict]:
    return [s for s in stmts if action in as_list(s["Action"]) and s["Effect"] == "Allow"]


def group_id(template: dict, node_class: str) -> str:
    groups = resources(template, "AWS::AutoScaling::AutoScalingGroup")
    return next(k for k in groups if k.startswith(f"Nodes{node_class}Group"))


def group_by_class(template: dict, node_class: str) -> dict:
    return template["Resources"][group_id(template, node_class)]


def user_data(template: dict, node_class: str) -> str:
    templates = resources(template, "AWS::EC2::LaunchTemplate")
    name = next(k for k in templates if k.startswith(f"Nodes{node_class}"))
    data = templates[name]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    return flatten(data)


# --- tables, bucket, secrets ----------------------------------------------------------------
def test_tables_are_built_from_the_shared_definitions(synth):
    stack, template, _ = synth
    tables = {
        re.sub(r"^Data(\w+?)Table[0-9A-F]{8}$", r"\1", k).lower(): r["Properties"]
        for k, r in resources(template, "AWS::DynamoDB::Table").items()
    }
    assert len(tables) == len(TABLES)
    for name, definition in TABLES.items():
        expected = definition.create_table_kwargs(stack.settings.prefix)
        deployed = tables[name]
        assert "TableName" not in deployed  # CloudFormation names it: replaceable
        assert deployed["KeySchema"] == expected["KeySchema"]
        assert deployed["AttributeDefinitions"] == expected["AttributeDefinitions"]
        assert deployed["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
        ttl = deployed.get("TimeToLiveSpecification")
        if definition.ttl_attribute:
            assert ttl == {"AttributeName": definition.ttl_attribute, "Enabled": True}
        else:
            assert ttl is None
        assert deployed["SSESpecification"] == {"SSEEnabled": True}
        assert deployed.get("GlobalSecondaryIndexes") == expected.get("GlobalSecondaryIndexes")


def test_the_queue_table_has_its_sparse_claim_index(synth):
    _, template, _ = synth
    queue = next(
        r["Properties"]
        for k, r in resources(template, "AWS::DynamoDB::Table").items()
        if k.startswith("DataQueueTable")
    )
    (index,) = queue["GlobalSecondaryIndexes"]
    assert index["IndexName"] == CLAIM_INDEX.name
    assert index["KeySchema"] == [
        {"AttributeName": "cpk", "KeyType": "HASH"},
        {"AttributeName": "csk", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["n", "cursor", "attempt", "failures", "stage", "priority", "due"],
    }
    assert "ProvisionedThroughput" not in index  # on-demand, like its table


def test_bucket_is_encrypted_private_and_expires_payloads(synth):
    _, template, _ = synth
    _, bucket = one(template, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Prefix"] == "payloads/" and rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] >= 1
    _, policy = one(template, "AWS::S3::BucketPolicy")
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_secrets_are_generated_and_their_values_go_nowhere(synth):
    _, template, _ = synth
    secrets = resources(template, "AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    for secret in secrets.values():
        generated = secret["Properties"]["GenerateSecretString"]
        assert generated["PasswordLength"] >= 32 and "SecretString" not in secret["Properties"]
    text = json.dumps(template)
    assert "resolve:secretsmanager" not in text  # no dynamic reference to a value anywhere
    assert "SecretString" not in json.dumps(template["Outputs"])
    authkey = next(k for k in secrets if k.startswith("DataAuthkey"))
    assert template["Outputs"][OUTPUT_AUTHKEY_SECRET]["Value"] == {"Ref": authkey}


# --- functions ------------------------------------------------------------------------------
def function(template: dict, handler: str) -> dict:
    functions = resources(template, "AWS::Lambda::Function").values()
    return next(f["Properties"] for f in functions if f["Properties"].get("Handler") == handler)


def test_api_lambda_behind_a_throttled_http_api(synth):
    _, template, _ = synth
    api = function(template, "lambdas.api.app.handler")
    assert api["Runtime"] == f"python{LAMBDA_PYTHON}"
    env = api["Environment"]["Variables"]
    assert set(env) >= {ENV_TABLES, ENV_AUTHKEY_SECRET, ENV_SIGNING_SECRET, ENV_BUCKET}
    assert ENV_DFS_FUNCTION in env and ENV_AUTHKEY not in env
    assert "Ref" in env[ENV_AUTHKEY_SECRET]  # the ARN, resolved at run time by the Lambda
    _, http_api = one(template, "AWS::ApiGatewayV2::Api")
    assert http_api["Properties"]["ProtocolType"] == "HTTP"
    _, integration = one(template, "AWS::ApiGatewayV2::Integration")
    assert integration["Properties"]["IntegrationType"] == "AWS_PROXY"
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    _, stage = one(template, "AWS::ApiGatewayV2::Stage")
    throttle = stage["Properties"]["DefaultRouteSettings"]
    assert throttle["ThrottlingRateLimit"] > 0 and throttle["ThrottlingBurstLimit"] > 0
    assert stage["Properties"]["StageName"] == "$default"


def test_dfs_runs_every_minute_and_the_api_may_nudge_it(synth):
    _, template, _ = synth
    dfs = function(template, "lambdas.dfs.handler.handler")
    groups = json.loads(flatten(dfs["Environment"]["Variables"][ENV_NODE_GROUPS]))
    assert groups == {c: f"ref-{group_id(template, c)}" for c in ("default", "spot")}
    assert "ReservedConcurrentExecutions" not in dfs  # new accounts refuse it (a lease instead)
    _, rule = one(template, "AWS::Events::Rule")
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    (target,) = rule["Properties"]["Targets"]
    dfs_id = next(
        k
        for k, r in resources(template, "AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == "lambdas.dfs.handler.handler"
    )
    assert target["Arn"] == {"Fn::GetAtt": [dfs_id, "Arn"]}
    api_env = function(template, "lambdas.api.app.handler")["Environment"]["Variables"]
    assert api_env[ENV_DFS_FUNCTION] == {"Ref": dfs_id}
    (invoke,) = actions_on(role_statements(template, "ApiApiRole"), "lambda:InvokeFunction")
    assert invoke["Resource"] == {"Fn::GetAtt": [dfs_id, "Arn"]}


def test_lambda_bundle_holds_our_code_and_platform_dependencies(synth):
    from infra.build import build_lambda_bundle

    bundle = build_lambda_bundle()  # cached by the synth above
    assert (bundle / "lambdas" / "api" / "app.py").is_file()
    assert (bundle / "impetus" / "storage" / "queue.py").is_file()
    assert (bundle / "aws_lambda_powertools").is_dir() and (bundle / "cloudpickle").is_dir()
    cores = list((bundle / "pydantic_core").glob("*.so"))
    tag = "cpython-" + LAMBDA_PYTHON.replace(".", "")
    assert cores and all(tag in so.name and "x86_64" in so.name for so in cores)
    assert not list(bundle.rglob("__pycache__"))


# --- network and nodes ----------------------------------------------------------------------
def test_new_vpc_with_gateway_endpoints_and_no_nat(synth):
    _, template, _ = synth
    one(template, "AWS::EC2::VPC")
    assert not resources(template, "AWS::EC2::NatGateway")
    endpoints = resources(template, "AWS::EC2::VPCEndpoint").values()
    services = sorted(flatten(e["Properties"]["ServiceName"]).split(".")[-1] for e in endpoints)
    assert services == ["dynamodb", "s3"]
    assert all(e["Properties"]["VpcEndpointType"] == "Gateway" for e in endpoints)
    _, group = one(template, "AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in group["Properties"]


def test_each_node_class_has_a_group_from_zero_and_a_termination_hook(synth):
    stack, template, _ = synth
    for node_class in stack.settings.node_classes:
        group = group_by_class(template, node_class.name)["Properties"]
        assert group["MinSize"] == "0" and group["MaxSize"] == str(node_class.max)
        assert "DesiredCapacity" not in group  # DFS owns it; a deploy must not reset it
    hooks = [
        h["Properties"] for h in resources(template, "AWS::AutoScaling::LifecycleHook").values()
    ]
    assert len(hooks) == 2
    for hook in hooks:
        assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert hook["DefaultResult"] == "CONTINUE"
    assert sorted(h["HeartbeatTimeout"] for h in hooks) == [30 + 60, 120 + 60]


def test_spot_class_uses_a_mixed_policy_of_its_instance_types(synth):
    _, template, _ = synth
    on_demand = group_by_class(template, "default")["Properties"]
    assert "LaunchTemplate" in on_demand and "MixedInstancesPolicy" not in on_demand
    spot = group_by_class(template, "spot")["Properties"]["MixedInstancesPolicy"]
    distribution = spot["InstancesDistribution"]
    assert distribution["OnDemandPercentageAboveBaseCapacity"] == 0
    assert distribution["SpotAllocationStrategy"] == "price-capacity-optimized"
    types = [o["InstanceType"] for o in spot["LaunchTemplate"]["Overrides"]]
    assert types == ["c7g.large", "m7g.large"]
    templates = resources(template, "AWS::EC2::LaunchTemplate")
    arm = next(v for k, v in templates.items() if k.startswith("Nodesspot"))
    image = arm["Properties"]["LaunchTemplateData"]["ImageId"]["Ref"]
    assert "arm64" in template["Parameters"][image]["Default"]


def test_spot_groups_rebalance_capacity_and_their_agents_watch_for_interruptions(synth):
    _, template, _ = synth
    spot = group_by_class(template, "spot")["Properties"]
    assert spot["CapacityRebalance"] is True
    distribution = spot["MixedInstancesPolicy"]["InstancesDistribution"]
    assert distribution.get("OnDemandBaseCapacity", 0) == 0
    on_demand = group_by_class(template, "default")["Properties"]
    assert "CapacityRebalance" not in on_demand and "MixedInstancesPolicy" not in on_demand
    assert "IMPETUS_IMDS_URL=http://169.254.169.254" in user_data(template, "spot")
    assert "IMPETUS_IMDS_URL" not in user_data(template, "default")


def test_launch_templates_require_imdsv2_and_encrypt_the_disk(synth):
    _, template, _ = synth
    for lt in resources(template, "AWS::EC2::LaunchTemplate").values():
        data = lt["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        # a failed bootstrap's shutdown terminates the node (not a stopped, billed volume)
        assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
        assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
        assert data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True


def test_user_data_installs_the_unit_and_holds_no_secret(synth):
    _, template, _ = synth
    script = user_data(template, "default")
    unit = (Path(__file__).resolve().parents[2] / "node_agent" / "impetus-node.service").read_text()
    assert unit.strip() in script  # the repository's unit, verbatim
    for line in ("Restart=on-failure", "KillSignal=SIGTERM", "KillMode=mixed"):
        assert line in script
    assert "TimeoutStopSec=$((GRACE + 30))" in script and "GRACE=30" in script
    assert "PYTHON_VERSION={}.{}".format(*sys.version_info[:2]) in script
    assert "amazon-cloudwatch-agent" in script and "LOG_GROUP='ref-NodeLogs" in script
    assert "IMPETUS_LOG_GROUP=ref-NodeLogs" in script  # jobs' output shipped there too
    secrets = resources(template, "AWS::SecretsManager::Secret")
    authkey = next(k for k in secrets if k.startswith("DataAuthkey"))
    signing = next(k for k in secrets if k.startswith("DataSigningKey"))
    assert f"ref-{authkey}" not in script and ENV_AUTHKEY_SECRET not in script
    assert f"{ENV_SIGNING_SECRET}=ref-{signing}" in script  # the id, read with the role
    assert "AUTHKEY" not in script.upper().replace(ENV_SIGNING_SECRET, "")
    assert len(script.encode()) < 16 * 1024  # EC2's user-data limit (before base64)


def test_each_node_class_installs_its_locked_package_with_no_index(synth):
    stack, template, _ = synth
    scripts = {name: user_data(template, name) for name in ("default", "spot")}
    sources = {
        name: re.search(r"^PACKAGE_SOURCE=(.*)$", script, re.M).group(1)
        for name, script in scripts.items()
    }
    assert sources["default"] != sources["spot"]  # another platform and requirements
    assert all(".zip" in source for source in sources.values())
    assert all("pip install" in s and "--no-index" in s for s in scripts.values())
    python = stack.settings.python_version
    for node_class in stack.settings.node_classes:
        target = NodeTarget(python, node_class.arm, node_class.requirements)
        package = build_node_package(target)  # cached by the synth
        pins = (package / "requirements.txt").read_text().split()
        assert set(lock.pins((), python, target.machine)) <= set(pins)  # the lock's, exactly
        assert len(list((package / "wheelhouse").glob("*.whl"))) == len(pins)
        assert len(list(package.glob("impetus-*.whl"))) == 1
        has_extra = any(pin.startswith("humanize==") for pin in pins)
        assert has_extra == (node_class.name == "spot")


def test_user_data_passes_shellcheck(synth, tmp_path):
    _, template, _ = synth
    for node_class in ("default", "spot"):
        path = tmp_path / f"{node_class}.sh"
        path.write_text(user_data(template, node_class))
        shellcheck = Path(sys.executable).with_name("shellcheck")
        run = subprocess.run([str(shellcheck), "--severity=info", str(path)], capture_output=True)
        assert run.returncode == 0, run.stdout.decode()


# --- IAM ------------------------------------------------------------------------------------
def test_no_wildcard_action_or_resource_on_data(synth):
    _, template, _ = synth
    checked = 0
    for policy, statement in statements(template):
        if statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            assert action != "*", policy
            service, _, name = action.partition(":")
            if service in DATA_SERVICES:
                checked += 1
                assert "*" not in name, f"{policy}: {action}"
                assert "*" not in as_list(statement["Resource"]), f"{policy}: {action} on *"
    assert checked > 20


def test_nodes_read_only_the_signing_secret(synth):
    _, template, _ = synth
    secrets = resources(template, "AWS::SecretsManager::Secret")
    signing = next(k for k in secrets if k.startswith("DataSigningKey"))
    for node_class in ("default", "spot"):
        stmts = role_statements(template, f"Nodes{node_class}Role")
        (read,) = actions_on(stmts, "secretsmanager:GetSecretValue")
        assert read["Resource"] == {"Ref": signing}
        payload = actions_on(stmts, "s3:PutObject")[0]
        assert flatten(payload["Resource"]).endswith("/payloads/*")
        (groups,) = actions_on(stmts, "autoscaling:CompleteLifecycleAction")
        name = f"autoScalingGroupName/ref-{group_id(template, node_class)}"
        assert flatten(groups["Resource"]).endswith(name)
        # every Auto Scaling call node_agent/scaling.py makes is allowed
        for call in ("DescribeAutoScalingInstances", "DescribeLifecycleHooks"):
            assert actions_on(stmts, f"autoscaling:{call}"), call
    api = role_statements(template, "ApiApiRole")
    (read,) = actions_on(api, "secretsmanager:GetSecretValue")
    assert sorted(r["Ref"] for r in read["Resource"]) == sorted(secrets)


def test_only_claimers_query_the_claim_index_and_no_other_index_is_granted(synth):
    """Nodes (claims) and DFS (the oldest wait) may Query the queue's claim index, on
    its own ARN; the API may not, and no role gets the tables' ``index/*``."""
    _, template, _ = synth
    roles = {
        "node": role_statements(template, "NodesdefaultRole"),
        "dfs": role_statements(template, "DfsDfsRole"),
        "api": role_statements(template, "ApiApiRole"),
    }
    for who, stmts in roles.items():
        on_index = [
            s for s in stmts if any("/index/" in flatten(r) for r in as_list(s["Resource"]))
        ]
        if who == "api":
            assert on_index == []
            continue
        (grant,) = on_index
        assert as_list(grant["Action"]) == ["dynamodb:Query"]
        (arn,) = as_list(grant["Resource"])
        assert flatten(arn).endswith(f"/index/{CLAIM_INDEX.name}")
        assert "DataQueueTable" in flatten(arn)


def test_dfs_mutates_only_the_node_groups_and_its_metric_namespace(synth):
    _, template, _ = synth
    stmts = role_statements(template, "DfsDfsRole")
    (scale,) = actions_on(stmts, "autoscaling:SetDesiredCapacity")
    names = sorted(flatten(r).rsplit("/", 1)[1] for r in as_list(scale["Resource"]))
    assert names == sorted(f"ref-{group_id(template, c)}" for c in ("default", "spot"))
    (metrics,) = actions_on(stmts, "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Impetus"}}


# --- observability and outputs --------------------------------------------------------------
def test_log_groups_have_retention_and_functions_use_them(synth):
    _, template, _ = synth
    groups = resources(template, "AWS::Logs::LogGroup")
    assert len(groups) == 5  # API, its authorizer, DFS, nodes, the HTTP API's access log
    assert all(g["Properties"]["RetentionInDays"] == 30 for g in groups.values())
    handlers = ("lambdas.api.app.handler", "lambdas.authorizer.handler.handler")
    for handler in (*handlers, "lambdas.dfs.handler.handler"):
        config = function(template, handler)["LoggingConfig"]
        assert config["LogGroup"]["Ref"] in groups


def test_dashboard_and_alarms(synth):
    _, template, _ = synth
    _, dashboard = one(template, "AWS::CloudWatch::Dashboard")
    body = flatten(dashboard["Properties"]["DashboardBody"])
    for title in ("Backlog", "Nodes in service", "Busy workers", "Errors"):
        assert f'"title":"{title}"' in body
    assert "GroupInServiceInstances" in body and "WaitingJobs" in body
    alarms = {k: a["Properties"] for k, a in resources(template, "AWS::CloudWatch::Alarm").items()}
    by_name = {re.sub(r"^Monitoring|[0-9A-F]{8}$", "", k): a for k, a in alarms.items()}
    failed_boots = {"FailedBootsdefault", "FailedBootsspot"}  # one per node class
    assert set(by_name) == {"OldestWaitingJob", "ApiErrorRate", "DfsFailures", *failed_boots}
    for name, node_class in (("FailedBootsdefault", "default"), ("FailedBootsspot", "spot")):
        alarm = by_name[name]
        assert alarm["MetricName"] == "FailedBootsLastHour" and alarm["Threshold"] == 3
        assert alarm["Dimensions"] == [{"Name": "NodeClass", "Value": node_class}]
    assert by_name["OldestWaitingJob"]["MetricName"] == "OldestWaitingJobAge"
    assert by_name["DfsFailures"]["MetricName"] == "Errors"
    expressions = [m.get("Expression") for m in by_name["ApiErrorRate"]["Metrics"]]
    assert any(e and "errors / invocations" in e for e in expressions)
    assert all(a["AlarmActions"] for a in alarms.values())


def test_outputs_for_the_client(synth):
    _, template, _ = synth
    outputs = template["Outputs"]
    assert {OUTPUT_API_URL, OUTPUT_AUTHKEY_SECRET, OUTPUT_BUCKET, OUTPUT_NODE_GROUPS} <= set(
        outputs
    )
    assert flatten(outputs[OUTPUT_API_URL]["Value"]).startswith("https://")


def test_local_policies_have_the_synthesized_roles_actions(synth):
    """Both renderers of impetus.core.grants: each component's local moto policy holds the
    actions of its synthesized role (in moto's names, plus moto's aliases)."""
    from impetus.core.grants import Component, Res
    from impetus.local import iam as local_iam

    _, template, _ = synth
    placeholders = {kind: [f"arn:aws:s3:::placeholder-{kind.name}"] for kind in Res}
    aliases = {alias.action for alias in local_iam.MOTO_ALIASES}
    roles = {
        "ApiApiRole": Component.API,
        "DfsDfsRole": Component.DFS,
        "NodesdefaultRole": Component.NODE,
        "NodesspotRole": Component.NODE,
    }
    for role, component in roles.items():
        synthesized = {a for s in role_statements(template, role) for a in as_list(s["Action"])}
        document = local_iam.policy_document(component, placeholders)
        local = {a for s in document["Statement"] for a in s["Action"]}
        assert local - aliases == {local_iam.moto_name(a) for a in synthesized}, role
        assert all("Condition" not in s for s in document["Statement"])  # moto denies those
