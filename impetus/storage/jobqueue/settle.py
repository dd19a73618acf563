"""Settle: renew leases, complete claims, send jobs that run again back, release, reap."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from impetus.core import joboutput, jobs, keys, properties, retry
from impetus.core.claims import Claim, ClaimedJob
from impetus.core.exceptions import ClaimLost
from impetus.core.jobs import Outcome
from impetus.storage import dynamo
from impetus.storage.jobqueue import layout
from impetus.storage.jobqueue.items import QueueItems
from impetus.storage.jobqueue.layout import INLINE_RESULT_LIMIT, REAP_SHARDS, new_chunk, shard_of
from impetus.storage.jobqueue.seal import Sealer


@dataclass
class ClaimMarks:
    """What a partial report adds to the claim entry it keeps: chunk indices reported
    (their results written or their jobs moved) and indices started."""

    done: list[int]
    run: list[int]


class Settler:
    """Renews, completes, releases and reaps claims. ``payload`` reads an S3 result's
    text, for its outcome's MAC (impetus.storage.jobqueue.seal)."""

    def __init__(self, items: QueueItems, payload: Callable[[str], str] | None = None) -> None:
        self.items = items
        self.sealer = Sealer(items, payload)
        self._reap_next: dict[str, int] = {}  # stream -> the shard its next reap starts at

    # --- leases -----------------------------------------------------------------------------
    # Every write on a claim is conditional on the claim being there, active, held by the
    # same node, on the same attempt: claim ids are unique, so (claim id, node, attempt)
    # pins (job, attempt, owner). A zombie whose lease was reaped (and whose jobs may be
    # running elsewhere as attempt + 1) finds its claim gone and records nothing.
    OWNER = "#claims.#id.#node = :node AND #claims.#id.#state = :active AND #attempt = :attempt"

    @staticmethod
    def _owner_values(claim: Claim) -> dict[str, Any]:
        return {":node": claim.node, ":active": "active", ":attempt": claim.attempt}

    def renew(self, claim: Claim, lease: float) -> None:
        expires = time.time() + lease
        update = "SET #claims.#id.#expires = :expires"
        vals = {k: dynamo.serialize_value(v) for k, v in self._owner_values(claim).items()}
        vals.update(dynamo.values(expires=expires))
        try:
            self.items.client.update_item(
                TableName=self.items.queue_table,
                Key=dynamo.serialize({"pk": claim.pk, "sk": claim.sk}),
                UpdateExpression=update,
                ConditionExpression=self.OWNER,
                ExpressionAttributeNames=dynamo.names(update, self.OWNER, id=claim.claim_id),
                ExpressionAttributeValues=vals,
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                raise ClaimLost(f"claim {claim.claim_id} is no longer held") from exc
            raise
        claim.expires = expires

    def complete(
        self,
        claim: Claim,
        outcomes: dict[str, Outcome],
        unrun: Iterable[str] = (),
        reported: Iterable[str] = (),
    ) -> None:
        """End a claim: record its last outcomes, send the jobs that may run again back
        (impetus.core.retry) and the ``unrun`` ones (they never started) back with the
        same attempt. Jobs in ``reported`` went out in an earlier :meth:`report`."""
        self._record(claim, outcomes, set(unrun), set(reported), (), end=True)

    def report(
        self,
        claim: Claim,
        outcomes: dict[str, Outcome],
        started: Iterable[str] = (),
        reported: Iterable[str] = (),
        unrun: Iterable[str] = (),
    ) -> None:
        """Record some outcomes of a claim still held, which stays held for the rest
        (so no job waits on a slower one claimed with it), mark ``started`` jobs as
        running and send the ``unrun`` ones back with the same attempt (the node hands
        them back before they run: a Spot interruption). The claim entry keeps the
        indices reported (``done``: a reap must not run them again) and started
        (``run``: the results route shows them)."""
        self._record(claim, outcomes, set(unrun), set(reported), started, end=False)

    def _record(
        self,
        claim: Claim,
        outcomes: dict[str, Outcome],
        unrun: set[str],
        reported: set[str],
        started: Iterable[str],
        end: bool,
    ) -> None:
        base = properties.get(self.items.properties(claim.stream), "retry_backoff")
        key = self.sealer.key(claim.stream)
        entries: dict[str, dict[str, Any]] = {}
        spilled: list[dict[str, Any]] = []
        reruns: dict[retry.Rerun, list[str]] = defaultdict(list)
        done: list[int] = []
        for job in claim.jobs:
            if job.id in reported or (not end and job.id not in outcomes and job.id not in unrun):
                continue
            done.append(job.index)
            if job.id in unrun and job.id not in outcomes:
                reruns[retry.Rerun(claim.attempt, claim.failures, 0.0)].append(job.id)
                continue
            outcome = outcomes.get(job.id) or Outcome(
                jobs.ERROR,
                error=jobs.system_error("lost", "no outcome", job.name),
                failure=jobs.CRASH,
            )
            rerun = retry.next_run(
                outcome,
                attempt=claim.attempt,
                failures=claim.failures,
                retries=job.retries,
                max_attempts=job.max_attempts,
                backoff_base=base,
            )
            if rerun:
                reruns[rerun].append(job.id)
                continue
            entry, spill = self._result_entry(claim, job, outcome)
            if key is not None:
                self.sealer.seal(key, claim, job, outcome, entry)
            spill += joboutput.spill(claim.stream, job.id, claim.claim_id, outcome.output, entry)
            entries[str(job.index)] = entry
            spilled += spill
        marks = None
        if not end:
            running = {j.id: j.index for j in claim.jobs if j.id not in reported}
            marks = ClaimMarks(done, [running[i] for i in started if i in running])
        if spilled:
            dynamo.batch_write(self.items.client, self.items.jobs_table, puts=spilled)
        errors = sum(1 for e in entries.values() if e["s"] == jobs.ERROR)
        try:
            self._settle(
                claim,
                entries,
                reruns,
                self.OWNER,
                self._owner_values(claim),
                errors=errors,
                marks=marks,
            )
        except ClaimLost:
            dynamo.batch_write(
                self.items.client,
                self.items.jobs_table,
                deletes=[{"stream": s["stream"], "job": s["job"]} for s in spilled],
            )
            raise

    def _result_entry(
        self, claim: Claim, job: ClaimedJob, outcome: Outcome
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        entry: dict[str, Any] = {
            "s": outcome.status,
            "a": claim.attempt,
            "node": claim.node,
            "st": outcome.started,
            "fi": outcome.finished,
        }
        # the timeline's claim time and worker slot ride on the completion write
        if claim.claimed:
            entry["cl"] = claim.claimed
        if outcome.worker is not None:
            entry["w"] = outcome.worker
        if outcome.status == jobs.ERROR:
            entry["e"] = outcome.error
            return entry, []
        if outcome.result_ref:  # the node put the result in S3 (impetus.storage.payloads)
            entry["s3"] = outcome.result_ref
            return entry, []
        result = outcome.result or ""
        if len(result) <= INLINE_RESULT_LIMIT:
            entry["r"] = result
            return entry, []
        ref = f"#result#{job.id}#{claim.claim_id}"
        entry["ref"] = ref
        return entry, [{"stream": claim.stream, "job": ref, "result": result}]

    def _settle(
        self,
        claim: Claim,
        entries: dict[str, dict[str, Any]],
        reruns: dict[retry.Rerun, list[str]],
        condition: str,
        condition_values: dict[str, Any],
        errors: int = 0,
        marks: ClaimMarks | None = None,
    ) -> None:
        """Write a claim's results into the chunk and move the jobs that run again into
        new chunks, in one write (a transaction when anything moves). Without ``marks``
        the claim ends (its entry goes); with them it stays, and records them.
        ``errors``: how many of ``entries`` are errors (for the stream's counters).

        Conditional on ``condition`` (we still own the claim, or: the lease we saw
        expire is still there), so two settlers of one claim cannot both succeed.
        """
        vals = {k: dynamo.serialize_value(v) for k, v in condition_values.items()}
        placeholders = {"id": claim.claim_id}
        sets = []
        for n, (index, entry) in enumerate(entries.items()):
            placeholders[f"r{n}"] = index
            vals[f":r{n}"] = dynamo.serialize_value(entry)
            sets.append(f"#results.#r{n} = :r{n}")
        moved = sum(len(ids) for ids in reruns.values())
        if marks is None:
            update = (f"SET {', '.join(sets)} " if sets else "") + "REMOVE #claims.#id"
        else:
            if not (entries or moved or marks.run):
                return  # nothing to report
            for mark, indices in (("done", marks.done), ("run", marks.run)):
                if indices:
                    path = f"#claims.#id.#{mark}"
                    sets.append(f"{path} = list_append(if_not_exists({path}, :nil), :{mark})")
                    vals.update(dynamo.values(**{mark: indices, "nil": []}))
            update = f"SET {', '.join(sets)}"
        if moved:
            update += " ADD #left :moved"
            vals.update(dynamo.values(moved=-moved))
        write = {
            "TableName": self.items.queue_table,
            "Key": dynamo.serialize({"pk": claim.pk, "sk": claim.sk}),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": dynamo.names(update, condition, **placeholders),
            "ExpressionAttributeValues": vals,
        }
        new_chunks = [self._rerun_chunk(claim, rerun, ids) for rerun, ids in reruns.items()]
        try:
            if new_chunks:
                self.items.client.transact_write_items(
                    TransactItems=[{"Update": write}]
                    + [{"Put": self._put_new(chunk)} for chunk in new_chunks]
                )
            else:
                self.items.client.update_item(**write)
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                raise ClaimLost(f"claim {claim.claim_id} is no longer held") from exc
            raise
        delayed = 0
        for chunk in new_chunks:
            for index, job_id in enumerate(chunk["jobs"]):
                self.items.point(claim.stream, job_id, chunk["pk"], chunk["sk"], index)
            delayed += chunk["n"] if chunk["pk"] == layout.delayed_pk(claim.stream) else 0
        self.items.counters.count(
            claim.stream,
            running=-(len(entries) + moved),
            waiting=moved - delayed,
            delayed=delayed,
            finished=len(entries),
            errors=errors,
        )
        if moved:
            self.items.delete_if_spent(claim.pk, claim.sk)

    def _rerun_chunk(self, claim: Claim, rerun: retry.Rerun, ids: list[str]) -> dict[str, Any]:
        """A new chunk for jobs that run again: ready now, or delayed until their backoff."""
        suffix = keys.unique_suffix()
        due = keys.now_ms() + int(rerun.delay * 1000)
        if rerun.delay > 0:
            self.items.note_delayed(claim.stream, due)  # before the chunk is written
            pk, sk = layout.delayed_pk(claim.stream), layout.delayed_sk(claim.priority, due, suffix)
        else:
            shards = properties.get(self.items.properties(claim.stream), "shards")
            pk = layout.ready_pk(claim.stream, shard_of(suffix, shards))
            sk = layout.ready_sk(claim.priority, due, suffix)
        stage = claim.jobs[0].stage if claim.jobs else ""
        return new_chunk(
            claim.stream, pk, sk, ids, stage, claim.priority, due, rerun.attempt, rerun.failures
        )

    def _put_new(self, chunk: dict[str, Any]) -> dict[str, Any]:
        return {
            "TableName": self.items.queue_table,
            "Item": dynamo.serialize(chunk),
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": dynamo.names("#pk"),
        }

    def release(self, claim: Claim, reported: Iterable[str] = ()) -> None:
        """Give a claim's jobs back (but those ``reported``), unrun and with the same
        attempt number, and end it."""
        same = retry.Rerun(claim.attempt, claim.failures, 0.0)
        back = [j.id for j in claim.jobs if j.id not in set(reported)]
        self._settle(claim, {}, {same: back} if back else {}, self.OWNER, self._owner_values(claim))

    def reap(self, stream_id: str) -> int:
        """Return the jobs of expired leases to the queue (attempt + 1), or fail them as
        lost once they used up ``max_attempts``. Reads only the stream's live chunks, on
        at most REAP_SHARDS shards a call."""
        props = self.items.properties(stream_id)
        max_attempts = properties.get(props, "max_attempts")
        now = time.time()
        released = 0
        # Node agents and DFS reap each busy stream every few seconds: a reap's reads must
        # not grow with the shards. Each reaper sweeps a ring of them, REAP_SHARDS a call,
        # so every shard is reaped within ceil(shards / REAP_SHARDS) reaps of each reaper.
        shards = properties.get(props, "shards")
        for shard in layout.ring_window(self._reap_next, stream_id, shards, REAP_SHARDS):
            for chunk in dynamo.query(
                self.items.client,
                TableName=self.items.queue_table,
                KeyConditionExpression="#pk = :pk",
                FilterExpression="size(#claims) > :zero",
                ProjectionExpression="#pk, #sk, #jobs, #attempt, #failures, #stage, #priority, "
                "#claims",
                ExpressionAttributeNames=dynamo.names(
                    "#pk #sk #jobs #attempt #failures #stage #priority #claims"
                ),
                ExpressionAttributeValues=dynamo.values(
                    pk=layout.ready_pk(stream_id, shard), zero=0
                ),
                ConsistentRead=True,
            ):
                for claim_id, entry in chunk.get("claims", {}).items():
                    if entry["expires"] < now and entry["state"] == "active":
                        released += self._reap_claim(
                            stream_id, chunk, claim_id, entry, max_attempts
                        )
        return released

    def _reap_claim(
        self,
        stream_id: str,
        chunk: dict[str, Any],
        claim_id: str,
        entry: dict[str, Any],
        max_attempts: int,
    ) -> int:
        """An expired lease counts as a crash of every job it held but those it reported
        (see impetus.core.retry)."""
        attempt, failures = chunk["attempt"], chunk.get("failures", 0)
        done = set(entry.get("done", []))
        claim = Claim(
            stream=stream_id,
            pk=chunk["pk"],
            sk=chunk["sk"],
            claim_id=claim_id,
            node=entry["node"],
            attempt=attempt,
            expires=entry["expires"],
            claimed=entry.get("at", 0.0),
            failures=failures,
            priority=chunk["priority"],
            jobs=[
                ClaimedJob(
                    id=i,
                    index=idx,
                    name="",
                    code="",
                    code_digest="",
                    args="",
                    python="",
                    cloudpickle="",
                    stage=chunk["stage"],
                    attempt=attempt,
                    stream=stream_id,
                )
                for idx, i in enumerate(chunk["jobs"])
                if entry["start"] <= idx < entry["end"] and idx not in done
            ],
        )
        lost = jobs.system_error(
            "lost",
            f"node {entry['node']} stopped answering; gave up after {attempt + 1} attempts",
        )
        outcome = Outcome(jobs.ERROR, error=lost, finished=time.time(), failure=jobs.CRASH)
        rerun = retry.next_run(
            outcome,
            attempt=attempt,
            failures=failures,
            retries=0,
            max_attempts=max_attempts,
            backoff_base=0,
        )
        condition = "#claims.#id.#expires = :seen AND #claims.#id.#state = :active"
        values = {":seen": entry["expires"], ":active": "active"}
        ids = [j.id for j in claim.jobs]
        try:
            if rerun and ids:
                self._settle(claim, {}, {rerun: ids}, condition, values)
            else:
                entries = {
                    str(j.index): self._result_entry(claim, j, outcome)[0] for j in claim.jobs
                }
                self._settle(claim, entries, {}, condition, values, errors=len(ids))
        except ClaimLost:
            return 0
        return len(ids)
