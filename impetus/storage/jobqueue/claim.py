"""Claim: lease a run of due jobs with one conditional write; promote delayed chunks."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from impetus.core import keys, properties
from impetus.core.claims import Claim, ClaimedJob
from impetus.storage import dynamo
from impetus.storage.jobqueue import layout
from impetus.storage.jobqueue.items import QueueItems
from impetus.storage.jobqueue.layout import (
    CANDIDATE_FIELDS,
    CLAIM_PAGE,
    CLAIM_PROBES,
    CLAIMED_FIELDS,
    CLOCK_SLACK_MS,
    OLDEST_SAMPLE,
    PROMOTE_BATCH,
    PROMOTE_EVERY,
    TOP_K,
)
from impetus.storage.tables import CLAIM_INDEX


class Claimer:
    """Claims due jobs for nodes and promotes delayed chunks that fell due."""

    def __init__(self, items: QueueItems) -> None:
        self.items = items
        self._code_cache: dict[str, str] = {}  # code digest -> encoded code
        self._promoted_at: dict[str, float] = {}  # stream -> last promotion check
        # stream -> epoch ms (less CLOCK_SLACK_MS) of the last promotion Query that found
        # nothing due: no delayed chunk due by then was left (see _promote_due)
        self._clear: dict[str, int] = {}
        self._sweep: dict[str, int] = {}  # stream -> the shard its next claim Queries first

    # --- claim ----------------------------------------------------------------------------
    def claim(self, stream_id: str, node: str, max_jobs: int, lease: float) -> Claim | None:
        """Query at most CLAIM_PROBES shards, whatever their number: a claim costs the same
        with 256 shards as with 1. This claimer sweeps the shards in a ring from a random
        start: a dry claim moves on past the shards it Queried, a fruitful one stays on
        the shard it found work in. So every shard is Queried within
        ceil(shards / CLAIM_PROBES) dry claims of each claimer: no job is stranded."""
        if max_jobs < 1:
            return None
        self._promote_due(stream_id)
        shards = properties.get(self.items.properties(stream_id), "shards")
        for shard in self.probes(stream_id, shards):
            claim = self._claim_in(
                stream_id, layout.ready_pk(stream_id, shard), node, max_jobs, lease
            )
            if claim:
                self._sweep[stream_id] = shard
                return claim
        return None

    def probes(self, stream_id: str, shards: int) -> list[int]:
        """The shards a claim Queries, in order; moves the sweep past them (a claim that
        finds work puts it back on its shard)."""
        return layout.ring_window(self._sweep, stream_id, shards, CLAIM_PROBES)

    def oldest_due(self, stream_id: str) -> int | None:
        """Due time (epoch ms) of the job that waited longest among those at the head of
        up to OLDEST_SAMPLE random shards of the stream (the next ones a claim takes), or
        None when none is due there. A sample: enqueue spreads chunks evenly over the
        shards, and DFS asks every tick, so its cost must not grow with the shards."""
        shards = properties.get(self.items.properties(stream_id), "shards")
        sample = random.sample(range(shards), min(shards, OLDEST_SAMPLE))
        heads = [
            chunk["due"]
            for shard in sample
            for chunk in self.claimable(stream_id, layout.ready_pk(stream_id, shard))
        ]
        return min(heads, default=None)

    def claimable(self, stream_id: str, pk: str) -> list[dict[str, Any]]:
        """The first claimable chunks of a partition (due, not fully claimed), oldest first.

        Streams created with the claim index (CLAIM_INDEX_FLAG on their item) Query it:
        it holds only chunks with a waiting job, so a Query evaluates (and is billed for)
        claimable chunks, not the fully claimed ones that wait at a partition's head
        until their results are acknowledged. An index read is eventually consistent
        (AWS allows no other): a chunk written a moment ago may be missing, a chunk
        claimed a moment ago may show its old cursor; the claim's write, conditional
        on the cursor, loses such a race like any other. The filter stays: a chunk not
        due yet is in the index, and so is a stale entry. Older streams, whose chunks
        may lack the index keys, Query their partition (strongly consistent).
        """
        if self.items.claim_index(stream_id):
            where: dict[str, Any] = {"IndexName": CLAIM_INDEX.name}
            partition = f"#{CLAIM_INDEX.partition_key}"
        else:
            where, partition = {"ConsistentRead": True}, "#pk"
        found = dynamo.query(
            self.items.client,
            TableName=self.items.queue_table,
            KeyConditionExpression=f"{partition} = :pk",
            FilterExpression="#cursor < #n AND #due <= :now",
            ProjectionExpression=CANDIDATE_FIELDS,
            ExpressionAttributeNames=dynamo.names(
                partition, "#cursor < #n AND #due", CANDIDATE_FIELDS
            ),
            ExpressionAttributeValues=dynamo.values(pk=pk, now=keys.now_ms()),
            Limit=CLAIM_PAGE,
            **where,
        )
        return list(itertools.islice(found, TOP_K))

    def _claim_in(
        self, stream_id: str, pk: str, node: str, max_jobs: int, lease: float
    ) -> Claim | None:
        """Head chunk first (FIFO); after a lost race, a random one of the top K."""
        for attempt in range(6):
            candidates = self.claimable(stream_id, pk)
            if not candidates:
                return None
            chunk = candidates[0] if attempt == 0 else random.choice(candidates)
            claim = self._try_claim(stream_id, chunk, node, max_jobs, lease)
            if claim:
                return claim
        return None

    def _try_claim(
        self, stream_id: str, chunk: dict[str, Any], node: str, max_jobs: int, lease: float
    ) -> Claim | None:
        start = chunk["cursor"]
        end = min(chunk["n"], start + max_jobs)
        claim_id = uuid.uuid4().hex[:16]
        now = time.time()
        expires = now + lease
        # "at": when it was claimed, for the jobs' timeline (same write, a few bytes more;
        # to the millisecond: each result entry carries it too, see jobqueue.stamps)
        entry = {"node": node, "start": start, "end": end, "expires": expires, "state": "active"}
        entry["at"] = now = round(now, 3)
        update = "SET #cursor = :end, #claims.#id = :entry"
        if end == chunk["n"]:  # its last waiting jobs: out of the claim index
            update += " " + layout.LEAVE_CLAIM_INDEX
        try:
            answer = self.items.client.update_item(
                TableName=self.items.queue_table,
                Key=dynamo.serialize({"pk": chunk["pk"], "sk": chunk["sk"]}),
                UpdateExpression=update,
                ConditionExpression="#cursor = :start",
                ExpressionAttributeNames=dynamo.names(update, id=claim_id),
                ExpressionAttributeValues=dynamo.values(end=end, entry=entry, start=start),
                # the chunk's job ids (billed the same: a write is billed on item size)
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return None
            raise
        self.items.counters.count(stream_id, waiting=-(end - start), running=end - start)
        ids = dynamo.deserialize_value(answer["Attributes"]["jobs"])[start:end]
        claimed = self._claimed_jobs(stream_id, chunk, ids, start)
        return Claim(
            stream=stream_id,
            pk=chunk["pk"],
            sk=chunk["sk"],
            claim_id=claim_id,
            node=node,
            attempt=chunk["attempt"],
            expires=expires,
            jobs=claimed,
            failures=chunk.get("failures", 0),
            priority=chunk["priority"],
            claimed=now,
        )

    def _claimed_jobs(
        self, stream_id: str, chunk: dict[str, Any], ids: list[str], start: int
    ) -> list[ClaimedJob]:
        records = self.items.written_records(stream_id, ids, CLAIMED_FIELDS)
        self._load_code(stream_id, {r["code"] for r in records.values()})
        claimed = []
        for index, job_id in enumerate(ids, start):
            # A record missing (or written by someone else) still becomes a ClaimedJob:
            # the node's signature check turns it into an error record.
            r = records.get(job_id, {})
            claimed.append(
                ClaimedJob(
                    id=job_id,
                    index=index,
                    name=r.get("name", ""),
                    code=self._code_cache.get(r.get("code", ""), ""),
                    code_digest=r.get("code", ""),
                    args=r.get("args", ""),
                    python=r.get("python", ""),
                    cloudpickle=r.get("cloudpickle", ""),
                    stage=chunk["stage"],
                    attempt=chunk["attempt"],
                    stream=stream_id,
                    transport=r.get("transport") or "inline",
                    args_ref=r.get("args_ref") or "",
                    args_digest=r.get("args_digest") or "",
                    retries=int(r.get("retries") or 0),
                    max_attempts=int(r.get("max_attempts") or 1),
                    time_limit=float(r["time_limit"]) if r.get("time_limit") else None,
                    failures=chunk.get("failures", 0),
                    signature=r.get("sig") or "",
                )
            )
        return claimed

    def _load_code(self, stream_id: str, digests: Iterable[str]) -> None:
        missing = [d for d in digests if d not in self._code_cache]
        if missing:
            for item in dynamo.batch_get(
                self.items.client,
                self.items.jobs_table,
                [{"stream": stream_id, "job": layout.code_key(d)} for d in missing],
            ):
                self._code_cache[item["job"][len(layout.CODE_PREFIX) :]] = item["code"]

    def _promote_due(self, stream_id: str) -> None:
        """Move delayed chunks that fell due into the ready partitions.

        Rare path, so it uses a transaction: the ready copy appears exactly when the
        delayed one disappears, and two promoters cannot both move the same chunk.

        Queried at most every PROMOTE_EVERY, and only while something may be due: every
        delayed chunk is due by the stream's DELAYED_UNTIL, raised before the chunk is
        written (QueueItems.note_delayed, a step past its due time), so once a Query
        that started after DELAYED_UNTIL found nothing due, nothing is left until it
        rises again (a new Query looks as soon as this claimer's copy of the stream item
        shows it: a node's listing re-reads the item when its mark changes). 0 (nothing
        ever delayed): no Query at all. A stream from before the hint: every time.
        """
        now = time.monotonic()
        if now - self._promoted_at.get(stream_id, 0) < PROMOTE_EVERY:
            return
        self._promoted_at[stream_id] = now
        hint = self.items.delayed_until(stream_id)
        if hint is not None and hint < self._clear.get(stream_id, 1):
            return
        started = keys.now_ms()
        due = list(
            itertools.islice(
                dynamo.query(
                    self.items.client,
                    TableName=self.items.queue_table,
                    KeyConditionExpression="#pk = :pk AND #sk <= :upper",
                    ExpressionAttributeNames=dynamo.names("#pk #sk"),
                    ExpressionAttributeValues=dynamo.values(
                        pk=layout.delayed_pk(stream_id), upper=layout.delayed_sk_upper(started)
                    ),
                    ConsistentRead=True,
                    Limit=PROMOTE_BATCH,
                ),
                PROMOTE_BATCH,
            )
        )
        if not due:
            self._clear[stream_id] = started - CLOCK_SLACK_MS
        self._promote(stream_id, due)

    def _promote(self, stream_id: str, due: list[dict[str, Any]]) -> None:
        for chunk in due:
            pk, sk = self.items.ready_location(stream_id, chunk["pk"], chunk["sk"])
            ready = layout.in_claim_index(dict(chunk, pk=pk, sk=sk))  # into the claim index
            try:
                self.items.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.items.queue_table,
                                "Item": dynamo.serialize(ready),
                                "ConditionExpression": "attribute_not_exists(#pk)",
                                "ExpressionAttributeNames": dynamo.names("#pk"),
                            }
                        },
                        {
                            "Delete": {
                                "TableName": self.items.queue_table,
                                "Key": dynamo.serialize({"pk": chunk["pk"], "sk": chunk["sk"]}),
                                "ConditionExpression": "attribute_exists(#pk)",
                                "ExpressionAttributeNames": dynamo.names("#pk"),
                            }
                        },
                    ]
                )
            except ClientError as exc:
                if dynamo.is_condition_failure(exc):
                    continue
                raise
            self.items.counters.count(stream_id, delayed=-chunk["n"], waiting=chunk["n"])
