"""Enqueue: validate forks, skip known ids, pack chunks, write signed job records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from impetus.core import jobs, keys, properties
from impetus.core.codec import CLOUDPICKLE_VERSION, digest
from impetus.core.exceptions import InvalidRequest
from impetus.core.signing import Envelope, SigningKey
from impetus.storage import dynamo
from impetus.storage.jobqueue import layout
from impetus.storage.jobqueue.items import QueueItems
from impetus.storage.jobqueue.layout import CHUNK_SIZE, POINTER_FIELDS, new_chunk, shard_of
from impetus.storage.streams import is_idle


class Enqueuer:
    """Writes forks as signed job records and chunks."""

    def __init__(self, items: QueueItems, signer: Callable[[], SigningKey]) -> None:
        self.items = items
        # Read on the first enqueue only: node-side users of the queue never read the key.
        self._signer = signer

    # --- enqueue --------------------------------------------------------------------------
    def enqueue(
        self,
        stream_id: str,
        specs: list[dict[str, Any]],
        functions: dict[str, str],
        client_python: str,
        client_cloudpickle: str = CLOUDPICKLE_VERSION,
    ) -> dict[str, Any]:
        stream = self.items.streams.get_item(stream_id)
        # The counters before this fork: one BatchGetItem of the stream's K counter items.
        idle_before = is_idle(self.items.streams.counters.read(stream).totals())
        specs = [self._check_spec(s) for s in specs]
        self._check_functions(stream_id, specs, functions)
        new, existing, acked = self._split_existing(stream_id, specs)
        now = keys.now_ms()
        props = stream.get("properties", {})
        runtime = {"python": client_python, "cloudpickle": client_cloudpickle}
        chunks, records = self._pack(stream_id, new, now, props, runtime)
        code_items = [
            {"stream": stream_id, "job": layout.code_key(d), "code": functions[d]}
            for d in {s["code"] for s in new}
            if d in functions
        ]
        if idle_before and new:
            # Marked before any job is visible: nodes and DFS find the stream through the
            # active-streams record (impetus.storage.activestreams), not by a Scan.
            self.items.streams.active.mark(stream_id)
        delayed_due = [c["due"] for c in chunks if c["pk"] == layout.delayed_pk(stream_id)]
        if delayed_due:  # before the chunks: claimers look at the delayed partition again
            self.items.note_delayed(stream_id, max(delayed_due))
        # Records before chunks: a claimer never finds a job id without its record.
        dynamo.batch_write(self.items.client, self.items.jobs_table, puts=code_items + records)
        dynamo.batch_write(self.items.client, self.items.queue_table, puts=chunks)
        delayed = sum(len(c["jobs"]) for c in chunks if c["pk"] == layout.delayed_pk(stream_id))
        self.items.counters.count(
            stream_id, forked=len(new), waiting=len(new) - delayed, delayed=delayed
        )
        return {
            "accepted": [s["id"] for s in new],
            "existing": existing,
            "acked": acked,
            "idle_before": idle_before,  # the API nudges DFS when this is True
        }

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
        Enqueuer._check_args(spec)
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
                self.items.client,
                self.items.jobs_table,
                [{"stream": stream_id, "job": layout.code_key(d)} for d in unknown],
            )
            unknown -= {i["job"][len(layout.CODE_PREFIX) :] for i in stored}
        if unknown:
            raise InvalidRequest(f"unknown function digest {sorted(unknown)[0][:12]}...")

    def _split_existing(
        self, stream_id: str, specs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
        """Forks of an id the stream already knows are skipped (idempotent fork).
        Returns (new specs, known ids, those of the known ids already acknowledged: a
        client that lost their task-file lines must not wait for them).

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
            self.items.client,
            self.items.jobs_table,
            [{"stream": stream_id, "job": i} for i in unique],
            attributes=POINTER_FIELDS,
        )
        orphans = self._orphans([r for r in found if r.get("status") == jobs.WAITING])
        existing = [r["job"] for r in found if r["job"] not in orphans]
        new = [s for i, s in unique.items() if i not in set(existing)]
        acked = [r["job"] for r in found if r.get("status") == jobs.ACKED]
        return new, existing + duplicates, acked

    def _orphans(self, waiting: list[dict[str, Any]]) -> set[str]:
        if not waiting:
            return set()
        places = {
            r["job"]: {
                (r["chunk_pk"], r["chunk_sk"]),
                self.items.ready_location(r["stream"], r["chunk_pk"], r["chunk_sk"]),
            }
            for r in waiting
        }
        wanted = set().union(*places.values())
        alive = {
            (c["pk"], c["sk"])
            for c in dynamo.batch_get(
                self.items.client,
                self.items.queue_table,
                [{"pk": pk, "sk": sk} for pk, sk in wanted],
            )
        }
        return {job for job, where in places.items() if not where & alive}

    def _pack(
        self,
        stream_id: str,
        specs: list[dict[str, Any]],
        now: int,
        stream_properties: dict[str, Any],
        runtime: dict[str, str],
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
                    pk, sk = layout.delayed_pk(stream_id), layout.delayed_sk(priority, due, suffix)
                else:
                    shard = shard_of(suffix, shards)
                    pk, sk = (
                        layout.ready_pk(stream_id, shard),
                        layout.ready_sk(priority, due, suffix),
                    )
                ids = [spec["id"] for spec in part]
                chunks.append(new_chunk(stream_id, pk, sk, ids, stage, priority, due))
                for i, spec in enumerate(part):
                    record = self._record(stream_id, spec, pk, sk, i, now, runtime)
                    self._apply_policy(record, spec["properties"], stream_properties)
                    record["sig"] = signer.sign(Envelope.of_record(record))
                    records.append(record)
        return chunks, records

    @staticmethod
    def _record(
        stream_id: str,
        spec: dict[str, Any],
        pk: str,
        sk: str,
        index: int,
        now: int,
        runtime: dict[str, str],
    ) -> dict[str, Any]:
        """The job's record; ``runtime``: the client's Python and cloudpickle versions."""
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
            **runtime,
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
        """Snapshot the attempt policy and time limit into the (signed) record: a job
        property wins over its stream's."""
        for name in ("retries", "max_attempts", "time_limit"):
            value = job_props.get(name)
            record[name] = properties.get(stream_props, name) if value is None else value
