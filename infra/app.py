"""``cdk synth`` / ``cdk deploy`` entry point (see cdk.json): one App, one stack.

Context (cdk.json or ``-c``): ``impetus:stackName`` (default Impetus), and the keys of
infra.stack.StackSettings and infra.node_classes.
"""

from __future__ import annotations

import aws_cdk as cdk

from infra.stack import ImpetusStack, StackSettings

CONTEXT_STACK_NAME = "impetus:stackName"


def build(app: cdk.App) -> ImpetusStack:
    name = str(app.node.try_get_context(CONTEXT_STACK_NAME) or "Impetus")
    settings = StackSettings.from_context(app, name)
    return ImpetusStack(
        app, name, settings=settings, description="Impetus: auto-scaling jobs for Python"
    )


def main() -> None:
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
