"""Node classes: the kinds of EC2 node a deployment runs, one Auto Scaling group each.

They come from the CDK context key ``impetus:nodeClasses`` (a list, see ``cdk.json``) or
from a JSON file named by ``impetus:nodeClassesFile`` (same list). Fields of one class:

    name           the class (streams choose it with their ``node_class`` property)
    instanceTypes  one or more EC2 instance types (several help Spot find capacity)
    max            the group's maximum size (its minimum is always 0: DFS scales from zero)
    mpps           worker processes per stream on one node (default 2)
    properties     {k: v} the node's stream filter (``impetus-node --properties``)
    spot           true: Spot instances (price-capacity-optimized, capacity rebalancing,
                   the agent watches for interruption notices); false (default): on-demand
    onDemandBase   with spot: the first N instances of the group are on-demand (default 0)
    onDemandPercentage
                   with spot: the share (0..100) of instances beyond the base that are
                   on-demand (default 0: all Spot); a mixed group
    grace          seconds a draining node gives running jobs (default 30)
    requirements   extra packages jobs may import on these nodes: a list of PEP 508
                   requirements (["numpy", "requests>=2.31"]) or the path of a
                   requirements file (relative to the CDK app); resolved against the
                   lock's pins and shipped in the class's wheelhouse (infra/nodepackage.py)
    imageParameter an SSM parameter holding the AMI id (default: the latest Amazon Linux
                   2023); it must be AL2023-based (dnf, python3.X packages), e.g. the
                   Deep Learning AMI with NVIDIA drivers for GPU types
    rootVolumeGb   the root volume's size (default 20; an AMI's own snapshot may need more)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

CONTEXT_CLASSES = "impetus:nodeClasses"
CONTEXT_CLASSES_FILE = "impetus:nodeClassesFile"

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
# Graviton families carry a "g" after the generation digit: t4g, c7gn, m6gd, x2gd, im4gn.
_ARM_FAMILY = re.compile(r"^[a-z]+\d+[a-z-]*g")
_FIELDS = {
    "name",
    "instanceTypes",
    "max",
    "mpps",
    "properties",
    "spot",
    "onDemandBase",
    "onDemandPercentage",
    "grace",
    "requirements",
    "imageParameter",
    "rootVolumeGb",
}
_SSM_PARAMETER = re.compile(r"^/[A-Za-z0-9_./-]+$")
# gp3 volumes are 1 GiB to 16 TiB:
# https://docs.aws.amazon.com/ebs/latest/userguide/general-purpose.html
MAX_VOLUME_GB = 16384
MAX_GROUP_SIZE = 1000


@dataclass(frozen=True)
class NodeClass:
    name: str
    instance_types: tuple[str, ...]
    max: int
    mpps: int = 2
    properties: Mapping[str, str] = field(default_factory=dict)
    spot: bool = False
    on_demand_base: int = 0  # with spot: instances that are on-demand first
    on_demand_percentage: int = 0  # with spot: on-demand share above the base
    grace: int = 30
    requirements: tuple[str, ...] = ()
    image_parameter: str = ""  # "" = the latest Amazon Linux 2023 for the architecture
    root_volume_gb: int = 20

    @property
    def min(self) -> int:
        return 0

    @property
    def arm(self) -> bool:
        """Whether the instance types are Graviton (arm64); all types of a class agree."""
        return bool(_ARM_FAMILY.match(self.instance_types[0].split(".")[0]))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> NodeClass:
        unknown = set(raw) - _FIELDS
        if unknown:
            raise ValueError(f"node class: unknown fields {sorted(unknown)}")
        types = raw.get("instanceTypes")
        node_class = cls(
            name=str(raw.get("name", "")),
            instance_types=tuple(types) if isinstance(types, list) else (),
            max=int(raw.get("max", 0)),
            mpps=int(raw.get("mpps", 2)),
            properties={str(k): str(v) for k, v in (raw.get("properties") or {}).items()},
            spot=bool(raw.get("spot", False)),
            on_demand_base=_whole(raw, "onDemandBase"),
            on_demand_percentage=_whole(raw, "onDemandPercentage"),
            grace=int(raw.get("grace", 30)),
            requirements=_requirements(raw.get("requirements")),
            image_parameter=str(raw.get("imageParameter") or ""),
            root_volume_gb=int(raw.get("rootVolumeGb", 20)),
        )
        node_class.validate()
        return node_class

    def validate(self) -> None:
        where = f"node class {self.name!r}"
        if not _NAME.match(self.name):
            raise ValueError(f"{where}: name must match {_NAME.pattern}")
        if not self.instance_types or not all(map(_INSTANCE_TYPE.match, self.instance_types)):
            raise ValueError(f"{where}: instanceTypes must be a non-empty list like ['t3.small']")
        arches = {bool(_ARM_FAMILY.match(t.split(".")[0])) for t in self.instance_types}
        if len(arches) > 1:
            raise ValueError(f"{where}: instanceTypes mix arm64 and x86_64")
        if not 1 <= self.max <= MAX_GROUP_SIZE:
            raise ValueError(f"{where}: max must be 1..{MAX_GROUP_SIZE}")
        if self.mpps < 1 or not 0 <= self.grace <= 3600:
            raise ValueError(f"{where}: mpps must be >= 1 and grace 0..3600")
        if (self.on_demand_base or self.on_demand_percentage) and not self.spot:
            raise ValueError(f"{where}: onDemandBase/onDemandPercentage need spot: true")
        if not 0 <= self.on_demand_base <= self.max or not 0 <= self.on_demand_percentage <= 100:
            raise ValueError(f"{where}: onDemandBase must be 0..max, onDemandPercentage 0..100")
        if self.image_parameter and not _SSM_PARAMETER.match(self.image_parameter):
            raise ValueError(f"{where}: imageParameter must be an SSM parameter name (/...)")
        if not 8 <= self.root_volume_gb <= MAX_VOLUME_GB:
            raise ValueError(f"{where}: rootVolumeGb must be 8..{MAX_VOLUME_GB}")

    def distribution(self) -> dict[str, int] | None:
        """The group's on-demand/Spot split (None: on-demand only, no mixed policy
        needed). CloudFormation's InstancesDistribution: OnDemandBaseCapacity and
        OnDemandPercentageAboveBaseCapacity (0..100).
        https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-autoscaling-autoscalinggroup-instancesdistribution.html"""
        if not self.spot:
            return None
        return {
            "on_demand_base_capacity": self.on_demand_base,
            "on_demand_percentage_above_base_capacity": self.on_demand_percentage,
        }


def _whole(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"node class: {key} must be a whole number, got {value!r}")
    return value


def _requirements(raw: Any) -> tuple[str, ...]:
    """A list of requirement strings, or a requirements file's non-comment lines."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        lines = (line.split("#", 1)[0].strip() for line in Path(raw).read_text().splitlines())
        raw = [line for line in lines if line]
    if not isinstance(raw, list):
        raise ValueError("node class: requirements must be a list or a file path")
    try:
        return tuple(str(Requirement(str(item))) for item in raw)
    except InvalidRequirement as exc:
        raise ValueError(f"node class: bad requirement: {exc}") from None


def parse(raw: Any) -> list[NodeClass]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("node classes: expected a non-empty list")
    classes = [NodeClass.from_dict(item) for item in raw]
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"node classes: duplicate names in {names}")
    return classes


def from_context(get: Any) -> list[NodeClass]:
    """Node classes from a CDK node's ``try_get_context`` (the file wins when named)."""
    path = get(CONTEXT_CLASSES_FILE)
    if path:
        return parse(json.loads(Path(path).read_text()))
    raw = get(CONTEXT_CLASSES)
    if isinstance(raw, str):  # `cdk -c impetus:nodeClasses='[...]'` passes a string
        raw = json.loads(raw)
    return parse(raw)
