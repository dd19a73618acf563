"""Args and results far larger than a DynamoDB item travel through S3, transparently."""

from __future__ import annotations

import hashlib
import os

from impetus import Impetus
from impetus.local import credentials

SIZE = 50 * 1024 * 1024  # random bytes: incompressible, so ~67 MB once encoded


def _digest_and_reverse(data):
    import hashlib

    return hashlib.sha256(data).hexdigest(), data[::-1]


class Big(Impetus):
    @Impetus.startup
    def start(self):
        self.fork(_digest_and_reverse, args=self.payload)
        self.fork(_digest_and_reverse, args=b"small")  # inline, beside it

    @Impetus.process
    def collect(self, ready, errors):
        self.got = getattr(self, "got", []) + ready
        self.errors = getattr(self, "errors", []) + errors


def test_fifty_megabytes_each_way_through_s3(local_stack, tmp_path):
    payload = os.urandom(SIZE)
    app = Big(taskdir=str(tmp_path))
    app.payload = payload
    admin = credentials.session(credentials.ADMIN, local_stack["settings"]["region"])
    s3 = admin.client("s3", endpoint_url=local_stack["settings"]["endpoint_url"])
    bucket = local_stack["settings"]["bucket"]
    app.run()

    assert app.errors == []
    by_size = sorted(app.got, key=lambda job: len(job["result"][1]))
    small, big = by_size
    assert small["result"] == (hashlib.sha256(b"small").hexdigest(), b"llams")
    assert big["result"][0] == hashlib.sha256(payload).hexdigest()
    assert big["result"][1] == payload[::-1]
    assert big["args"] is None and big["args_ref"].startswith(f"payloads/{app.id}/args/")
    # deleted with the stream (run() deletes it at the end)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"payloads/{app.id}/")
    assert listed.get("KeyCount", 0) == 0
