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

Why claims read an index: a fully claimed chunk stays at the head of its partition
until its results are acknowledged, and a Query is billed on the items it evaluates
before its filter; claims on the partition read ~48 spent ~2.7 KB chunks to find a
claimable one, 4.5 read units per job (docs/capacity-mix.json), the first limit one
stream hit at 1,000+ jobs/s (a partition serves 3,000 RCU/s). So a ready chunk carries
the keys of the queue table's sparse index ``claimable`` (``cpk``/``csk``, its own pk
and sk) while a job of it waits: the claim or cancel that takes its last waiting job
removes them. Claims Query the index (eventually consistent; the claim's conditional
write settles a stale read) on streams created with it; older streams keep Querying
their partitions (see docs/architecture.md, "The claim index").

The parts, one collaborator each over the shared :class:`QueueItems`:

=====================  ==============================================================
:class:`Enqueuer`      validate forks, skip known ids, pack chunks, sign records
:class:`Claimer`       lease due jobs with one conditional write; promote delayed ones
:class:`Settler`       renew, complete, release and reap leases; re-run what retries
:class:`Collector`     a stage's finished jobs, one job, acknowledgements
:class:`Recounter`     a stream's busy counters from its partitions (DFS's audit)
=====================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from impetus.core.signing import SigningKey
from impetus.storage.jobqueue.claim import Claimer
from impetus.storage.jobqueue.collect import Collector
from impetus.storage.jobqueue.enqueue import Enqueuer
from impetus.storage.jobqueue.items import QueueItems
from impetus.storage.jobqueue.recount import Recounter
from impetus.storage.jobqueue.settle import Settler
from impetus.storage.streams import Streams


@dataclass
class JobQueue:
    """The queue's parts, built over one :class:`QueueItems`."""

    items: QueueItems
    enqueuer: Enqueuer
    claimer: Claimer
    settler: Settler
    collector: Collector
    recounter: Recounter

    @classmethod
    def build(
        cls,
        client: Any,
        tables: dict[str, str],
        streams: Streams,
        signer: Callable[[], SigningKey],
        payload: Callable[[str], str] | None = None,
    ) -> JobQueue:
        """``signer`` gives the signing key when enqueue (or an outcome's MAC) first needs
        it; ``payload`` reads an S3 result's text (for its MAC)."""
        items = QueueItems(client, tables, streams)
        return cls(
            items=items,
            enqueuer=Enqueuer(items, signer),
            claimer=Claimer(items),
            settler=Settler(items, payload),
            collector=Collector(items),
            recounter=Recounter(items),
        )
