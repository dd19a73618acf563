"""Value types handed between the Queue and node agents."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ClaimedJob:
    """A job handed to a node: everything a worker needs, payloads still encoded."""

    id: str
    index: int  # position in its chunk
    name: str
    code: str  # encoded function (codec.dump_function), fetched by digest
    code_digest: str
    args: str  # codec.dumps(args)
    python: str  # client's Python major.minor
    stage: str
    attempt: int


@dataclass
class Claim:
    """A lease on a contiguous run of jobs of one chunk, owned by one node."""

    stream: str
    pk: str
    sk: str
    claim_id: str
    node: str
    attempt: int
    expires: float  # epoch seconds
    jobs: list[ClaimedJob] = field(default_factory=list)
