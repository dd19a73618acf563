"""Request bodies (validated, strict, unknown fields refused) and documented responses.

The field types and their checks (sizes, numbers, codec strings) are in
:mod:`lambdas.api.fields`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from impetus.core.codec import digest
from impetus.core.jobs import new_job_id
from lambdas.api.config import (
    CLOUDPICKLE_PATTERN,
    MAX_ACK_IDS,
    MAX_DELAY_SECONDS,
    MAX_JOBS_PER_BATCH,
    MAX_NAME_CHARS,
    MAX_PRIORITY,
    MAX_REF_CHARS,
    MAX_UPLOADS_PER_REQUEST,
    PYTHON_PATTERN,
)
from lambdas.api.fields import (
    CodecString,
    Digest,
    JobId,
    Properties,
    Stage,
    StoreValue,
    StreamId,
)

# impetus.storage.joblist.LIST_STATUSES (a Literal spells the values; a test checks they agree)
ListStatus = Literal["waiting", "delayed", "running", "ready", "error", "acked"]


class Strict(BaseModel):
    """JSON types as sent: no coercion ("1" is not 1), unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --- requests -----------------------------------------------------------------------------
class CreateStream(Strict):
    id: StreamId | None = None
    properties: Properties = Field(default_factory=dict)


class UpdateStream(Strict):
    properties: Properties = Field(min_length=1, description="merged; a null value removes the key")


class CollectorLease(Strict):
    holder: str = Field(pattern=r"^[0-9a-f]{32}$", description="the client's holder id")
    ttl: int = Field(ge=5, le=300, description="seconds the lease runs unless renewed")


class CollectorHeld(Strict):
    holder: str
    expires: float = Field(description="epoch seconds")


class Released(Strict):
    released: bool


