"""The queue's item layout: key formats of the queue and jobs tables, constants, and the
chunk item, shared by its parts (and by nothing outside impetus.storage)."""

from __future__ import annotations

import random
from typing import Any

from impetus.core.keys import PRIORITY_MIN
from impetus.storage.tables import CLAIM_INDEX

CHUNK_SIZE = 20  # keeps a chunk ~1 KB: a claim's write is billed on the item's size
TOP_K = 8  # claim candidates considered after a lost race
# Chunks read per claim query page. Fully claimed chunks wait at the head of a partition
# until their results are acknowledged, and the filter drops them only after the read, so
# pages of TOP_K took many round trips per claim under load; one larger page usually
# reaches the claimable ones (billed by the bytes evaluated either way).
CLAIM_PAGE = 48
# Shards a claim Queries at most (see Claimer.claim): under load the first one has work;
# on a sparse queue a claimer's dry claims sweep all shards, this many at a time.
CLAIM_PROBES = 8
REAP_SHARDS = 8  # shards one reap reads at most (every node agent reaps busy streams)
OLDEST_SAMPLE = 8  # shards DFS's oldest-wait estimate reads per stream and tick
INLINE_RESULT_LIMIT = 8 * 1024  # larger results are stored as their own item
PROMOTE_EVERY = 0.5  # seconds between checks for delayed chunks that fell due
PROMOTE_BATCH = 25  # delayed chunks one check moves at most (the next check goes on)
CLOCK_SLACK_MS = 1000  # clocks of enqueuers and claimers may differ by this much
PROPS_TTL = 2.0  # seconds a claimer trusts its cached copy of stream properties
# Granularity of a stream's DELAYED_UNTIL (impetus.storage.streams): raised at most about
# once a step by delayed enqueues and retry backoffs, each raise a stream-item write and
# a re-mark (16 small writes); claimers keep looking at the delayed partition for up to
# two steps after the last delayed job fell due.
DELAY_HINT_STEP_MS = 60_000
POINTER_FIELDS = ("stream", "job", "status", "chunk_pk", "chunk_sk", "index")
# A claim's candidates, without their job ids: a page of 48 chunks with 20 ids each was a
# ~40 KB answer to parse per claim; the claimed chunk's ids come back with the claim.
# The claim index's projection is exactly these fields (impetus.storage.tables).
CANDIDATE_FIELDS = ", ".join(f"#{name}" for name in ("pk", "sk", *CLAIM_INDEX.projected))
# The queue table's sparse index of claimable ready chunks: a ready chunk carries its
# keys (its own pk and sk) while it has a job no claim took; the write that takes its
# last one removes them, so the chunk leaves the index.
CLAIM_KEYS = (CLAIM_INDEX.partition_key, CLAIM_INDEX.sort_key)
LEAVE_CLAIM_INDEX = "REMOVE " + ", ".join(f"#{name}" for name in CLAIM_KEYS)
CLAIMED_FIELDS = (
    "job", "name", "code", "args", "python", "cloudpickle", "transport", "args_ref", "args_digest",
    "retries", "max_attempts", "time_limit", "sig",
)  # fmt: skip


def holds(claim: dict[str, Any], index: int) -> bool:
    """Whether a claim entry still holds the chunk's job at ``index``: in its range and
    not yet reported (a partial report lists the indices it wrote or moved in ``done``)."""
    return claim["start"] <= index < claim["end"] and index not in claim.get("done", [])


def ring_window(cursor: dict[str, int], stream_id: str, shards: int, count: int) -> list[int]:
    """The next ``count`` shards (at most all) of a ring over a stream's ``shards``, from
    ``cursor[stream_id]`` (a random start the first time); moves the cursor past them.
    Successive calls visit every shard within ceil(shards / count) calls."""
    start = cursor.get(stream_id, random.randrange(shards)) % shards
    count = min(shards, count)
    cursor[stream_id] = (start + count) % shards
    return [(start + i) % shards for i in range(count)]


def shard_of(suffix: str, shards: int) -> int:
    return int(suffix[-6:], 16) % shards


def suffix_of(sk: str) -> str:
    return sk.rsplit("#", 1)[1]


def new_chunk(
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
    """A new chunk item: ``ids`` of one stage, priority and due time, none claimed; in
    the claim index when it is a ready one."""
    chunk = {
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
    return chunk if pk == delayed_pk(stream_id) else in_claim_index(chunk)


def in_claim_index(chunk: dict[str, Any]) -> dict[str, Any]:
    """A ready chunk with its claim index keys (its own pk and sk) while a job of it
    waits; without them once none does (it would only take index space and writes)."""
    unkeyed = {k: v for k, v in chunk.items() if k not in CLAIM_KEYS}
    if int(chunk["cursor"]) >= int(chunk["n"]):
        return unkeyed
    return dict(unkeyed, **dict(zip(CLAIM_KEYS, (chunk["pk"], chunk["sk"]), strict=True)))


# --- key formats ----------------------------------------------------------------------------
# Priorities are stored offset so that they sort as fixed-width strings.
_PRIORITY_OFFSET = -PRIORITY_MIN
DELAYED = "delayed"
CODE_PREFIX = "#code#"


def ready_pk(stream: str, shard: int) -> str:
    return f"{stream}#{shard}"


def delayed_pk(stream: str) -> str:
    return f"{stream}#{DELAYED}"


def ready_sk(priority: int, due_ms: int, suffix: str) -> str:
    """Lower priority first, then earlier due time, then arrival: the claim order."""
    return f"{priority + _PRIORITY_OFFSET:010d}#{due_ms:013d}#{suffix}"


def delayed_sk(priority: int, due_ms: int, suffix: str) -> str:
    """Due time first, so 'everything due by now' is one key-range query."""
    return f"{due_ms:013d}#{priority + _PRIORITY_OFFSET:010d}#{suffix}"


def delayed_sk_upper(due_ms: int) -> str:
    """Above every delayed sort key due at or before ``due_ms``."""
    return f"{due_ms:013d}#~"


def delayed_to_ready_sk(sk: str) -> str:
    due, priority, suffix = sk.split("#", 2)
    return f"{priority}#{due}#{suffix}"


def code_key(digest: str) -> str:
    return f"{CODE_PREFIX}{digest}"
