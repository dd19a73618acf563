"""The job queue of a stream: enqueue, claim, complete, release, reap, collect, ack.

Items (see impetus/storage/tables.py for the tables):

* job record (jobs table, ``stream``/``job``): static description of one job and a
  pointer (``chunk_pk``, ``chunk_sk``, ``index``) to the chunk that holds it now.
* chunk (queue table): up to CHUNK_SIZE job ids of one stage, priority and due time, with
  ``cursor`` (jobs before it are claimed), ``claims`` (live leases: claim id -> node,
  range, expiry, state) and ``results`` (index -> outcome, until acknowledged).

Why chunks: one conditional write moves many jobs. A claim is a single UpdateItem that
advances ``cursor`` *and* records the lease, conditional on the cursor it read, so two
claimers racing for the same jobs cannot both win, and no crash can leave jobs claimed
by nobody. Completion is a single UpdateItem that writes all outcomes of a claim and
removes the lease, conditional on the lease still being ours, so a zombie whose lease
was reaped cannot record anything. A chunk is deleted when every job in it has been
acknowledged or moved to another chunk (released, reaped).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from impetus.core import joboutput, jobs, keys, properties
from impetus.core.exceptions import JobNotFound
from impetus.core.signing import SigningKey
from impetus.storage import dynamo
from impetus.storage.jobqueue.claim import Claiming
from impetus.storage.jobqueue.collect import Collecting
from impetus.storage.jobqueue.enqueue import Enqueuing
from impetus.storage.jobqueue.layout import PROPS_TTL, shard_of, suffix_of
from impetus.storage.jobqueue.recount import Recounting
from impetus.storage.jobqueue.settle import Settling
from impetus.storage.streams import Streams


class JobQueue(Enqueuing, Claiming, Settling, Collecting, Recounting):
    def __init__(
        self,
        client: Any,
        tables: dict[str, str],
        streams: Streams,
        signer: Callable[[], SigningKey],
    ) -> None:
        """``signer`` gives the signing key's Signer when enqueue first needs it (so that
        node-side users of the queue never read the key through here)."""
        self.client = client
        self._signer = signer
        self.jobs_table = tables["jobs"]
        self.queue_table = tables["queue"]
        self.streams = streams
        # Where backlog counter deltas go: the stream items at once, or a node agent's
        # impetus.storage.counters.BufferedCounters (see Queue.buffer_counters).
        self.counters: Any = streams
        self._code_cache: dict[str, str] = {}
        self._props_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._promoted_at: dict[str, float] = {}

    # --- shared by the parts --------------------------------------------------------------
    def _properties(self, stream_id: str) -> dict[str, Any]:
        cached = self._props_cache.get(stream_id)
        if cached and time.monotonic() - cached[0] < PROPS_TTL:
            return cached[1]
        props = self.streams.get_item(stream_id).get("properties", {})
        self._props_cache[stream_id] = (time.monotonic(), props)
        return props

    @staticmethod
    def _new_chunk(
        stream_id: str,
        pk: str,
        sk: str,
        ids: list[str],
        stage: str,
        priority: int,
        due: int,
        attempt: int = 0,
        failures: int = 0,
    ) -> dict[str, Any]:
        return {
            "pk": pk,
            "sk": sk,
            "stream": stream_id,
            "stage": stage,
            "priority": priority,
            "due": due,
            "attempt": attempt,  # runs of these jobs before this chunk's
            "failures": failures,  # of which ended in an exception (see impetus.core.retry)
            "jobs": ids,
            "n": len(ids),
            "cursor": 0,
            "claims": {},
            "results": {},
            "left": len(ids),  # jobs neither acknowledged nor moved elsewhere: 0 = spent
        }

    def _ready_location(self, stream_id: str, pk: str, sk: str) -> tuple[str, str]:
        """Where a delayed chunk lives once it fell due (ready chunks: where they are)."""
        if pk != keys.delayed_pk(stream_id):
            return pk, sk
        shards = properties.get(self._properties(stream_id), "shards")
        return keys.ready_pk(stream_id, shard_of(suffix_of(sk), shards)), keys.delayed_to_ready_sk(
            sk
        )

    def _records(
        self,
        stream_id: str,
        ids: list[str],
        attributes: tuple[str, ...] = (),
        consistent: bool = True,
    ) -> dict[str, dict[str, Any]]:
        found = dynamo.batch_get(
            self.client,
            self.jobs_table,
            [{"stream": stream_id, "job": i} for i in ids],
            consistent=consistent,
            attributes=attributes,
        )
        return {r["job"]: r for r in found}

    def _written_records(
        self, stream_id: str, ids: list[str], attributes: tuple[str, ...] = ()
    ) -> dict[str, dict[str, Any]]:
        """Records for their fields written at enqueue (name, code, args, signature...):
        read eventually consistent, half the read units; only the ones not there yet (a
        record written a moment ago) are read again, consistently.

        Those fields never change after enqueue, so a stale copy has them right. The
        fields that do change (status at acknowledgement, the chunk pointer after a move)
        are read consistently where they decide something (enqueue's duplicate check,
        ack); collection only compares the pointer, and a stale one costs a re-point.
        """
        found = self._records(stream_id, ids, attributes, consistent=False)
        missing = [i for i in ids if i not in found]
        if missing:
            found.update(self._records(stream_id, missing, attributes))
        return found

    def _point(self, stream_id: str, job_id: str, pk: str, sk: str, index: int) -> None:
        self.client.update_item(
            TableName=self.jobs_table,
            Key=dynamo.serialize({"stream": stream_id, "job": job_id}),
            UpdateExpression="SET #chunk_pk = :pk, #chunk_sk = :sk, #index = :i",
            ConditionExpression="attribute_exists(#job)",
            ExpressionAttributeNames=dynamo.names("#chunk_pk #chunk_sk #index #job"),
            ExpressionAttributeValues=dynamo.values(pk=pk, sk=sk, i=index),
        )

    def _get_chunk(self, pk: str, sk: str) -> dict[str, Any] | None:
        answer = self.client.get_item(
            TableName=self.queue_table,
            Key=dynamo.serialize({"pk": pk, "sk": sk}),
            ConsistentRead=True,
        )
        return dynamo.deserialize(answer["Item"]) if "Item" in answer else None

    def _delete_if_spent(self, pk: str, sk: str, chunk: dict[str, Any] | None = None) -> None:
        """Delete a chunk whose every job was acknowledged or moved elsewhere.

        Conditional on ``left`` so that a concurrent move or ack cannot be lost.
        """
        chunk = chunk or self._get_chunk(pk, sk)
        if not chunk or chunk["left"] > 0:
            return
        try:
            self.client.delete_item(
                TableName=self.queue_table,
                Key=dynamo.serialize({"pk": pk, "sk": sk}),
                ConditionExpression="#left <= :zero",
                ExpressionAttributeNames=dynamo.names("#left"),
                ExpressionAttributeValues=dynamo.values(zero=0),
            )
        except ClientError as exc:
            if not dynamo.is_condition_failure(exc):
                raise

    @staticmethod
    def _partitions(stream_id: str, shards: int) -> list[str]:
        """The stream's queue partitions: its ready shards, then its delayed partition."""
        return [keys.ready_pk(stream_id, s) for s in range(shards)] + [keys.delayed_pk(stream_id)]

    def _chunks_in(
        self, pk: str, fields: str, consistent: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every chunk of one partition, with the given ``#field`` projection."""
        return dynamo.query(
            self.client,
            TableName=self.queue_table,
            KeyConditionExpression="#pk = :pk",
            ProjectionExpression=fields,
            ExpressionAttributeNames=dynamo.names("#pk", fields),
            ExpressionAttributeValues=dynamo.values(pk=pk),
            ConsistentRead=consistent,
        )

    # --- inspect ----------------------------------------------------------------------------
    def oldest_due(self, stream_id: str) -> int | None:
        """Due time (epoch ms) of the job that waited longest among those at the head of
        the stream's shards (the next ones a claim takes), or None when none is due."""
        shards = properties.get(self._properties(stream_id), "shards")
        heads = [
            chunk["due"]
            for shard in range(shards)
            for chunk in self._claimable(keys.ready_pk(stream_id, shard))
        ]
        return min(heads, default=None)

    def get_job(self, stream_id: str, job_id: str) -> dict[str, Any]:
        keys.check(keys.JOB_ID, job_id, "job id")
        self.streams.get_item(stream_id)
        record = self._records(stream_id, [job_id]).get(job_id)
        if record is None:
            raise JobNotFound(f"no job {job_id!r} in stream {stream_id!r}")
        if record.get("status") == jobs.ACKED:
            return {"id": job_id, "client": stream_id, "status": jobs.ACKED}
        pk, sk = record["chunk_pk"], record["chunk_sk"]
        chunk = self._get_chunk(pk, sk) or self._get_chunk(*self._ready_location(stream_id, pk, sk))
        entry = (chunk or {}).get("results", {}).get(str(record["index"]))
        spilled = self._spilled(stream_id, [entry["ref"]]) if entry and "ref" in entry else {}
        job = self._job_dict(record, entry, spilled)
        joboutput.attach(self.client, self.jobs_table, stream_id, [job], [(job_id, None, entry)])
        if entry is None and chunk:
            for claim in chunk.get("claims", {}).values():
                if claim["start"] <= record["index"] < claim["end"]:
                    job.update(status=jobs.RUNNING, node=claim["node"], attempt=chunk["attempt"])
        return job

    # --- delete -----------------------------------------------------------------------------
    def purge(self, stream_id: str, shards: int) -> None:
        """Delete every chunk and job record of a stream (the stream is already hidden)."""
        for pk in self._partitions(stream_id, shards):
            chunk_keys = self._chunks_in(pk, "#pk, #sk")
            dynamo.batch_write(self.client, self.queue_table, deletes=list(chunk_keys))
        job_keys = dynamo.query(
            self.client,
            TableName=self.jobs_table,
            KeyConditionExpression="#stream = :s",
            ProjectionExpression="#stream, #job",
            ExpressionAttributeNames=dynamo.names("#stream #job"),
            ExpressionAttributeValues=dynamo.values(s=stream_id),
        )
        dynamo.batch_write(self.client, self.jobs_table, deletes=list(job_keys))
        self._props_cache.pop(stream_id, None)
