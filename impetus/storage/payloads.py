"""Large payloads through S3: args and results too big for a DynamoDB item.

Layout in the payload bucket (``IMPETUS_BUCKET``)::

    payloads/<stream>/args/<uuid>                    uploaded by the client (presigned PUT)
    payloads/<stream>/results/<job>-<attempt>-<rnd>  written by the node that ran the job

Clients never hold AWS credentials: the API hands them presigned URLs. Nodes read and
write with their IAM role. Everything under ``payloads/<stream>/`` is deleted with the
stream (and the deployed bucket expires payloads by a lifecycle rule as a backstop).

Objects hold the codec string (impetus.core.codec) as UTF-8. The signed job envelope carries
the sha256 of the args object, so a node checks the bytes before loading them.
"""

from __future__ import annotations

import uuid
from typing import Any

from impetus.core import aws
from impetus.core.config import AwsSettings
from impetus.core.exceptions import ConfigError

PREFIX = "payloads"
CONTENT_TYPE = "application/octet-stream"  # presigned PUTs must send exactly this
URL_SECONDS = 900
# Encoded args above this go through S3 (an item holds 400 KB, shared with the record).
INLINE_ARGS_LIMIT = 256 * 1024
# Encoded results above this go through S3 (inline ones are stored beside the chunk).
INLINE_RESULT_LIMIT = 350 * 1024
MAX_UPLOADS_PER_REQUEST = 100


def stream_prefix(stream_id: str) -> str:
    return f"{PREFIX}/{stream_id}/"


def new_args_key(stream_id: str) -> str:
    return f"{stream_prefix(stream_id)}args/{uuid.uuid4().hex}"


def result_key(stream_id: str, job_id: str, attempt: int) -> str:
    return f"{stream_prefix(stream_id)}results/{job_id}-{attempt}-{uuid.uuid4().hex[:8]}"


def is_args_key(stream_id: str, key: Any) -> bool:
    """Whether ``key`` names an args object of this stream (and nothing else)."""
    head = f"{stream_prefix(stream_id)}args/"
    return isinstance(key, str) and key.startswith(head) and key[len(head) :].isalnum()


class Payloads:
    """The payload bucket, for the API (URLs, checks, deletion) and nodes (get, put)."""

    def __init__(self, settings: AwsSettings, client: Any = None) -> None:
        if not settings.bucket:
            raise ConfigError("no payload bucket configured (IMPETUS_BUCKET)")
        self.bucket = settings.bucket
        self.client = client or aws.client("s3", settings)

    def upload_url(self, key: str) -> str:
        return self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": CONTENT_TYPE},
            ExpiresIn=URL_SECONDS,
        )

    def download_url(self, key: str) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=URL_SECONDS
        )

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def get(self, key: str) -> str:
        answer = self.client.get_object(Bucket=self.bucket, Key=key)
        return answer["Body"].read().decode()

    def put(self, key: str, data: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data.encode(), ContentType=CONTENT_TYPE
        )

    def delete_stream(self, stream_id: str) -> int:
        """Delete every payload of a stream; returns how many objects went."""
        deleted = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=stream_prefix(stream_id)
        )
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:  # a page holds at most 1000 keys, DeleteObjects' limit
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                deleted += len(keys)
        return deleted
