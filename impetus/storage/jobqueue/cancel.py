"""Cancel: take jobs that no node has claimed out of the queue, so that none ever runs.

A chunk's jobs before its ``cursor`` are claimed; the ones from the cursor on wait. A
job waiting at index ``i`` of a chunk whose cursor is ``c`` is cancelled by one
transaction, conditional on the cursor still being ``c`` (no claim moved it meanwhile,
no other cancel either):

* the chunk swaps ``jobs[i]`` and ``jobs[c]``, advances the cursor past the cancelled
  job and drops one from ``left``: the slot is consumed without a claim or a result,
  so no claim takes it, collection returns nothing for it and the chunk is deleted
  once its other jobs are acknowledged; when that was its last waiting slot, the chunk
  leaves the claim index (its index keys go, as with a claim's);
* the cancelled job's record gets ``status = cancelled`` (and the pointer to its slot);
* the job swapped into ``i`` (when ``i != c``) gets its record re-pointed.

A claimed job (running, finished or acknowledged) is not touched: it is reported as
running or done. Delayed chunks are cancelled in the same way, wherever they live.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from impetus.core import jobs
from impetus.storage import dynamo
from impetus.storage.jobqueue import layout
from impetus.storage.jobqueue.items import QueueItems
from impetus.storage.jobqueue.layout import POINTER_FIELDS

CANCELLED = "cancelled"
ATTEMPTS = 8  # races with claims (each moves the cursor) before giving up on a job


class Canceller:
    """Cancels waiting or delayed jobs of a stream."""

    def __init__(self, items: QueueItems) -> None:
        self.items = items

    def cancel(self, stream_id: str, job_ids: list[str]) -> dict[str, list[str]]:
        """{"cancelled": ids taken out of the queue (or cancelled before),
        "running_or_done": ids claimed already, "unknown": ids the stream does not have}."""
        self.items.streams.get_item(stream_id)  # StreamNotFound
        ids = list(dict.fromkeys(job_ids))
        records = self.items.records(stream_id, ids, POINTER_FIELDS)
        outcome: dict[str, list[str]] = {"cancelled": [], "running_or_done": [], "unknown": []}
        for job_id in ids:
            record = records.get(job_id)
            if record is None:
                outcome["unknown"].append(job_id)
            elif record.get("status") == CANCELLED or self._cancel_one(stream_id, record):
                outcome["cancelled"].append(job_id)
            else:
                outcome["running_or_done"].append(job_id)
        return outcome

    def waiting_ids(self, stream_id: str, shards: int) -> list[str]:
        """Every job of the stream not claimed yet (ready and delayed partitions)."""
        found: list[str] = []
        for pk in self.items.partitions(stream_id, shards):
            for chunk in self.items.chunks_in(pk, "#jobs, #cursor, #n", consistent=True):
                found += chunk["jobs"][int(chunk["cursor"]) : int(chunk["n"])]
        return found

    # --- one job --------------------------------------------------------------------------
    def _cancel_one(self, stream_id: str, record: dict[str, Any]) -> bool:
        if record.get("status") == jobs.ACKED:
            return False
        job_id = record["job"]
        for _ in range(ATTEMPTS):
            found = self._locate(stream_id, record)
            if found is None:
                return False  # claimed (or gone): it runs or ran
            chunk, index = found
            try:
                self._consume(stream_id, chunk, index, job_id)
            except ClientError as exc:
                if not dynamo.is_condition_failure(exc):
                    raise
                continue  # a claim or another cancel moved the cursor: look again
            delayed = chunk["pk"] == layout.delayed_pk(stream_id)
            self.items.counters.count(
                stream_id, waiting=0 if delayed else -1, delayed=-1 if delayed else 0
            )
            if int(chunk["left"]) - 1 <= 0:
                self.items.delete_if_spent(chunk["pk"], chunk["sk"])
            return True
        return False

    def _locate(self, stream_id: str, record: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
        """(chunk, index) of the job if it still waits there; None once claimed."""
        pk, sk = record["chunk_pk"], record["chunk_sk"]
        chunk = self.items.get_chunk(pk, sk)
        if chunk is None:  # a delayed chunk promoted meanwhile
            chunk = self.items.get_chunk(*self.items.ready_location(stream_id, pk, sk))
        if chunk is None:
            return None
        waiting = chunk["jobs"][int(chunk["cursor"]) : int(chunk["n"])]
        if record["job"] not in waiting:
            return None
        return chunk, int(chunk["cursor"]) + waiting.index(record["job"])

    def _consume(self, stream_id: str, chunk: dict[str, Any], index: int, job_id: str) -> None:
        """The transaction: the job's slot consumed at the cursor, records re-pointed."""
        cursor = int(chunk["cursor"])
        pk, sk = chunk["pk"], chunk["sk"]
        other = chunk["jobs"][cursor]
        swap = f", #jobs[{index}] = :other, #jobs[{cursor}] = :me" if index != cursor else ""
        update = f"SET #cursor = :next{swap} ADD #left :minus_one"
        if cursor + 1 >= int(chunk["n"]):  # its last waiting slot: out of the claim index
            update += " " + layout.LEAVE_CLAIM_INDEX
        chunk_write = {
            "TableName": self.items.queue_table,
            "Key": dynamo.serialize({"pk": pk, "sk": sk}),
            "UpdateExpression": update,
            "ConditionExpression": "#cursor = :cursor",
            "ExpressionAttributeNames": dynamo.names(update, "#cursor"),
            "ExpressionAttributeValues": dynamo.values(
                next=cursor + 1,
                cursor=cursor,
                minus_one=-1,
                **({"other": other, "me": job_id} if swap else {}),
            ),
        }
        writes = [
            {"Update": chunk_write},
            {"Update": self._pointer(stream_id, job_id, pk, sk, cursor, CANCELLED)},
        ]
        if swap:
            writes.append({"Update": self._pointer(stream_id, other, pk, sk, index)})
        self.items.client.transact_write_items(TransactItems=writes)

    def _pointer(
        self, stream_id: str, job_id: str, pk: str, sk: str, index: int, status: str | None = None
    ) -> dict[str, Any]:
        update = "SET #chunk_pk = :pk, #chunk_sk = :sk, #index = :i" + (
            ", #status = :status" if status else ""
        )
        return {
            "TableName": self.items.jobs_table,
            "Key": dynamo.serialize({"stream": stream_id, "job": job_id}),
            "UpdateExpression": update,
            "ConditionExpression": "attribute_exists(#job)",
            "ExpressionAttributeNames": dynamo.names(update, "#job"),
            "ExpressionAttributeValues": dynamo.values(
                pk=pk, sk=sk, i=index, **({"status": status} if status else {})
            ),
        }
