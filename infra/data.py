"""The stack's state: DynamoDB tables, the payload bucket and the two secrets.

Tables are built from ``impetus.storage.tables.TABLES`` through the very ``create_table`` arguments
the local stack uses (translated key by key into the CloudFormation resource, whose
property names are the same), so a table added or changed there is deployed as is. One
difference: no ``TableName``. CloudFormation names the tables, so an update that must
replace a table (a changed key schema) can create the new one before deleting the old;
with a fixed name it fails ("already exists"). The names reach the code through
``IMPETUS_TABLES`` (:meth:`DataPlane.table_names`).

The key-value store (``store``) holds what users put there themselves, unlike the
queue's transient state: it has point-in-time recovery and is kept when the stack is
deleted or the table replaced, unless ``impetus:retainStore`` is false.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from impetus.storage.tables import CLAIM_INDEX, QUEUE, STORE, TABLES

PAYLOAD_PREFIX = "payloads/"
PAYLOAD_DAYS = 7  # a stream's payloads are deleted with it; this catches the abandoned ones
SECRET_LENGTH = 48


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _camel(value: Any) -> Any:
    """Nested CloudFormation structures: jsii wants their keys in lowerCamelCase."""
    if isinstance(value, dict):
        return {k[0].lower() + k[1:]: _camel(v) for k, v in value.items() if k != "StreamEnabled"}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _cfn_props(kwargs: dict[str, Any]) -> dict[str, Any]:
    """boto3 ``create_table`` arguments -> CfnTable keyword arguments (same structure)."""
    return {_snake(k): _camel(v) for k, v in kwargs.items()}


class DataPlane(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, prefix: str, retain_store: bool = True
    ) -> None:
        super().__init__(scope, construct_id)
        self.prefix = prefix
        self.tables: dict[str, dynamodb.CfnTable] = {}
        for name, definition in TABLES.items():
            kwargs = definition.create_table_kwargs(prefix)
            del kwargs["TableName"]  # CloudFormation names it (see the module docstring)
            user_data = name == STORE
            table = dynamodb.CfnTable(
                self,
                f"{name.capitalize()}Table",
                **_cfn_props(kwargs),
                time_to_live_specification=(
                    {"attributeName": definition.ttl_attribute, "enabled": True}
                    if definition.ttl_attribute
                    else None
                ),
                sse_specification={"sseEnabled": True},
                point_in_time_recovery_specification=(
                    {"pointInTimeRecoveryEnabled": True} if user_data else None
                ),
            )
            # Queue state is transient (results live in the clients' task files); the
            # store is the users' own data.
            keep = user_data and retain_store
            table.apply_removal_policy(RemovalPolicy.RETAIN if keep else RemovalPolicy.DESTROY)
            self.tables[name] = table

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="payloads",
                    prefix=PAYLOAD_PREFIX,
                    expiration=Duration.days(PAYLOAD_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            # Kept on `cdk destroy` (CloudFormation cannot delete a non-empty bucket).
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.authkey = self._secret("Authkey", "bearer authkey of the Impetus API")
        self.signing_key = self._secret("SigningKey", "key that signs Impetus jobs")

    def _secret(self, construct_id: str, description: str) -> secretsmanager.Secret:
        return secretsmanager.Secret(
            self,
            construct_id,
            description=f"{self.prefix}: {description}",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=SECRET_LENGTH, exclude_punctuation=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )

    def table_names(self) -> dict[str, str]:
        """Logical name -> physical name (a CloudFormation reference until deployed)."""
        return {name: table.ref for name, table in self.tables.items()}

    def table_arns(self) -> list[str]:
        """Every table: the resources of the roles' DynamoDB statements."""
        return [table.attr_arn for table in self.tables.values()]

    def claim_index_arn(self) -> str:
        """The queue table's claim index: a Query on an index is authorised on its ARN
        (``<table arn>/index/<name>``), not the table's
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/iam-policy-specific-table-indexes.html)."""
        return f"{self.tables[QUEUE].attr_arn}/index/{CLAIM_INDEX.name}"

    def payload_objects_arn(self) -> str:
        return self.bucket.arn_for_objects(f"{PAYLOAD_PREFIX}*")
