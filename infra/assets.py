"""CDK glue for the artefacts of infra.build: the Lambda code asset (local bundling)."""

from __future__ import annotations

import shutil

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.build import REPO, build_lambda_bundle, lambda_bundle_key

LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_12  # infra.build.LAMBDA_PYTHON


@jsii.implements(ILocalBundling)
class LocalLambdaBundling:
    """CDK's local bundling hook: copy the cached bundle into the asset's output dir."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        shutil.copytree(build_lambda_bundle(), output_dir, dirs_exist_ok=True)
        return True


def lambda_code() -> lambda_.Code:
    """The Lambda asset. Its hash is the bundle key: an unchanged bundle is not rebuilt."""
    return lambda_.Code.from_asset(
        str(REPO / "lambdas"),
        asset_hash=lambda_bundle_key(),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            # Only used where local bundling is impossible; never on this project's machines.
            image=LAMBDA_RUNTIME.bundling_image,
            local=LocalLambdaBundling(),
        ),
    )
