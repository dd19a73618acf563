"""Collect: a stage's finished jobs, and their acknowledgement."""

from __future__ import annotations

import itertools
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from impetus.core import joboutput, jobs, keys, properties
from impetus.core.exceptions import JobNotFound
from impetus.storage import dynamo
from impetus.storage.jobqueue import layout, stamps
from impetus.storage.jobqueue.items import QueueItems
from impetus.storage.jobqueue.layout import CHUNK_SIZE, POINTER_FIELDS
from impetus.storage.jobqueue.seal import ARGS_VERIFIED, MAC

#: Finished jobs read per round trip when a page is cut by size (BatchGetItem takes 100).
SLICE = 100


# an ack reads the records' pointers, and their fork time for the tombstone's timeline
ACK_FIELDS = (*POINTER_FIELDS, "created")


@dataclass
class ResultsPage:
    """A results page: finished jobs, ids of jobs started and not ended, and whether
    finished jobs were left out (the client asks again at once)."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    more: bool = False


def running_jobs(chunk: dict[str, Any]) -> list[str]:
    """Ids of a chunk's jobs marked started by a claim that has not reported them."""
    ids = []
    for claim in chunk.get("claims", {}).values():
        done = set(claim.get("done", []))
        ids += [chunk["jobs"][int(i)] for i in claim.get("run", []) if i not in done]
    return ids


