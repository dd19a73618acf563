"""A claim whose jobs cannot be verified now (the signing key is unreadable) is given
back unrun; none of its jobs is refused."""

from __future__ import annotations

import time

from impetus.core import codec
from impetus.core.claims import Claim, ClaimedJob
from impetus.core.config import AwsSettings
from impetus.core.signing import KeyUnavailable
from node_agent.agent import Agent
from node_agent.config import NodeSettings
from node_agent.pool import StreamRun
from node_agent.streams import StreamParams, TrackedStream


class FakeQueue:
    def __init__(self, claim: Claim) -> None:
        self._claim = claim
        self.released: list[Claim] = []
        self.completed: list[Claim] = []

    def buffer_counters(self):
        return self

    def claim(self, *args, **kwargs):
        return self._claim

    def release(self, claim, reported=()):
        self.released.append(claim)

    def complete(self, claim, outcomes, unrun=(), reported=()):
        self.completed.append(claim)


class UnreadableKey:
    def verify(self, envelope, signature):
        raise KeyUnavailable("secrets manager unreachable")


def test_a_claim_without_a_verdict_is_given_back_unrun():
    job = ClaimedJob(
        id="j1", index=0, name="f", code="c", code_digest=codec.digest("c"), args="a",
        python=codec.PYTHON_VERSION, cloudpickle=codec.CLOUDPICKLE_VERSION, stage="s1",
        attempt=0, signature="v2:" + "a" * 32 + ":m",
    )  # fmt: skip
    claim = Claim(
        stream="s", pk="s#0", sk="0", claim_id="c1", node="n", attempt=0,
        expires=time.time() + 60, jobs=[job], failures=0, priority=0,
    )  # fmt: skip
    queue = FakeQueue(claim)
    agent = Agent(NodeSettings(node_id="n", mpps=1, aws=AwsSettings()), queue=queue, client=None)
    agent.gate.signer = UnreadableKey
    params = StreamParams(mpps=1, frequency=0.0, idle_timeout=60.0, lease=60.0, time_limit=None)
    run = StreamRun(TrackedStream("s", {}, params, last_active=time.monotonic()))
    agent.pool.runs["s"] = run
    agent.dispatcher.claim_for(run, time.monotonic())
    assert queue.released == [claim] and not agent.claims  # back in the queue, unrun
    assert not agent.claims.outstanding and not run.workers  # nothing refused, nothing started
    assert run.dry_until > time.monotonic()  # and not asked again at once
