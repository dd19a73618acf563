"""One synthesis of the stack for every CDK test (a synth costs ~1 GB and several seconds).

The App gets the repository's cdk.json context (feature flags, the default node class)
plus a second, Spot, Graviton node class with an extra requirement, so both group shapes
and both node packages are synthesised once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPOT_CLASS = {
    "name": "spot",
    "instanceTypes": ["c7g.large", "m7g.large"],
    "max": 10,
    "mpps": 4,
    "properties": {"node_class": "spot"},
    "spot": True,
    "grace": 120,
    "requirements": ["humanize"],  # an extra package jobs of this class may import
}

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """(stack, template dict, assertions Template) of one App."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.app import build

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    context["impetus:nodeClasses"] = [*context["impetus:nodeClasses"], SPOT_CLASS]
    app = cdk.App(context=context, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    stack = build(app)
    template = Template.from_stack(stack)
    return stack, template.to_json(), template
