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
    cloudpickle: str  # the client's cloudpickle version
    stage: str
    attempt: int
    stream: str = ""
    transport: str = "inline"  # or "s3": ``args`` is then empty and ``args_ref`` the object
    args_ref: str = ""
    args_digest: str = ""  # sha256 of the S3 object's bytes (signed); "" when inline
    retries: int = 0  # re-runs allowed after an exception (signed at enqueue)
    max_attempts: int = 3  # runs that may be lost to crashes (signed at enqueue)
    time_limit: float | None = None  # seconds it may run (signed at enqueue); None: none
    failures: int = 0  # exception re-runs used so far
    signature: str = ""
    # Set by the node's gate once the signature verified: the outcome's MAC then vouches
    # for the args' digest (impetus.storage.jobqueue.seal).
    verified: bool = False


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
    failures: int = 0  # exception re-runs the chunk's jobs used (attempt - failures = lost)
    priority: int = 0
    jobs: list[ClaimedJob] = field(default_factory=list)
    claimed: float = 0.0  # epoch seconds of the claim: each job's ``claimed_at``
