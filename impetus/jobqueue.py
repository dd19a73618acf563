"""The job queue of a stream: enqueue, claim, complete, release, reap, collect, ack.

Items (see impetus/tables.py for the tables):

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

import itertools
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from impetus import dynamo, joboutput, jobs, keys, properties, retry
from impetus.codec import digest
from impetus.exceptions import ClaimLost, InvalidRequest, JobNotFound
from impetus.jobs import Outcome
from impetus.queue_types import Claim, ClaimedJob
from impetus.signing import Envelope, Signer, sha256_hex
from impetus.streams import Streams

CHUNK_SIZE = 20  # keeps a chunk ~1 KB: a claim's write is billed on the item's size
TOP_K = 8  # claim candidates considered after a lost race
# Chunks read per claim query page. Fully claimed chunks wait at the head of a partition
# until their results are acknowledged, and the filter drops them only after the read, so
# pages of TOP_K took many round trips per claim under load; one larger page usually
# reaches the claimable ones (billed by the bytes evaluated either way).
CLAIM_PAGE = 48
INLINE_RESULT_LIMIT = 8 * 1024  # larger results are stored as their own item
PROMOTE_EVERY = 0.5  # seconds between checks for delayed chunks that fell due
PROPS_TTL = 2.0  # seconds a claimer trusts its cached copy of stream properties
POINTER_FIELDS = ("stream", "job", "status", "chunk_pk", "chunk_sk", "index")
CHUNK_FIELDS = "#pk, #sk, #jobs, #n, #cursor, #attempt, #failures, #stage, #priority, #due"
CLAIMED_FIELDS = (
    "job", "name", "code", "args", "python", "transport", "args_ref", "args_digest",
    "retries", "max_attempts", "sig",
)  # fmt: skip


def _shard_of(suffix: str, shards: int) -> int:
    return int(suffix[-6:], 16) % shards


def _suffix(sk: str) -> str:
    return sk.rsplit("#", 1)[1]


class JobQueue:
    def __init__(
        self,
        client: Any,
        tables: dict[str, str],
        streams: Streams,
        signer: Callable[[], Signer],
    ) -> None:
        """``signer`` gives the signing key's Signer when enqueue first needs it (so that
        node-side users of the queue never read the key through here)."""
        self.client = client
        self._signer = signer
        self.jobs_table = tables["jobs"]
        self.queue_table = tables["queue"]
        self.streams = streams
        # Where backlog counter deltas go: the stream items at once, or a node agent's
        # impetus.counters.BufferedCounters (see Queue.buffer_counters).
        self.counters: Any = streams
        self._code_cache: dict[str, str] = {}
        self._props_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._promoted_at: dict[str, float] = {}

    # --- enqueue --------------------------------------------------------------------------
    def enqueue(
        self,
        stream_id: str,
        specs: list[dict[str, Any]],
        functions: dict[str, str],
        client_python: str,
    ) -> dict[str, list[str]]:
        stream = self.streams.get_item(stream_id)
        specs = [self._check_spec(s) for s in specs]
        self._check_functions(stream_id, specs, functions)
        new, existing = self._split_existing(stream_id, specs)
        now = keys.now_ms()
        props = stream.get("properties", {})
        chunks, records = self._pack(stream_id, new, now, props, client_python)
        code_items = [
            {"stream": stream_id, "job": keys.code_key(d), "code": functions[d]}
            for d in {s["code"] for s in new}
            if d in functions
        ]
        # Records before chunks: a claimer never finds a job id without its record.
        dynamo.batch_write(self.client, self.jobs_table, puts=code_items + records)
        dynamo.batch_write(self.client, self.queue_table, puts=chunks)
        delayed = sum(len(c["jobs"]) for c in chunks if c["pk"] == keys.delayed_pk(stream_id))
        self.counters.count(stream_id, forked=len(new), waiting=len(new) - delayed, delayed=delayed)
        return {"accepted": [s["id"] for s in new], "existing": existing}

    @staticmethod
    def _check_spec(spec: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise InvalidRequest("each job must be an object")
        spec = dict(spec)
        spec["id"] = keys.check(keys.JOB_ID, spec.get("id") or jobs.new_job_id(), "job id")
        keys.check(keys.STAGE, spec.get("stage"), "stage")
        if not isinstance(spec.get("name"), str) or len(spec["name"]) > jobs.MAX_NAME_CHARS:
            raise InvalidRequest(
                f"job name must be a string of at most {jobs.MAX_NAME_CHARS} characters"
            )
        if not isinstance(spec.get("code"), str) or len(spec["code"]) != 64:
            raise InvalidRequest("job code must be a sha256 hex digest")
        JobQueue._check_args(spec)
        priority = spec.get("priority") or 0
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidRequest("priority must be an integer in [-1e9, 1e9]")
        if not keys.PRIORITY_MIN <= priority <= keys.PRIORITY_MAX:
            raise InvalidRequest("priority must be an integer in [-1e9, 1e9]")
        delay = spec.get("delay") or 0
        if not isinstance(delay, (int, float)) or isinstance(delay, bool):
            raise InvalidRequest("delay must be a number of seconds")
        if not 0 <= delay <= jobs.MAX_DELAY_SECONDS:
            raise InvalidRequest(f"delay must be between 0 and {jobs.MAX_DELAY_SECONDS} seconds")
        if not isinstance(spec.get("properties") or {}, dict):
            raise InvalidRequest("job properties must be an object")
        spec.update(
            priority=priority,
            delay=float(delay),
            properties=properties.validate(spec.get("properties") or {}),
        )
        return spec

    @staticmethod
    def _check_args(spec: dict[str, Any]) -> None:
        transport = spec.get("transport") or "inline"
        if transport == "inline":
            args = spec.get("args")
            if not isinstance(args, str) or not args or len(args) > jobs.MAX_PAYLOAD_BYTES:
                raise InvalidRequest("job args must be an encoded string of at most 350 KB")
            spec.update(transport="inline", args_ref=None, args_digest=None)
        elif transport == "s3":
            if spec.get("args"):
                raise InvalidRequest("a job with transport 's3' carries its args in args_ref")
            digest = spec.get("args_digest")
            if not isinstance(digest, str) or not keys.SHA256.match(digest):
                raise InvalidRequest("args_digest must be the sha256 hex of the args object")
            spec["args"] = ""
        else:
            raise InvalidRequest("transport must be 'inline' or 's3'")

    def _check_functions(
        self, stream_id: str, specs: list[dict[str, Any]], functions: dict[str, str]
    ) -> None:
        for key, code in functions.items():
            if not isinstance(code, str) or digest(code) != key:
                raise InvalidRequest(f"function {key[:12]}... does not match its digest")
        unknown = {s["code"] for s in specs} - set(functions)
        if unknown:
            stored = dynamo.batch_get(
                self.client,
                self.jobs_table,
                [{"stream": stream_id, "job": keys.code_key(d)} for d in unknown],
            )
            unknown -= {i["job"][len(keys.CODE_PREFIX) :] for i in stored}
        if unknown:
            raise InvalidRequest(f"unknown function digest {sorted(unknown)[0][:12]}...")

    def _split_existing(
        self, stream_id: str, specs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Forks of an id the stream already knows are skipped (idempotent fork).

        A record still 'waiting' whose chunk is gone was left by a request that died
        between writing records and chunks: it is enqueued again, not skipped.
        """
        unique: dict[str, dict[str, Any]] = {}
        duplicates = []
        for spec in specs:
            if spec["id"] in unique:
                duplicates.append(spec["id"])
            else:
                unique[spec["id"]] = spec
        found = dynamo.batch_get(
            self.client,
            self.jobs_table,
            [{"stream": stream_id, "job": i} for i in unique],
            attributes=POINTER_FIELDS,
        )
        orphans = self._orphans([r for r in found if r.get("status") == jobs.WAITING])
        existing = [r["job"] for r in found if r["job"] not in orphans]
        new = [s for i, s in unique.items() if i not in set(existing)]
        return new, existing + duplicates

    def _orphans(self, waiting: list[dict[str, Any]]) -> set[str]:
        if not waiting:
            return set()
        places = {
            r["job"]: {
                (r["chunk_pk"], r["chunk_sk"]),
                self._ready_location(r["stream"], r["chunk_pk"], r["chunk_sk"]),
            }
            for r in waiting
        }
        wanted = set().union(*places.values())
        alive = {
            (c["pk"], c["sk"])
            for c in dynamo.batch_get(
                self.client, self.queue_table, [{"pk": pk, "sk": sk} for pk, sk in wanted]
            )
        }
        return {job for job, where in places.items() if not where & alive}

    def _ready_location(self, stream_id: str, pk: str, sk: str) -> tuple[str, str]:
        """Where a delayed chunk lives once it fell due (ready chunks: where they are)."""
        if pk != keys.delayed_pk(stream_id):
            return pk, sk
        shards = properties.get(self._properties(stream_id), "shards")
        return keys.ready_pk(stream_id, _shard_of(_suffix(sk), shards)), keys.delayed_to_ready_sk(
            sk
        )

    def _pack(
        self,
        stream_id: str,
        specs: list[dict[str, Any]],
        now: int,
        stream_properties: dict[str, Any],
        client_python: str,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Group jobs by (stage, priority, delay), in fork order, into chunks."""
        shards = properties.get(stream_properties, "shards")
        signer = self._signer()
        groups: dict[tuple[str, int, float], list[dict[str, Any]]] = defaultdict(list)
        for spec in specs:
            groups[(spec["stage"], spec["priority"], spec["delay"])].append(spec)
        chunks, records = [], []
        for (stage, priority, delay), members in groups.items():
            for start in range(0, len(members), CHUNK_SIZE):
                part = members[start : start + CHUNK_SIZE]
                suffix = keys.unique_suffix()
                due = now + int(delay * 1000)
                if delay > 0:
                    pk, sk = keys.delayed_pk(stream_id), keys.delayed_sk(priority, due, suffix)
                else:
                    shard = _shard_of(suffix, shards)
                    pk, sk = keys.ready_pk(stream_id, shard), keys.ready_sk(priority, due, suffix)
                ids = [spec["id"] for spec in part]
                chunks.append(self._new_chunk(stream_id, pk, sk, ids, stage, priority, due))
                for i, spec in enumerate(part):
                    record = self._record(stream_id, spec, pk, sk, i, now, client_python)
                    self._apply_policy(record, spec["properties"], stream_properties)
                    record["sig"] = signer.sign(self.envelope(record))
                    records.append(record)
        return chunks, records

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
            "failures": failures,  # of which ended in an exception (see impetus.retry)
            "jobs": ids,
            "n": len(ids),
            "cursor": 0,
            "claims": {},
            "results": {},
            "left": len(ids),  # jobs neither acknowledged nor moved elsewhere: 0 = spent
        }

    @staticmethod
    def _record(
        stream_id: str,
        spec: dict[str, Any],
        pk: str,
        sk: str,
        index: int,
        now: int,
        client_python: str,
    ) -> dict[str, Any]:
        return {
            "stream": stream_id,
            "job": spec["id"],
            "name": spec["name"],
            "code": spec["code"],
            "args": spec["args"],
            "stage": spec["stage"],
            "priority": spec["priority"],
            "delay": spec["delay"],
            "properties": spec["properties"] or None,
            "transport": spec["transport"],
            "args_ref": spec.get("args_ref"),
            "args_digest": spec.get("args_digest"),
            "python": client_python,
            "created": now / 1000,
            "status": jobs.WAITING,
            "chunk_pk": pk,
            "chunk_sk": sk,
            "index": index,
        }

    @staticmethod
    def _apply_policy(
        record: dict[str, Any], job_props: dict[str, Any], stream_props: dict[str, Any]
    ) -> None:
        """Snapshot the attempt policy into the (signed) record: a job property wins."""
        for name in ("retries", "max_attempts"):
            value = job_props.get(name)
            record[name] = properties.get(stream_props, name) if value is None else value

    @staticmethod
    def envelope(record: dict[str, Any], args_digest: str | None = None) -> Envelope:
        """The signed facts of a job record (``args_digest``: recomputed by the verifier)."""
        return Envelope(
            stream=record["stream"],
            job=record["job"],
            name=record["name"],
            stage=record["stage"],
            code_digest=record["code"],
            args_digest=args_digest or record.get("args_digest") or sha256_hex(record["args"]),
            args_ref=record.get("args_ref") or "",
            python=record["python"],
            retries=int(record["retries"]),
            max_attempts=int(record["max_attempts"]),
        )

    # --- claim ----------------------------------------------------------------------------
    def claim(self, stream_id: str, node: str, max_jobs: int, lease: float) -> Claim | None:
        if max_jobs < 1:
            return None
        self._promote_due(stream_id)
        props = self._properties(stream_id)
        shards = list(range(properties.get(props, "shards")))
        random.shuffle(shards)
        for shard in shards:
            claim = self._claim_in(
                stream_id, keys.ready_pk(stream_id, shard), node, max_jobs, lease
            )
            if claim:
                return claim
        return None

    def _claimable(self, pk: str) -> list[dict[str, Any]]:
        now = keys.now_ms()
        found = dynamo.query(
            self.client,
            TableName=self.queue_table,
            KeyConditionExpression="#pk = :pk",
            FilterExpression="#cursor < #n AND #due <= :now",
            ProjectionExpression=CHUNK_FIELDS,
            ExpressionAttributeNames=dynamo.names("#pk", "#cursor < #n AND #due", CHUNK_FIELDS),
            ExpressionAttributeValues=dynamo.values(pk=pk, now=now),
            ConsistentRead=True,
            Limit=CLAIM_PAGE,
        )
        return list(itertools.islice(found, TOP_K))

    def _claim_in(
        self, stream_id: str, pk: str, node: str, max_jobs: int, lease: float
    ) -> Claim | None:
        """Head chunk first (FIFO); after a lost race, a random one of the top K."""
        for attempt in range(6):
            candidates = self._claimable(pk)
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
        expires = time.time() + lease
        entry = {"node": node, "start": start, "end": end, "expires": expires, "state": "active"}
        try:
            self.client.update_item(
                TableName=self.queue_table,
                Key=dynamo.serialize({"pk": chunk["pk"], "sk": chunk["sk"]}),
                UpdateExpression="SET #cursor = :end, #claims.#id = :entry",
                ConditionExpression="#cursor = :start",
                ExpressionAttributeNames=dynamo.names("#cursor #claims #id", id=claim_id),
                ExpressionAttributeValues=dynamo.values(end=end, entry=entry, start=start),
            )
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                return None
            raise
        self.counters.count(stream_id, waiting=-(end - start), running=end - start)
        claimed = self._claimed_jobs(stream_id, chunk, start, end)
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
        )

    def _claimed_jobs(
        self, stream_id: str, chunk: dict[str, Any], start: int, end: int
    ) -> list[ClaimedJob]:
        ids = chunk["jobs"][start:end]
        records = self._records(stream_id, ids, CLAIMED_FIELDS)
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
                    stage=chunk["stage"],
                    attempt=chunk["attempt"],
                    stream=stream_id,
                    transport=r.get("transport") or "inline",
                    args_ref=r.get("args_ref") or "",
                    args_digest=r.get("args_digest") or "",
                    retries=int(r.get("retries") or 0),
                    max_attempts=int(r.get("max_attempts") or 1),
                    failures=chunk.get("failures", 0),
                    signature=r.get("sig") or "",
                )
            )
        return claimed

    def _load_code(self, stream_id: str, digests: Iterable[str]) -> None:
        missing = [d for d in digests if d not in self._code_cache]
        if missing:
            for item in dynamo.batch_get(
                self.client,
                self.jobs_table,
                [{"stream": stream_id, "job": keys.code_key(d)} for d in missing],
            ):
                self._code_cache[item["job"][len(keys.CODE_PREFIX) :]] = item["code"]

    def _properties(self, stream_id: str) -> dict[str, Any]:
        cached = self._props_cache.get(stream_id)
        if cached and time.monotonic() - cached[0] < PROPS_TTL:
            return cached[1]
        props = self.streams.get_item(stream_id).get("properties", {})
        self._props_cache[stream_id] = (time.monotonic(), props)
        return props

    def _promote_due(self, stream_id: str) -> None:
        """Move delayed chunks that fell due into the ready partitions.

        Rare path, so it uses a transaction: the ready copy appears exactly when the
        delayed one disappears, and two promoters cannot both move the same chunk.
        """
        now = time.monotonic()
        if now - self._promoted_at.get(stream_id, 0) < PROMOTE_EVERY:
            return
        self._promoted_at[stream_id] = now
        due = dynamo.query(
            self.client,
            TableName=self.queue_table,
            KeyConditionExpression="#pk = :pk AND #sk <= :upper",
            ExpressionAttributeNames=dynamo.names("#pk #sk"),
            ExpressionAttributeValues=dynamo.values(
                pk=keys.delayed_pk(stream_id), upper=f"{keys.now_ms():013d}#~"
            ),
            ConsistentRead=True,
        )
        for chunk in itertools.islice(due, 25):
            pk, sk = self._ready_location(stream_id, chunk["pk"], chunk["sk"])
            ready = dict(chunk, pk=pk, sk=sk)
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.queue_table,
                                "Item": dynamo.serialize(ready),
                                "ConditionExpression": "attribute_not_exists(#pk)",
                                "ExpressionAttributeNames": dynamo.names("#pk"),
                            }
                        },
                        {
                            "Delete": {
                                "TableName": self.queue_table,
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
            self.counters.count(stream_id, delayed=-chunk["n"], waiting=chunk["n"])

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
            self.client.update_item(
                TableName=self.queue_table,
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

    def complete(self, claim: Claim, outcomes: dict[str, Outcome]) -> None:
        """Record final outcomes, send the jobs that may run again back (impetus.retry)."""
        base = properties.get(self._properties(claim.stream), "retry_backoff")
        entries: dict[str, dict[str, Any]] = {}
        spilled: list[dict[str, Any]] = []
        reruns: dict[retry.Rerun, list[str]] = defaultdict(list)
        for job in claim.jobs:
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
            spill += joboutput.spill(claim.stream, job.id, claim.claim_id, outcome.output, entry)
            entries[str(job.index)] = entry
            spilled += spill
        if spilled:
            dynamo.batch_write(self.client, self.jobs_table, puts=spilled)
        errors = sum(1 for e in entries.values() if e["s"] == jobs.ERROR)
        try:
            self._settle(
                claim, entries, reruns, self.OWNER, self._owner_values(claim), errors=errors
            )
        except ClaimLost:
            dynamo.batch_write(
                self.client,
                self.jobs_table,
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
        if outcome.status == jobs.ERROR:
            entry["e"] = outcome.error
            return entry, []
        if outcome.result_ref:  # the node put the result in S3 (impetus.payloads)
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
    ) -> None:
        """End a claim: write its final results into the chunk and move the jobs that
        run again into new chunks, in one write (a transaction when anything moves).
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
        update = (f"SET {', '.join(sets)} " if sets else "") + "REMOVE #claims.#id"
        if moved:
            update += " ADD #left :moved"
            vals.update(dynamo.values(moved=-moved))
        write = {
            "TableName": self.queue_table,
            "Key": dynamo.serialize({"pk": claim.pk, "sk": claim.sk}),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": dynamo.names(update, condition, **placeholders),
            "ExpressionAttributeValues": vals,
        }
        new_chunks = [self._rerun_chunk(claim, rerun, ids) for rerun, ids in reruns.items()]
        try:
            if new_chunks:
                self.client.transact_write_items(
                    TransactItems=[{"Update": write}]
                    + [{"Put": self._put_new(chunk)} for chunk in new_chunks]
                )
            else:
                self.client.update_item(**write)
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                raise ClaimLost(f"claim {claim.claim_id} is no longer held") from exc
            raise
        delayed = 0
        for chunk in new_chunks:
            for index, job_id in enumerate(chunk["jobs"]):
                self._point(claim.stream, job_id, chunk["pk"], chunk["sk"], index)
            delayed += chunk["n"] if chunk["pk"] == keys.delayed_pk(claim.stream) else 0
        self.counters.count(
            claim.stream,
            running=-len(claim.jobs),
            waiting=moved - delayed,
            delayed=delayed,
            finished=len(entries),
            errors=errors,
        )
        if moved:
            self._delete_if_spent(claim.pk, claim.sk)

    def _rerun_chunk(self, claim: Claim, rerun: retry.Rerun, ids: list[str]) -> dict[str, Any]:
        """A new chunk for jobs that run again: ready now, or delayed until their backoff."""
        suffix = keys.unique_suffix()
        due = keys.now_ms() + int(rerun.delay * 1000)
        if rerun.delay > 0:
            pk, sk = keys.delayed_pk(claim.stream), keys.delayed_sk(claim.priority, due, suffix)
        else:
            shards = properties.get(self._properties(claim.stream), "shards")
            pk = keys.ready_pk(claim.stream, _shard_of(suffix, shards))
            sk = keys.ready_sk(claim.priority, due, suffix)
        stage = claim.jobs[0].stage if claim.jobs else ""
        return self._new_chunk(
            claim.stream, pk, sk, ids, stage, claim.priority, due, rerun.attempt, rerun.failures
        )

    def _put_new(self, chunk: dict[str, Any]) -> dict[str, Any]:
        return {
            "TableName": self.queue_table,
            "Item": dynamo.serialize(chunk),
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": dynamo.names("#pk"),
        }

    def release(self, claim: Claim) -> None:
        """Give a claim's jobs back, unrun and with the same attempt number."""
        same = retry.Rerun(claim.attempt, claim.failures, 0.0)
        self._settle(
            claim, {}, {same: [j.id for j in claim.jobs]}, self.OWNER, self._owner_values(claim)
        )

    def reap(self, stream_id: str) -> int:
        """Return the jobs of expired leases to the queue (attempt + 1), or fail them as
        lost once they used up ``max_attempts``. Reads only the stream's live chunks."""
        props = self._properties(stream_id)
        max_attempts = properties.get(props, "max_attempts")
        now = time.time()
        released = 0
        for shard in range(properties.get(props, "shards")):
            for chunk in dynamo.query(
                self.client,
                TableName=self.queue_table,
                KeyConditionExpression="#pk = :pk",
                FilterExpression="size(#claims) > :zero",
                ProjectionExpression="#pk, #sk, #jobs, #attempt, #failures, #stage, #priority, "
                "#claims",
                ExpressionAttributeNames=dynamo.names(
                    "#pk #sk #jobs #attempt #failures #stage #priority #claims"
                ),
                ExpressionAttributeValues=dynamo.values(pk=keys.ready_pk(stream_id, shard), zero=0),
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
        """An expired lease counts as a crash of every job it held (see impetus.retry)."""
        attempt, failures = chunk["attempt"], chunk.get("failures", 0)
        claim = Claim(
            stream=stream_id,
            pk=chunk["pk"],
            sk=chunk["sk"],
            claim_id=claim_id,
            node=entry["node"],
            attempt=attempt,
            expires=entry["expires"],
            failures=failures,
            priority=chunk["priority"],
            jobs=[
                ClaimedJob(i, idx, "", "", "", "", "", chunk["stage"], attempt, stream_id)
                for idx, i in enumerate(chunk["jobs"])
                if entry["start"] <= idx < entry["end"]
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
            if rerun:
                self._settle(claim, {}, {rerun: ids}, condition, values)
            else:
                entries = {
                    str(j.index): self._result_entry(claim, j, outcome)[0] for j in claim.jobs
                }
                self._settle(claim, entries, {}, condition, values, errors=len(ids))
        except ClaimLost:
            return 0
        return len(ids)

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

    # --- collect ----------------------------------------------------------------------------
    def results(self, stream_id: str, stage: str, limit: int = 1000) -> list[dict[str, Any]]:
        keys.check(keys.STAGE, stage, "stage")
        finished = list(itertools.islice(self._finished(stream_id, stage), limit))
        records = self._records(stream_id, [f[0] for f in finished])
        self._repair_pointers(stream_id, records, finished)
        spilled = self._spilled(stream_id, [e["ref"] for *_, e in finished if "ref" in e])
        found = [
            self._job_dict(records[job_id], entry, spilled)
            for job_id, _, entry in finished
            if job_id in records
        ]
        joboutput.attach(self.client, self.jobs_table, stream_id, found, finished)
        return found

    def _finished(
        self, stream_id: str, stage: str
    ) -> Iterator[tuple[str, tuple[str, str, int], dict[str, Any]]]:
        """(job id, (chunk pk, chunk sk, index), result entry) of a stage's finished jobs."""
        shards = properties.get(self.streams.get_item(stream_id).get("properties", {}), "shards")
        for shard in range(shards):
            for chunk in dynamo.query(
                self.client,
                TableName=self.queue_table,
                KeyConditionExpression="#pk = :pk",
                FilterExpression="#stage = :stage AND size(#results) > :zero",
                ProjectionExpression="#pk, #sk, #jobs, #results",
                ExpressionAttributeNames=dynamo.names("#pk #sk #stage #results #jobs"),
                ExpressionAttributeValues=dynamo.values(
                    pk=keys.ready_pk(stream_id, shard), stage=stage, zero=0
                ),
                ConsistentRead=True,
            ):
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
                self._point(stream_id, job_id, pk, sk, index)
                record.update(chunk_pk=pk, chunk_sk=sk, index=index)

    def _records(
        self, stream_id: str, ids: list[str], attributes: tuple[str, ...] = ()
    ) -> dict[str, dict[str, Any]]:
        found = dynamo.batch_get(
            self.client,
            self.jobs_table,
            [{"stream": stream_id, "job": i} for i in ids],
            attributes=attributes,
        )
        return {r["job"]: r for r in found}

    def _spilled(self, stream_id: str, refs: list[str]) -> dict[str, str]:
        if not refs:
            return {}
        found = dynamo.batch_get(
            self.client, self.jobs_table, [{"stream": stream_id, "job": r} for r in refs]
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
            )
            if "ref" in entry:
                job["result"] = spilled.get(entry["ref"])
        return job

    def ack(self, stream_id: str, job_ids: list[str]) -> int:
        self.streams.get_item(stream_id)
        records = self._records(stream_id, list(dict.fromkeys(job_ids)), POINTER_FIELDS)
        by_chunk: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        for r in records.values():
            if r.get("status") != jobs.ACKED:
                by_chunk[(r["chunk_pk"], r["chunk_sk"])][str(r["index"])] = r["job"]
        acked, refs = [], []
        for (pk, sk), members in by_chunk.items():
            removed = self._ack_chunk(pk, sk, members)
            acked += [members[i] for i in removed]
            refs += [e[r] for e in removed.values() for r in ("ref", "oref") if r in e]
        now = time.time()
        tombstones = [
            {"stream": stream_id, "job": i, "status": jobs.ACKED, "acked": now} for i in acked
        ]
        dynamo.batch_write(
            self.client,
            self.jobs_table,
            puts=tombstones,
            deletes=[{"stream": stream_id, "job": r} for r in refs],
        )
        self.counters.count(stream_id, finished=-len(acked), acked=len(acked))
        return len(acked)

    def _ack_chunk(self, pk: str, sk: str, members: dict[str, str]) -> dict[str, dict]:
        """Remove acknowledged results from a chunk; returns {index: removed entry}.

        Conditional on every result still being there, so a repeated ack cannot count
        twice; on a conflict it re-reads the chunk and acks what is left.
        """
        present = {i: {} for i in members}  # first try: assume all are there (no read)
        for _ in range(5):
            slots = [f"#slot{n}" for n in range(len(present))]
            names = dict(zip(slots, present, strict=True))
            names.update(dynamo.names("#results #left"))
            try:
                answer = self.client.update_item(
                    TableName=self.queue_table,
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
                chunk = self._get_chunk(pk, sk) or {"results": {}}
                present = {i: chunk["results"][i] for i in members if i in chunk["results"]}
                if not present:
                    return {}
                continue
            old = dynamo.deserialize(answer["Attributes"])
            if old["left"] - len(present) <= 0:
                self._delete_if_spent(pk, sk, {"left": 0})
            return {i: old["results"][i] for i in present}
        return {}

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
        for pk in [keys.ready_pk(stream_id, s) for s in range(shards)] + [
            keys.delayed_pk(stream_id)
        ]:
            chunk_keys = dynamo.query(
                self.client,
                TableName=self.queue_table,
                KeyConditionExpression="#pk = :pk",
                ProjectionExpression="#pk, #sk",
                ExpressionAttributeNames=dynamo.names("#pk #sk"),
                ExpressionAttributeValues=dynamo.values(pk=pk),
            )
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
