"""The Queue: streams, their job queues, results and stores, on DynamoDB.

This is the one object the API Lambda, the DFS and the node agents talk to; it composes
:class:`~impetus.storage.streams.Streams`, :class:`~impetus.storage.store.Store` and
:class:`~impetus.storage.jobqueue.JobQueue` (read those for the item layouts and the
conditional writes). Thread-safe: it holds one boto3 client and caches only immutable
data (function code by digest) and short-lived stream properties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from impetus.core import aws, properties
from impetus.core.claims import Claim, ClaimedJob
from impetus.core.codec import CLOUDPICKLE_VERSION
from impetus.core.config import AwsSettings
from impetus.core.exceptions import InvalidRequest
from impetus.core.jobs import Outcome
from impetus.core.signing import KeyLoader, SigningKey
from impetus.storage import payloads
from impetus.storage.activestreams import ActiveView, replica_of
from impetus.storage.counters import FLUSH_EVERY, BufferedCounters
from impetus.storage.joblist import JobLister
from impetus.storage.jobqueue import JobQueue
from impetus.storage.jobqueue.cancel import Canceller
from impetus.storage.jobqueue.collect import ResultsPage
from impetus.storage.markeditems import MarkedItems
from impetus.storage.nodes import Nodes
from impetus.storage.store import Store
from impetus.storage.streams import Streams
from impetus.storage.tables import JOBS, NODES, QUEUE, STORE, STREAMS, table_names_for

__all__ = ["Claim", "ClaimedJob", "Queue"]


class Queue:
    def __init__(
        self,
        settings: AwsSettings | None = None,
        client: Any = None,
        signer: SigningKey | None = None,
    ) -> None:
        """``signer`` signs enqueued jobs; by default the signing key is read from Secrets
        Manager on the first enqueue (only the API enqueues)."""
        self.settings = settings or AwsSettings.from_env()
        self.client = client or aws.client("dynamodb", self.settings)
        self.tables = table_names_for(self.settings)
        keys = (lambda: signer) if signer else KeyLoader(self.settings).signer
        self.streams = Streams(self.client, self.tables[STREAMS], keys)
        self.store = Store(self.client, self.tables[STORE])
        self.jobs = JobQueue.build(
            self.client,
            {"jobs": self.tables[JOBS], "queue": self.tables[QUEUE]},
            self.streams,
            keys,
            self._payload_bytes,
        )
        self.canceller = Canceller(self.jobs.items)
        self.nodes = Nodes(self.client, self.tables[NODES])
        self.counters: BufferedCounters | None = None
        self.lister = JobLister(self.client, self.tables[JOBS], self.tables[QUEUE])
        self._payloads: payloads.Payloads | None = None
        self._marked: MarkedItems | None = None  # a node agent's (list_active_streams)

    @property
    def payloads(self) -> payloads.Payloads:
        """The payload bucket (ConfigError when none is configured)."""
        if self._payloads is None:
            self._payloads = payloads.Payloads(self.settings)
        return self._payloads

    def _payload_bytes(self, key: str) -> str:
        """An S3 payload's text (a node's outcome MAC covers a large result's bytes)."""
        return self.payloads.get(key)

    def buffer_counters(self, interval: float = FLUSH_EVERY) -> BufferedCounters:
        """Defer backlog counter writes (node agents: see impetus.storage.counters); the caller
        flushes them (``counters.maybe_flush()`` in its loop, ``flush()`` at the end)."""
        self.counters = BufferedCounters(self.streams, interval)
        self.jobs.items.counters = self.counters
        return self.counters

    # --- streams ------------------------------------------------------------------------
    def create_stream(
        self, stream_id: str | None = None, properties: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Create a stream; an existing id is reused. Returns (description, created?)."""
        description, created, _ = self.streams.create(stream_id, properties)
        return description, created

    def create_owned_stream(
        self, stream_id: str | None = None, properties: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], bool, str | None]:
        """As :meth:`create_stream`, and the new stream's key (None when the id existed):
        what the API hands its creator once (see impetus.core.streamauth)."""
        return self.streams.create(stream_id, properties)

    def stream_key(self, stream_id: str) -> str | None:
        """The stream's key (None: a stream from before owners); StreamNotFound."""
        return self.streams.stream_key(self.streams.get_item(stream_id))

    def get_stream(self, stream_id: str) -> dict[str, Any]:
        return self.streams.get(stream_id)

    def list_streams(self) -> list[dict[str, Any]]:
        """Every stream (a Scan: the API's listing, DFS's sweep)."""
        return self.streams.list()

    def active_view(self, node_id: str) -> ActiveView:
        """A node's cached view of the active-streams record (its own replica)."""
        active = self.streams.active
        return ActiveView(active, replica_of(node_id, active.replicas))

    def list_active_streams(self, view: ActiveView) -> list[dict[str, Any]]:
        """The streams that have or may have work (impetus.storage.activestreams): an
        idle deployment costs one small read, however many streams it has."""
        # Uncounted: the mark says "may have work" and claims find out; reading every
        # marked stream's K counter items on each poll of each node would cost more.
        # The marked streams' items: read again only when their mark changed or once a
        # minute (impetus.storage.markeditems), and shared with this node's claimer.
        snapshot = view.snapshot()
        if snapshot.overflow:
            return self.streams.list_marked(snapshot, counted=False)
        if self._marked is None:
            self._marked = MarkedItems(self.streams, self.jobs.items)
        return self._marked.listing(snapshot)

    def update_properties(self, stream_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge properties (a None value removes a key); returns the description.
        The stream is marked again: node agents re-read its item at their next listing
        (impetus.storage.markeditems)."""
        return self.streams.update_properties(stream_id, changes)

    def delete_stream(self, stream_id: str) -> None:
        """Hide the stream at once, then remove its chunks, job records, code and store."""
        item = self.streams.mark_deleting(stream_id)
        self.streams.active.mark(stream_id)  # nodes re-read the item, see it go, drop it
        shards = properties.get(item.get("properties", {}), "shards")
        self.jobs.items.purge(stream_id, shards)
        self.store.purge(stream_id)
        if self.settings.bucket:
            self.payloads.delete_stream(stream_id)
        self.streams.remove(stream_id)

    def take_collector(self, stream_id: str, holder: str, ttl: float) -> float:
        """Take or renew the stream's collector lease (see impetus.storage.collectorlease)."""
        return self.streams.collector.take(stream_id, holder, ttl)

    def release_collector(self, stream_id: str, holder: str) -> bool:
        return self.streams.collector.release(stream_id, holder)

    # --- store ----------------------------------------------------------------------------
    def store_get(self, stream_id: str, key: str) -> Any:
        self.streams.get_item(stream_id)
        return self.store.get(stream_id, key)

    def store_put(self, stream_id: str, key: str, value: Any) -> None:
        self.streams.get_item(stream_id)
        self.store.put(stream_id, key, value)

    def store_delete(self, stream_id: str, key: str) -> None:
        self.streams.get_item(stream_id)
        self.store.delete(stream_id, key)

    def store_keys(self, stream_id: str) -> list[str]:
        self.streams.get_item(stream_id)
        return self.store.keys(stream_id)

    # --- client side of jobs ----------------------------------------------------------------
    def enqueue(
        self,
        stream_id: str,
        jobs: list[dict[str, Any]],
        functions: dict[str, str],
        client_python: str,
        client_cloudpickle: str = CLOUDPICKLE_VERSION,
    ) -> dict[str, Any]:
        """Enqueue JobSpec dicts (see impetus.core.jobs.JobSpec); ``functions`` maps a code
        digest to the encoded code. Ids the stream already knows are skipped.
        Returns {"accepted": [ids], "existing": [ids], "acked": [ids of the existing ones
        already acknowledged], "idle_before": whether the stream had no work before}."""
        self._check_uploads(stream_id, jobs)
        return self.jobs.enqueuer.enqueue(
            stream_id, jobs, functions, client_python, client_cloudpickle
        )

    def _check_uploads(self, stream_id: str, jobs: list[dict[str, Any]]) -> None:
        """Args that travel through S3 must be this stream's uploads, and be there."""
        for spec in jobs:
            if not isinstance(spec, dict) or spec.get("transport") != "s3":
                continue
            ref = spec.get("args_ref")
            if not payloads.is_args_key(stream_id, ref):
                raise InvalidRequest(f"args_ref {ref!r} is not an upload of stream {stream_id}")
            if not self.payloads.exists(ref):
                raise InvalidRequest(f"args_ref {ref!r} was not uploaded")

    def get_job(self, stream_id: str, job_id: str) -> dict[str, Any]:
        return self.jobs.collector.get_job(stream_id, job_id)

    def list_jobs(
        self, stream_id: str, status: str | None = None, limit: int | None = 100
    ) -> tuple[list[dict[str, Any]], int]:
        """A stream's jobs oldest first (payloads left out), optionally of one status
        (see impetus.storage.joblist). Returns (at most ``limit`` rows, how many matched)."""
        item = self.streams.get_item(stream_id)
        shards = properties.get(item.get("properties", {}), "shards")
        return self.lister.list(stream_id, shards, status, limit)

    def results(self, stream_id: str, stage: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Finished, unacknowledged jobs of one stage (job dicts, results encoded)."""
        return self.jobs.collector.results(stream_id, stage, limit)

    def results_page(
        self,
        stream_id: str,
        stage: str,
        limit: int = 1000,
        accept: Callable[[dict[str, Any]], bool] | None = None,
    ) -> ResultsPage:
        """:meth:`results` as a page whose jobs ``accept`` takes (the API's size budget),
        whether finished jobs were left out, and the ids of the stage's jobs a node marked
        started that have not ended yet (see Collector.results_page)."""
        return self.jobs.collector.results_page(stream_id, stage, limit, accept)

    def ack(self, stream_id: str, job_ids: list[str]) -> int:
        """Acknowledge collected jobs: their results leave the queue. Returns the count."""
        return self.jobs.collector.ack(stream_id, job_ids)

    def cancel_jobs(self, stream_id: str, job_ids: list[str]) -> dict[str, list[str]]:
        """Take waiting or delayed jobs out of the queue (they never run); see
        impetus.storage.jobqueue.cancel. Returns {"cancelled", "running_or_done",
        "unknown"} id lists."""
        return self.canceller.cancel(stream_id, job_ids)

    def cancel_stream(self, stream_id: str) -> dict[str, list[str]]:
        """Cancel every job of the stream that no node has claimed yet."""
        item = self.streams.get_item(stream_id)
        shards = properties.get(item.get("properties", {}), "shards")
        return self.canceller.cancel(stream_id, self.canceller.waiting_ids(stream_id, shards))

    def list_nodes(self) -> list[dict[str, Any]]:
        """The live node agents (their last heartbeat items)."""
        return self.nodes.live()

    # --- node side ----------------------------------------------------------------------
    def oldest_waiting_age(self, stream_ids: list[str], now: float) -> float:
        """Seconds the longest-waiting due job at the head of these streams has waited."""
        dues = [due for s in stream_ids if (due := self.jobs.claimer.oldest_due(s)) is not None]
        return max(0.0, now - min(dues) / 1000) if dues else 0.0

    def claim(self, stream_id: str, node: str, max_jobs: int, lease: float) -> Claim | None:
        """Lease up to ``max_jobs`` due jobs, highest priority first; None when none."""
        return self.jobs.claimer.claim(stream_id, node, max_jobs, lease)

    def renew(self, claim: Claim, lease: float) -> None:
        """Extend a lease; ClaimLost when it is no longer ours."""
        self.jobs.settler.renew(claim, lease)

    def complete(
        self,
        claim: Claim,
        outcomes: dict[str, Outcome],
        unrun: Iterable[str] = (),
        reported: Iterable[str] = (),
    ) -> None:
        """End a claim with its last outcomes, if we still hold it (else ClaimLost); the
        ``unrun`` jobs (never started) go back with their attempt unchanged; the
        ``reported`` ones were recorded by an earlier :meth:`report`."""
        self.jobs.settler.complete(claim, outcomes, unrun, reported)

    def report(
        self,
        claim: Claim,
        outcomes: dict[str, Outcome],
        started: Iterable[str] = (),
        reported: Iterable[str] = (),
        unrun: Iterable[str] = (),
    ) -> None:
        """Record some outcomes of a claim we still hold (else ClaimLost), mark the
        ``started`` jobs running and send the ``unrun`` ones back with their attempt
        unchanged; the claim stays held for the rest."""
        self.jobs.settler.report(claim, outcomes, started, reported, unrun)

    def release(self, claim: Claim, reported: Iterable[str] = ()) -> None:
        """Give a claim's jobs (but those already reported) back to the queue unrun."""
        self.jobs.settler.release(claim, reported)

    def reap(self, stream_id: str) -> int:
        """Return jobs of expired leases to the queue. Returns how many."""
        return self.jobs.settler.reap(stream_id)

    def recount(self, stream_id: str, shards: int | None = None) -> dict[str, int]:
        """The stream's waiting, running and delayed jobs, counted in the queue itself
        (over ``shards`` ready shards: by default those its item has now)."""
        return self.jobs.recounter.recount(stream_id, shards)

    def due_delayed(self, stream_id: str, now: float) -> int:
        """Delayed jobs of a stream already due but not yet promoted (DFS counts them)."""
        return self.jobs.recounter.due_delayed(stream_id, now)
