"""Node classes from CDK context or a file: parsing, defaults, validation."""

from __future__ import annotations

import json

import pytest

from infra.node_classes import CONTEXT_CLASSES, CONTEXT_CLASSES_FILE, from_context, parse

GPU = {"name": "gpu", "instanceTypes": ["g5.xlarge"], "max": 2, "spot": True, "mpps": 1}


def test_defaults_and_architecture():
    default, arm, gpu = parse(
        [
            {"name": "default", "instanceTypes": ["t3.small"], "max": 4},
            {"name": "arm", "instanceTypes": ["c7gn.large", "t4g.small"], "max": 3},
            GPU,
        ]
    )
    assert (default.min, default.max, default.mpps, default.grace) == (0, 4, 2, 30)
    assert not default.spot and default.properties == {}
    assert arm.arm and not default.arm and not gpu.arm  # g5 is x86 with a GPU
    assert gpu.spot and gpu.mpps == 1


def test_from_context_prefers_the_file(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps([GPU]))
    context = {CONTEXT_CLASSES: [{"name": "x", "instanceTypes": ["t3.micro"], "max": 1}]}
    assert [c.name for c in from_context(context.get)] == ["x"]
    context[CONTEXT_CLASSES_FILE] = str(path)
    assert [c.name for c in from_context(context.get)] == ["gpu"]
    as_string = {CONTEXT_CLASSES: json.dumps([GPU])}  # `cdk -c key='[...]'`
    assert from_context(as_string.get)[0].instance_types == ("g5.xlarge",)


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [{"name": "Bad_Name", "instanceTypes": ["t3.small"], "max": 1}],
        [{"name": "a", "instanceTypes": [], "max": 1}],
        [{"name": "a", "instanceTypes": ["t3.small"], "max": 0}],
        [{"name": "a", "instanceTypes": ["t3.small", "t4g.small"], "max": 1}],
        [{"name": "a", "instanceTypes": ["t3.small"], "max": 1, "min": 1}],
        [{"name": "a", "instanceTypes": ["t3.small"], "max": 1}] * 2,
    ],
)
def test_rejects_bad_classes(raw):
    with pytest.raises(ValueError):
        parse(raw)


def test_spot_and_mixed_distributions():
    on_demand, spot, mixed = parse(
        [
            {"name": "od", "instanceTypes": ["t3.small", "t3a.small"], "max": 4},
            {"name": "spot", "instanceTypes": ["c7g.large"], "max": 4, "spot": True},
            {
                "name": "mixed",
                "instanceTypes": ["m7i.large", "m6i.large"],
                "max": 10,
                "spot": True,
                "onDemandBase": 1,
                "onDemandPercentage": 25,
            },
        ]
    )
    assert on_demand.distribution() is None
    assert spot.distribution() == {
        "on_demand_base_capacity": 0,
        "on_demand_percentage_above_base_capacity": 0,
    }
    assert mixed.distribution() == {
        "on_demand_base_capacity": 1,
        "on_demand_percentage_above_base_capacity": 25,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"onDemandBase": 1}, "need spot: true"),
        ({"spot": True, "onDemandPercentage": 101}, "onDemandPercentage 0..100"),
        ({"spot": True, "onDemandBase": 5}, "onDemandBase must be 0..max"),
        ({"spot": True, "onDemandBase": "1"}, "whole number"),
        ({"spot": True, "onDemandPercentage": 12.5}, "whole number"),
    ],
)
def test_bad_spot_options_are_refused(extra, message):
    with pytest.raises(ValueError, match=message):
        parse([{"name": "x", "instanceTypes": ["t3.small"], "max": 4, **extra}])