class JobSpec(Strict):
    id: JobId = Field(default_factory=new_job_id)
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    code: Digest = Field(description="sha256 of the encoded function (impetus.core.codec.digest)")
    args: CodecString | None = Field(default=None, description="inline args (transport inline)")
    transport: Literal["inline", "s3"] = "inline"
    args_ref: str | None = Field(
        default=None, max_length=MAX_REF_CHARS, description="uploaded object (transport s3)"
    )
    args_digest: Digest | None = Field(default=None, description="sha256 of the object's bytes")
    stage: Stage
    priority: int = Field(default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    delay: float = Field(default=0.0, ge=0, le=MAX_DELAY_SECONDS)
    properties: Properties = Field(default_factory=dict)

    @model_validator(mode="after")
    def _transport(self) -> JobSpec:
        if self.transport == "inline" and (self.args is None or self.args_ref is not None):
            raise PydanticCustomError("transport", "inline jobs carry args and no args_ref")
        if self.transport == "s3" and (
            self.args is not None or self.args_ref is None or self.args_digest is None
        ):
            raise PydanticCustomError(
                "transport", "s3 jobs carry args_ref and args_digest instead of args"
            )
        return self


class Uploads(Strict):
    count: int = Field(default=1, ge=1, le=MAX_UPLOADS_PER_REQUEST)


class Enqueue(Strict):
    python: str = Field(pattern=PYTHON_PATTERN, description="client's Python major.minor")
    cloudpickle: str = Field(
        pattern=CLOUDPICKLE_PATTERN, description="the client's cloudpickle version"
    )
    functions: dict[Digest, CodecString] = Field(
        default_factory=dict, max_length=MAX_JOBS_PER_BATCH
    )
    jobs: list[JobSpec] = Field(min_length=1, max_length=MAX_JOBS_PER_BATCH)

    @model_validator(mode="after")
    def _consistent(self) -> Enqueue:
        ids = [job.id for job in self.jobs]
        if len(set(ids)) != len(ids):
            raise PydanticCustomError("duplicate_job_id", "job ids repeat within the batch")
        for key, code in self.functions.items():
            if digest(code) != key:
                raise PydanticCustomError(
                    "digest_mismatch", "a functions key is not the sha256 of its code"
                )
        return self


class Ack(Strict):
    ids: list[JobId] = Field(max_length=MAX_ACK_IDS)


class CancelJobs(Strict):
    ids: list[JobId] | None = Field(
        default=None, max_length=MAX_ACK_IDS, description="none: every waiting job"
    )


class PutValue(Strict):
    value: StoreValue


# --- responses (documentation only: answers are not re-validated) --------------------------
class Counts(BaseModel):
    waiting: int
    delayed: int
    running: int
    finished: int
    errors: int
    acked: int
    forked: int


class Stream(BaseModel):
    id: str
    properties: dict[str, Any]
    counts: Counts
    created: float


class CreatedStream(Stream):
    stream_key: str | None = Field(
        default=None,
        description="the stream's key, only in the 201 answer that created it: keep it "
        "(the client stores it under ~/.impetus/streams); every route on the stream needs "
        "the token derived from it, and results are authenticated with it",
    )


class Paged(BaseModel):
    """A list answer cut to fit Lambda's 6 MB (docs/http-api.md#pages)."""

    more: bool = Field(description="items were left out: ask again at once (with `after`)")
    next: str | None = Field(
        None, description="when `more`: the cursor to send as `after` for the next page"
    )


class StreamList(Paged):
    streams: list[Stream]


TIMELINE_DOC = (
    "epoch seconds of forked_at, claimed_at, started_at, finished_at and acked_at, and "
    "node, worker (its slot on the node) and outcome (ready or error); a key is absent "
    "when unknown (impetus.storage.jobqueue.stamps)"
)


class Job(BaseModel):
    id: str
    name: str
    args: str | None
    result: Any = Field(description="codec string when ready; the error record when error")
    status: str
    callback: str
    client: str
    created: float
    delay: float
    priority: int
    transport: Any = None
    code: str
    args_ref: str | None = None
    args_digest: str | None = Field(default=None, description="sha256 of S3 args")
    result_ref: str | None = None
    result_url: str | None = Field(default=None, description="presigned GET of an S3 result")
    attempt: int
    node: str | None
    started: float | None
    finished: float | None
    outcome_mac: str | None = Field(
        default=None,
        description="the node's MAC of the outcome with the stream key (absent: not "
        "authenticated; the client unpickles nothing of such a job)",
    )
    args_verified: bool = Field(
        default=False, description="whether the MAC covers the args (the node verified them)"
    )
    output: dict[str, Any] | None = Field(
        default=None,
        description="what the job printed and logged: stdout, stderr, log (each its last "
        "64 KiB) and truncated (the names cut); absent when it wrote nothing",
    )
    timeline: dict[str, Any] | None = Field(default=None, description=TIMELINE_DOC)


class ResultList(BaseModel):
    jobs: list[Job] = Field(description="finished jobs, not yet acknowledged")
    more: bool = Field(
        description="finished jobs were left out (the page's size or `limit`): "
        "acknowledge these and ask again at once"
    )
    started: list[str] = Field(
        description="ids of the stage's jobs a node has started that have not ended yet "
        "(a node marks a start within a fraction of a second, and not at all for a job "
        "that ends sooner)"
    )


class JobSummary(BaseModel):
    id: str
    name: str | None
    stage: str | None
    status: str
    priority: int
    created: float | None
    attempt: int
    node: str | None
    started: float | None
    finished: float | None
    timeline: dict[str, Any] | None = Field(default=None, description=TIMELINE_DOC)


class JobSummaryList(Paged):
    jobs: list[JobSummary] = Field(
        description="oldest first (by the time they were sent, then by id), at most `limit`"
    )
    count: int = Field(description="how many jobs matched in all")


class Node(BaseModel):
    node: str
    host: str | None
    pid: int | None
    started: float | None
    heartbeat: float | None
    state: str | None = Field(description="running or draining")
    mpps: int | None
    properties: dict[str, Any] | None
    streams: list[str] | None
    workers_total: int | None
    workers_busy: int | None
    jobs_done: int | None
    claims: int | None


class NodeList(Paged):
    nodes: list[Node]


class Upload(BaseModel):
    ref: str = Field(description="args_ref to send with the job")
    url: str = Field(description="presigned PUT; send the Content-Type below")


class UploadList(BaseModel):
    uploads: list[Upload]
    content_type: str
    expires_in: int


class Enqueued(BaseModel):
    accepted: list[str]
    existing: list[str] = Field(description="ids the stream knew already: skipped")
    acked: list[str] = Field(
        default_factory=list, description="of those, the ones already collected and acked"
    )


class Acked(BaseModel):
    acked: int


class Cancelled(BaseModel):
    cancelled: list[str] = Field(description="taken out of the queue: they never run")
    running_or_done: list[str] = Field(description="claimed by a node already")
    unknown: list[str] = Field(description="ids the stream does not have")


class Deleted(BaseModel):
    deleted: str


class KeyList(Paged):
    keys: list[str]


class StoreItem(BaseModel):
    key: str
    value: Any


class StoreKey(BaseModel):
    key: str


class Error(BaseModel):
    error: str
    message: str


class AuthError(BaseModel):
    """A 401 or 403. On AWS, API Gateway's authorizer answers these before the API Lambda
    runs, with its own body (``{"message": "Unauthorized"}`` or ``"Forbidden"``): no code."""

    error: str | None = Field(None, description="set when the API Lambda answers")
    message: str
