"""Listing a stream's jobs with their status, for ``impetus jobs ID [--status S]``.

A job's status is not stored in one place: its record (jobs table) says ``waiting`` until
it is acknowledged, while claims and results live on the chunk that holds it (queue
table). A listing reads both: the stream's live chunks (few: only unacknowledged work
stays there) and its records without their payloads. It is an inspection tool, not a
hot path: it reads a whole stream, so callers bound what they return with ``limit``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from impetus.core import jobs
from impetus.storage import dynamo
from impetus.storage.jobqueue import layout, stamps

#: Statuses a listing can filter on (``delayed`` is a waiting job that is not due yet).
LIST_STATUSES = (jobs.WAITING, "delayed", jobs.RUNNING, jobs.READY, jobs.ERROR, jobs.ACKED)
#: The listing's order in words (help texts, the API's docs): jobs sent in one batch share
#: a time, and a derived job id is a digest, so the id only breaks ties.
ORDER = "oldest first (by the time they were sent, then by id)"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_RECORD_FIELDS = ("job", "name", "stage", "status", "created", "priority", "delay", "acked", "tl")
_CHUNK_FIELDS = ("pk", "jobs", "cursor", "claims", "results", "attempt")


def chunk_states(chunks: Iterable[dict[str, Any]], delayed_pk: str) -> dict[str, dict[str, Any]]:
    """job id -> {"status", "node"?, "attempt", "started"?, "finished"?, and the result
    "entry" or the "claim" entry holding it} from live chunks.

    Jobs before a chunk's cursor with neither a claim nor a result were acknowledged or
    moved to another chunk: they are left out (their record or new chunk tells).
    """
    states: dict[str, dict[str, Any]] = {}
    for chunk in chunks:
        results = chunk.get("results") or {}
        claims = list((chunk.get("claims") or {}).values())
        for index, job_id in enumerate(chunk.get("jobs") or []):
            entry = results.get(str(index))
            if entry is not None:
                states[job_id] = {
                    "status": entry.get("s"),
                    "node": entry.get("node"),
                    "attempt": entry.get("a", 0),
                    "started": entry.get("st"),
                    "finished": entry.get("fi"),
                    "entry": entry,
                }
                continue
            owner = next((c for c in claims if layout.holds(c, index)), None)
            if owner is not None:
                states[job_id] = {
                    "status": jobs.RUNNING,
                    "node": owner.get("node"),
                    "attempt": chunk.get("attempt", 0),
                    "claim": owner,
                }
            elif index >= chunk.get("cursor", 0):
                waiting = "delayed" if chunk.get("pk") == delayed_pk else jobs.WAITING
                states[job_id] = {"status": waiting, "attempt": chunk.get("attempt", 0)}
    return states


def summarize(record: dict[str, Any], state: dict[str, Any] | None) -> dict[str, Any]:
    """One listing row: the record's description with the chunk's live status."""
    row = {
        "id": record["job"],
        "name": record.get("name"),
        "stage": record.get("stage"),
        "status": record.get("status", jobs.WAITING),
        "priority": record.get("priority", 0),
        "created": record.get("created"),
        "attempt": 0,
        "node": None,
        "started": None,
        "finished": None,
    }
    live = state is not None and row["status"] != jobs.ACKED
    if live:
        row.update({k: v for k, v in state.items() if v is not None or k == "node"})
    entry, claim = (row.pop("entry", None), row.pop("claim", None)) if live else (None, None)
    row["timeline"] = stamps.timeline(record, entry, claim)
    return row


class JobLister:
    """Reads one stream's chunks and records (one boto3 client, any thread)."""

    def __init__(self, client: Any, jobs_table: str, queue_table: str) -> None:
        self.client = client
        self.jobs_table = jobs_table
        self.queue_table = queue_table

    def list(
        self,
        stream_id: str,
        shards: int,
        status: str | None = None,
        limit: int | None = DEFAULT_LIMIT,
    ) -> tuple[list[dict[str, Any]], int]:
        """(rows oldest first (ORDER), at most ``limit`` (None: all); how many matched in all)."""
        states = chunk_states(self._chunks(stream_id, shards), layout.delayed_pk(stream_id))
        rows = [summarize(r, states.get(r["job"])) for r in self._records(stream_id)]
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        rows.sort(key=lambda r: (r["created"] or 0, r["id"]))
        return rows[:limit], len(rows)

    def _chunks(self, stream_id: str, shards: int) -> Iterator[dict[str, Any]]:
        pks = [layout.ready_pk(stream_id, s) for s in range(shards)] + [
            layout.delayed_pk(stream_id)
        ]
        for pk in pks:
            yield from dynamo.query(
                self.client,
                TableName=self.queue_table,
                KeyConditionExpression="#pk = :pk",
                ProjectionExpression=", ".join(f"#{f}" for f in _CHUNK_FIELDS),
                ExpressionAttributeNames={f"#{f}": f for f in _CHUNK_FIELDS},
                ExpressionAttributeValues=dynamo.values(pk=pk),
                ConsistentRead=True,
            )

    def _records(self, stream_id: str) -> Iterator[dict[str, Any]]:
        """Job records without payloads; code and spilled-result items are skipped."""
        for record in dynamo.query(
            self.client,
            TableName=self.jobs_table,
            KeyConditionExpression="#stream = :s",
            ProjectionExpression=", ".join(f"#{f}" for f in _RECORD_FIELDS),
            ExpressionAttributeNames={"#stream": "stream", **{f"#{f}": f for f in _RECORD_FIELDS}},
            ExpressionAttributeValues=dynamo.values(s=stream_id),
            ConsistentRead=True,
        ):
            if not record["job"].startswith("#"):  # '#code#...', '#result#...', ...
                yield record
