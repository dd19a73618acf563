"""Authentication at the edge: every HTTP API route goes through the Lambda authorizer,
which caches per Authorization header and may read the authkey secret and nothing else."""

from __future__ import annotations

import json
from typing import Any

from cfnlint.api import lint

from impetus.core.config import ENV_AUTHKEY_SECRET

AUTHORIZER_HANDLER = "lambdas.authorizer.handler.handler"
# CDK writes DependsOn on a function's role although Fn::GetAtt already orders them.
CDK_NOISE = {"W3005"}


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def function_id(template: dict, handler: str) -> str:
    functions = resources(template, "AWS::Lambda::Function")
    (found,) = [k for k, f in functions.items() if f["Properties"].get("Handler") == handler]
    return found


def role_policies(template: dict, role_id: str) -> list[dict]:
    return [
        p["Properties"]
        for p in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def test_every_route_goes_through_the_cached_simple_authorizer(synth):
    _, template, _ = synth
    ((authorizer_id, authorizer),) = resources(template, "AWS::ApiGatewayV2::Authorizer").items()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "REQUEST"
    assert props["AuthorizerPayloadFormatVersion"] == "2.0"
    assert props["EnableSimpleResponses"] is True
    assert props["IdentitySource"] == ["$request.header.Authorization"]
    assert props["AuthorizerResultTtlInSeconds"] == 300
    uri = json.dumps(props["AuthorizerUri"])
    assert function_id(template, AUTHORIZER_HANDLER) in uri

    routes = resources(template, "AWS::ApiGatewayV2::Route")
    assert routes, "the HTTP API has no route"
    for name, route in routes.items():
        assert route["Properties"]["AuthorizationType"] == "CUSTOM", name
        assert route["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}, name


def test_only_api_gateway_may_invoke_the_authorizer(synth):
    _, template, _ = synth
    authorizer_fn = function_id(template, AUTHORIZER_HANDLER)
    permissions = [
        p["Properties"]
        for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [authorizer_fn, "Arn"]}
    ]
    (permission,) = permissions
    assert permission["Principal"] == "apigateway.amazonaws.com"
    source = json.dumps(permission["SourceArn"])
    (api_id,) = resources(template, "AWS::ApiGatewayV2::Api")
    assert api_id in source and "/authorizers/" in source


def test_authorizer_role_reads_only_the_authkey_and_writes_its_logs(synth):
    _, template, _ = synth
    authorizer_fn = resources(template, "AWS::Lambda::Function")[
        function_id(template, AUTHORIZER_HANDLER)
    ]["Properties"]
    role_id = authorizer_fn["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role and "Policies" not in role

    statements = [
        s for p in role_policies(template, role_id) for s in p["PolicyDocument"]["Statement"]
    ]
    granted = {a: s["Resource"] for s in statements for a in as_list(s["Action"])}
    assert all(s["Effect"] == "Allow" for s in statements)
    secrets = resources(template, "AWS::SecretsManager::Secret")
    (authkey,) = [k for k in secrets if k.startswith("DataAuthkey")]
    log_group = authorizer_fn["LoggingConfig"]["LogGroup"]["Ref"]
    assert granted == {
        "secretsmanager:GetSecretValue": {"Ref": authkey},
        "logs:CreateLogStream": {"Fn::GetAtt": [log_group, "Arn"]},
        "logs:PutLogEvents": {"Fn::GetAtt": [log_group, "Arn"]},
    }
    # It learns which secret from its environment, and nothing else about the stack.
    assert authorizer_fn["Environment"]["Variables"] == {ENV_AUTHKEY_SECRET: {"Ref": authkey}}
    assert template["Resources"][log_group]["Properties"]["RetentionInDays"] == 30


def test_template_passes_cfn_lint(synth):
    _, template, _ = synth
    findings = [m for m in lint(json.dumps(template)) if m.rule.id not in CDK_NOISE]
    assert findings == [], "\n".join(str(m) for m in findings)