class Collector:
    """Reads a stage's finished jobs (and one job), and acknowledges them."""

    def __init__(self, items: QueueItems) -> None:
        self.items = items

    # --- collect ----------------------------------------------------------------------------
    def results(self, stream_id: str, stage: str, limit: int = 1000) -> list[dict[str, Any]]:
        return self.results_page(stream_id, stage, limit).jobs

    def results_page(
        self,
        stream_id: str,
        stage: str,
        limit: int = 1000,
        accept: Callable[[dict[str, Any]], bool] | None = None,
    ) -> ResultsPage:
        """A stage's finished jobs as a page: up to ``limit``, each offered to ``accept``
        (the API's size budget) in queue order until it says no; ``more`` when finished
        jobs were left out; ``started``: the ids of its jobs that a node has marked started
        and that have not ended, read from the same chunks. Jobs are read in slices, so a page cut
        short does not read the records, results and output of the jobs it leaves out."""
        keys.check(keys.STAGE, stage, "stage")
        page = ResultsPage()
        # One past the limit: whether more are waiting costs at most a chunk read.
        finished = list(itertools.islice(self._finished(stream_id, stage, page.started), limit + 1))
        page.more = len(finished) > limit
        for start in range(0, min(limit, len(finished)), SLICE):
            for job in self._read(stream_id, finished[start : min(start + SLICE, limit)]):
                if accept is not None and not accept(job):
                    page.more = True
                    return page
                page.jobs.append(job)
        return page

    def _read(
        self, stream_id: str, finished: list[tuple[str, tuple[str, str, int], dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Job dicts of finished entries: records, spilled results and output attached."""
        records = self.items.written_records(stream_id, [f[0] for f in finished])
        self._repair_pointers(stream_id, records, finished)
        spilled = self._spilled(stream_id, [e["ref"] for *_, e in finished if "ref" in e])
        found = [
            self._job_dict(records[job_id], entry, spilled)
            for job_id, _, entry in finished
            if job_id in records
        ]
        joboutput.attach(self.items.client, self.items.jobs_table, stream_id, found, finished)
        return found

    def _finished(
        self, stream_id: str, stage: str, started: list[str]
    ) -> Iterator[tuple[str, tuple[str, str, int], dict[str, Any]]]:
        """(job id, (chunk pk, chunk sk, index), result entry) of a stage's finished jobs;
        appends to ``started`` the jobs of the chunks read that run (a claim's ``run``
        mark, not ``done``). Chunks with a claim are read for that: they are billed by
        the bytes evaluated either way, the filter only trims the answer."""
        shards = properties.get(
            self.items.streams.get_item(stream_id).get("properties", {}), "shards"
        )
        # From a random shard round the ring: each page stops once it has ``limit`` + 1
        # jobs, so pages that all began at shard 0 would all read shard 0's chunks.
        first = random.randrange(shards)
        for shard in (*range(first, shards), *range(first)):
            for chunk in dynamo.query(
                self.items.client,
                TableName=self.items.queue_table,
                KeyConditionExpression="#pk = :pk",
                FilterExpression="#stage = :stage AND (size(#results) > :zero "
                "OR size(#claims) > :zero)",
                ProjectionExpression="#pk, #sk, #jobs, #results, #claims",
                ExpressionAttributeNames=dynamo.names("#pk #sk #stage #results #jobs #claims"),
                ExpressionAttributeValues=dynamo.values(
                    pk=layout.ready_pk(stream_id, shard), stage=stage, zero=0
                ),
                ConsistentRead=True,
            ):
                started += running_jobs(chunk)
                for index, entry in chunk["results"].items():
                    where = (chunk["pk"], chunk["sk"], int(index))
                    yield chunk["jobs"][int(index)], where, entry

    def _repair_pointers(
        self,
        stream_id: str,
        records: dict[str, dict[str, Any]],
        finished: list[tuple[str, tuple[str, str, int], dict[str, Any]]],
    ) -> None:
        """Point records at the chunk that holds their result.

        A move (release, reap) re-points its jobs' records after its transaction; a crash
        in between leaves them pointing at the old chunk, where ``ack`` would never find
        the result. Collection sees where results really are, so it mends that (rarely).
        """
        for job_id, (pk, sk, index), _ in finished:
            record = records.get(job_id)
            if record and (record["chunk_pk"], record["chunk_sk"], record["index"]) != (
                pk,
                sk,
                index,
            ):
                self.items.point(stream_id, job_id, pk, sk, index)
                record.update(chunk_pk=pk, chunk_sk=sk, index=index)

    def _spilled(self, stream_id: str, refs: list[str]) -> dict[str, str]:
        if not refs:
            return {}
        found = dynamo.batch_get(
            self.items.client,
            self.items.jobs_table,
            [{"stream": stream_id, "job": r} for r in refs],
        )
        return {i["job"]: i["result"] for i in found}

    @staticmethod
    def _job_dict(
        record: dict[str, Any], entry: dict[str, Any] | None, spilled: dict[str, str]
    ) -> dict[str, Any]:
        job = {
            "id": record["job"],
            "name": record.get("name"),
            "args": record.get("args"),
            "result": None,
            "status": record.get("status", jobs.WAITING),
            "callback": record.get("stage"),
            "client": record["stream"],
            "created": record.get("created"),
            "delay": record.get("delay", 0),
            "priority": record.get("priority", 0),
            "transport": record.get("transport"),
            "code": record.get("code"),
            "args_ref": record.get("args_ref"),
            "args_digest": record.get("args_digest"),
            "result_ref": None,
            "properties": record.get("properties") or {},
            "attempt": 0,
            "node": None,
            "started": None,
            "finished": None,
        }
        if entry:
            job.update(
                status=entry["s"],
                result=entry["e"] if entry["s"] == jobs.ERROR else entry.get("r"),
                attempt=entry.get("a", 0),
                node=entry.get("node"),
                started=entry.get("st"),
                finished=entry.get("fi"),
                result_ref=entry.get("s3"),
                # the node's seal (impetus.storage.jobqueue.seal); the client checks it
                outcome_mac=entry.get(MAC),
                args_verified=bool(entry.get(ARGS_VERIFIED)),
            )
            if "ref" in entry:
                job["result"] = spilled.get(entry["ref"])
        job["timeline"] = stamps.timeline(record, entry)
        return job

    def get_job(self, stream_id: str, job_id: str) -> dict[str, Any]:
        """One job as the API shows it: its record, and its result or its lease if any."""
        keys.check(keys.JOB_ID, job_id, "job id")
        self.items.streams.get_item(stream_id)
        record = self.items.records(stream_id, [job_id]).get(job_id)
        if record is None:
            raise JobNotFound(f"no job {job_id!r} in stream {stream_id!r}")
        if record.get("status") == jobs.ACKED:
            line = stamps.timeline(record)
            return {"id": job_id, "client": stream_id, "status": jobs.ACKED, "timeline": line}
        pk, sk = record["chunk_pk"], record["chunk_sk"]
        chunk = self.items.get_chunk(pk, sk) or self.items.get_chunk(
            *self.items.ready_location(stream_id, pk, sk)
        )
        entry = (chunk or {}).get("results", {}).get(str(record["index"]))
        spilled = self._spilled(stream_id, [entry["ref"]]) if entry and "ref" in entry else {}
        job = self._job_dict(record, entry, spilled)
        joboutput.attach(
            self.items.client, self.items.jobs_table, stream_id, [job], [(job_id, None, entry)]
        )
        if entry is None and chunk:
            job["attempt"] = chunk.get("attempt", 0)  # the run it waits for (or is in)
            for claim in chunk.get("claims", {}).values():
                if layout.holds(claim, record["index"]):
                    job.update(status=jobs.RUNNING, node=claim["node"], attempt=chunk["attempt"])
                    job["timeline"] = stamps.timeline(record, claim=claim)
        return job

    def ack(self, stream_id: str, job_ids: list[str]) -> int:
        self.items.streams.get_item(stream_id)
        records = self.items.records(stream_id, list(dict.fromkeys(job_ids)), ACK_FIELDS)
        by_chunk: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        for r in records.values():
            if r.get("status") != jobs.ACKED:
                by_chunk[(r["chunk_pk"], r["chunk_sk"])][str(r["index"])] = r["job"]
        acked: dict[str, dict[str, Any]] = {}  # job id -> its removed result entry
        refs = []
        for (pk, sk), members in by_chunk.items():
            removed = self._ack_chunk(pk, sk, members)
            acked.update({members[i]: e for i, e in removed.items()})
            refs += [e[r] for e in removed.values() for r in ("ref", "oref") if r in e]
        now = time.time()
        # the tombstone keeps the job's timeline (impetus.storage.jobqueue.stamps)
        tombstones = [
            {"stream": stream_id, "job": i, "status": jobs.ACKED, "acked": now}
            | stamps.tombstone_fields(records[i], entry)
            for i, entry in acked.items()
        ]
        dynamo.batch_write(
            self.items.client,
            self.items.jobs_table,
            puts=tombstones,
            deletes=[{"stream": stream_id, "job": r} for r in refs],
        )
        self.items.counters.count(stream_id, finished=-len(acked), acked=len(acked))
        return len(acked)

    def _ack_whole_chunk(self, pk: str, sk: str, members: dict[str, str]) -> dict[str, dict] | None:
        """Acknowledge a full chunk's every result by deleting it: one write instead of
        removing the results and then deleting the spent chunk. Conditional on each
        result being there and on no other job being left in it (``left`` = the count
        acknowledged here), so it deletes exactly what the two writes would have.
        None when that does not hold (a repeated ack, a chunk with jobs elsewhere): the
        caller takes the general path."""
        slots = {f"#slot{n}": i for n, i in enumerate(members)}
        condition = " AND ".join(f"attribute_exists(#results.{n})" for n in slots)
        try:
            answer = self.items.client.delete_item(
                TableName=self.items.queue_table,
                Key=dynamo.serialize({"pk": pk, "sk": sk}),
                ConditionExpression=f"{condition} AND #left = :k",
                ExpressionAttributeNames=slots | dynamo.names("#results #left"),
                ExpressionAttributeValues=dynamo.values(k=len(members)),
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return None
            raise
        old = dynamo.deserialize(answer["Attributes"])
        return {i: old["results"][i] for i in members}

    def _ack_chunk(self, pk: str, sk: str, members: dict[str, str]) -> dict[str, dict]:
        """Remove acknowledged results from a chunk; returns {index: removed entry}.

        Conditional on every result still being there, so a repeated ack cannot count
        twice; on a conflict it re-reads the chunk and acks what is left.
        """
        if len(members) == CHUNK_SIZE:
            removed = self._ack_whole_chunk(pk, sk, members)
            if removed is not None:
                return removed
        present = {i: {} for i in members}  # first try: assume all are there (no read)
        for _ in range(5):
            slots = [f"#slot{n}" for n in range(len(present))]
            names = dict(zip(slots, present, strict=True))
            names.update(dynamo.names("#results #left"))
            try:
                answer = self.items.client.update_item(
                    TableName=self.items.queue_table,
                    Key=dynamo.serialize({"pk": pk, "sk": sk}),
                    UpdateExpression="REMOVE "
                    + ", ".join(f"#results.{n}" for n in slots)
                    + " ADD #left :minus_k",
                    ConditionExpression=" AND ".join(
                        f"attribute_exists(#results.{n})" for n in slots
                    ),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=dynamo.values(minus_k=-len(present)),
                    ReturnValues="UPDATED_OLD",
                )
            except ClientError as exc:
                if not dynamo.is_condition_failure(exc):
                    raise
                # Some were acked already (a retried request): ack what is left.
                chunk = self.items.get_chunk(pk, sk) or {"results": {}}
                present = {i: chunk["results"][i] for i in members if i in chunk["results"]}
                if not present:
                    return {}
                continue
            old = dynamo.deserialize(answer["Attributes"])
            if old["left"] - len(present) <= 0:
                self.items.delete_if_spent(pk, sk, {"left": 0})
            return {i: old["results"][i] for i in present}
        return {}
