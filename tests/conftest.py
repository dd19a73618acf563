"""Shared fixtures: fake AWS credentials everywhere, moto in-process tables."""

from __future__ import annotations

import os
import tempfile
import threading

import pytest

# Never talk to real AWS from the test suite, whatever the machine's environment says.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    IMPETUS_TABLE_PREFIX="test",
)
for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "IMPETUS_API_URL", "IMPETUS_AUTHKEY"):
    os.environ.pop(var, None)
# Stream keys, task files and local stacks go to a home of this test process's own (a
# test may set another), never to the developer's ~/.impetus; each pytest-xdist worker
# is a process of its own, so workers never share one.
os.environ["IMPETUS_HOME"] = tempfile.mkdtemp(prefix="impetus-test-home-")


@pytest.fixture
def aws(monkeypatch):
    """moto in-process, for the duration of one test; one request at a time, as the
    local stack's moto server serves them (impetus.local.motoserver.SerialApp): moto's
    backends are not thread-safe (a TransactWriteItems deep-copies the whole table while
    other threads write to it), and DFS's tick and node agents make requests from
    several threads."""
    from moto import mock_aws
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    unlocked = BotocoreStubber.process_request

    def one_at_a_time(self, request):
        with lock:
            return unlocked(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)
    with mock_aws():
        yield


@pytest.fixture
def queue(aws):
    """A Queue on freshly created tables."""
    from impetus.core.config import AwsSettings
    from impetus.local.provision import provision
    from impetus.storage.queue import Queue

    settings = AwsSettings.from_env()
    provision(settings)  # tables and the signing key, as the local stack has them
    return Queue(settings)
