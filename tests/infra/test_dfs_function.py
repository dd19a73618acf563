"""The DFS function's concurrency: no reservation by default (a new account's quota of
10 or 50 makes CloudFormation refuse one), a reservation only through the opt-in context
key. A small stack with DfsService alone: no node package, no full synth."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from infra.functions import CONTEXT_DFS_RESERVED, DFS_HANDLER, DfsService


def dfs_function(context: dict) -> dict:
    app = cdk.App(context=context)
    stack = cdk.Stack(app, "DfsOnly")
    DfsService(
        stack, "Dfs", code=lambda_.Code.from_inline("def handler(e, c): pass"), environment={}
    )
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    (dfs,) = [
        f["Properties"] for f in functions.values() if f["Properties"]["Handler"] == DFS_HANDLER
    ]
    return dfs


def test_no_reserved_concurrency_by_default():
    assert "ReservedConcurrentExecutions" not in dfs_function({})


def test_the_context_key_reserves_concurrency():
    assert dfs_function({CONTEXT_DFS_RESERVED: 1})["ReservedConcurrentExecutions"] == 1
    assert dfs_function({CONTEXT_DFS_RESERVED: "2"})["ReservedConcurrentExecutions"] == 2


@pytest.mark.parametrize("bad", [0, -1, "one", 1.5])
def test_a_bad_reservation_is_refused_at_synth(bad):
    with pytest.raises(ValueError, match=CONTEXT_DFS_RESERVED):
        dfs_function({CONTEXT_DFS_RESERVED: bad})
