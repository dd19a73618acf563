"""Which Python a node can run: the versions Amazon Linux 2023 packages.

Nodes run the clients' major.minor (a job refuses to run on another one) and install it
with dnf at boot, so a version AL2023 does not package would leave every node failing
its bootstrap. AL2023 keeps Python 3.9 as the system ``python3`` for its whole life and
packages newer versions side by side as ``python3.X`` (3.11, 3.12, 3.13, 3.14; there is
no 3.10): https://docs.aws.amazon.com/linux/al2023/ug/python.html
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, metadata

from packaging.specifiers import SpecifierSet

# major.minor -> the dnf package that provides /usr/bin/python<major.minor> on AL2023.
AL2023_PYTHONS: dict[str, str] = {
    "3.9": "python3",  # the system Python, preinstalled
    "3.11": "python3.11",
    "3.12": "python3.12",
    "3.13": "python3.13",
    "3.14": "python3.14",
}
AL2023_PYTHON_DOCS = "https://docs.aws.amazon.com/linux/al2023/ug/python.html"


def requires_python() -> SpecifierSet:
    """The project's ``requires-python`` (from the installed metadata)."""
    try:
        return SpecifierSet(metadata("impetus").get("Requires-Python") or "")
    except PackageNotFoundError:  # a source tree without the package installed
        return SpecifierSet()


def supported_versions() -> list[str]:
    """The versions a node can run: packaged by AL2023 and allowed by requires-python."""
    allowed = requires_python()
    return [v for v in AL2023_PYTHONS if allowed.contains(f"{v}.0")]


def check_node_python(version: str, context_key: str) -> str:
    """``version`` when nodes can run it; a ValueError naming what they can run otherwise."""
    supported = supported_versions()
    if version in supported:
        return version
    packaged = ", ".join(
        f"{v} ({package}{', system' if package == 'python3' else ''})"
        for v, package in AL2023_PYTHONS.items()
    )
    raise ValueError(
        f"Python {version} cannot run on the nodes: Amazon Linux 2023 packages Python "
        f"{packaged} ({AL2023_PYTHON_DOCS}), and impetus requires Python "
        f"{requires_python() or 'any'}; nodes can run {', '.join(supported)}. Run `cdk` with "
        f"one of those, or set -c {context_key}=<version> and use that Python in your clients."
    )
